"""Metrics of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023): PSNR, SSIM, PSNR_w,
SSIM_w and the aligned PSNR_a of the RealBlur protocol, batched, plus the evaluation loop."""

from .aligned import align, estimate_homography, psnr_aligned, psnr_aligned_np
from .evaluate import (EvalItem, EvalOptions, EvaluationInputError, ImageReadError, compute_metrics, evaluate,
                       find_items, format_table, read_image, read_mask, summarize)
from .pixel import (pixel_metrics, psnr, psnr_weighted, quantize_8bit, ssim, ssim_map,
                    ssim_weighted)

__all__ = ["psnr", "ssim", "psnr_weighted", "ssim_weighted", "psnr_aligned", "psnr_aligned_np", "align",
           "estimate_homography", "pixel_metrics", "ssim_map", "quantize_8bit",
           "compute_metrics", "summarize", "evaluate", "find_items", "format_table", "read_image", "read_mask",
           "EvalItem", "EvalOptions", "EvaluationInputError", "ImageReadError"]

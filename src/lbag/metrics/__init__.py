"""Metrics of *Real-World Deep Local Motion Deblurring* (Li et al., AAAI 2023): PSNR, SSIM, PSNR_w,
SSIM_w and the aligned PSNR_a of the RealBlur protocol, batched, plus the evaluation loop.

``psnr``, ``ssim``, ``psnr_weighted``, ``ssim_weighted``, ``pixel_metrics``, ``psnr_aligned`` and
``compute_metrics`` are the published metrics: images quantised to 8 bit first (:mod:`.protocol8`, whose
``pixel_metrics_u8`` takes uint8 arrays directly). The ``*_float`` functions skip the quantisation.
Modules: ``pixel`` (inputs, SSIM formula and map, float metrics), ``protocol8`` (8-bit metrics),
``aligned`` (PSNR_a), ``batch`` (all metrics of a batch, summaries), ``evaluate`` (the folder loop)."""

from .aligned import align, estimate_homography, psnr_aligned, psnr_aligned_float, psnr_aligned_np
from .batch import compute_metrics, compute_metrics_float, metric_rows, summarize
from .evaluate import (EvalItem, EvalOptions, EvaluationInputError, ImageReadError, evaluate, find_items,
                       format_table, read_image, read_mask)
from .pixel import (pixel_metrics_float, psnr_float, psnr_weighted_float, ssim_float, ssim_map,
                    ssim_weighted_float)
from .protocol8 import pixel_metrics, psnr, psnr_weighted, ssim, ssim_weighted

__all__ = ["psnr", "ssim", "psnr_weighted", "ssim_weighted", "pixel_metrics", "psnr_aligned", "psnr_aligned_np",
           "psnr_float", "ssim_float", "psnr_weighted_float", "ssim_weighted_float", "pixel_metrics_float",
           "psnr_aligned_float", "align", "estimate_homography", "ssim_map",
           "compute_metrics", "compute_metrics_float", "metric_rows", "summarize", "evaluate", "find_items",
           "format_table", "read_image", "read_mask", "EvalItem", "EvalOptions", "EvaluationInputError",
           "ImageReadError"]

"""Data for local motion deblurring (Li et al., "Real-World Deep Local Motion Deblurring", AAAI 2023):
the ReLoBlur layout and image I/O, blur-aware patch cropping, the decode-once cache, the training and
validation datasets, the synthetic generator (``lbag.data.synth``) and the dataset checker."""

from .layout import ImageReadError, Pair, decode_image, find_pairs, read_image, read_mask, write_image, write_mask

__all__ = ["ImageReadError", "Pair", "TrainDataset", "ValDataset", "decode_image", "find_pairs",
           "read_image", "read_mask", "write_image", "write_mask"]


def __getattr__(name):
    # The datasets import torch; keep `import lbag.data` light for the pure-numpy tools.
    if name in ("TrainDataset", "ValDataset"):
        from . import datasets
        return getattr(datasets, name)
    raise AttributeError(f"module 'lbag.data' has no attribute {name!r}")

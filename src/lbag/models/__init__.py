"""The MIMO-UNet family: MIMO-UNet, MIMO-UNet+ and LBAG, plus checkpoint I/O."""

from .checkpoints import (CheckpointError, init_from_mimo_unet_plus, load_model, load_state_dict,
                          save_model)
from .mimo_unet import (PRESETS, DeblurOutput, MIMOUNet, MIMOUNetConfig, build_model, lbag, lbag_small,
                        mimo_unet, mimo_unet_plus)

__all__ = ["MIMOUNet", "MIMOUNetConfig", "DeblurOutput", "mimo_unet", "mimo_unet_plus", "lbag", "lbag_small",
           "build_model", "PRESETS", "load_model", "save_model", "load_state_dict", "init_from_mimo_unet_plus",
           "CheckpointError"]

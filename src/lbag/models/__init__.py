"""The networks of the paper's Table 1 and their checkpoint I/O.

The MIMO-UNet family (MIMO-UNet, MIMO-UNet+, LBAG) is imported here; the other baselines (DeepDeblur,
DeblurGAN-v2, SRN-DeblurNet, HINet, NAFNet) are reached by name through :mod:`.registry`
(``build("hinet")``, ``architectures()``), which imports their modules lazily so that one of them
failing never breaks ``import lbag``.
"""

from .checkpoints import (CheckpointError, Weights, identify, init_from_mimo_unet_plus, load_model,
                          load_state_dict, read_weights, save_model)
from .mimo_unet import (PRESETS, DeblurOutput, MIMOUNet, MIMOUNetConfig, build_model, lbag, lbag_small,
                        mimo_unet, mimo_unet_plus)
from .registry import (PAPER_TABLE1, Checkpoint, ModelSpec, PaperRow, architectures, build, detect_architecture,
                       get_spec, paper_row_for, spec_of, unavailable)
from .srn import SRNDeblur, srn_deblur

__all__ = ["MIMOUNet", "MIMOUNetConfig", "DeblurOutput", "mimo_unet", "mimo_unet_plus", "lbag", "lbag_small",
           "build_model", "PRESETS", "load_model", "save_model", "load_state_dict", "read_weights", "Weights", "identify",
           "init_from_mimo_unet_plus", "CheckpointError", "SRNDeblur", "srn_deblur", "architectures", "build",
           "get_spec", "spec_of", "detect_architecture", "unavailable", "paper_row_for", "ModelSpec",
           "Checkpoint", "PaperRow", "PAPER_TABLE1"]

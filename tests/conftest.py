"""Shared test data."""

import json
from pathlib import Path

import pytest
import torch

from lbag.models import lbag_small, save_model

# Keys and shapes of the published MIMO-UNet / MIMO-UNet+ / LBAG checkpoints (a copy of the project
# spec, shipped so the parity tests run in any clone).
OFFICIAL_SHAPES = Path(__file__).resolve().parent / "data" / "official_state_dict_shapes.json"


@pytest.fixture(scope="session")
def official_shapes() -> dict:
    return json.loads(OFFICIAL_SHAPES.read_text())


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """A tiny LBAG checkpoint (1 block per stage, width 8) for CLI tests."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_model(lbag_small(num_res=1, width=8), path)
    return path

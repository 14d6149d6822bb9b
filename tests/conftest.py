"""Shared test data."""

import json
import os
from pathlib import Path

import pytest
import torch

from lbag.models import lbag_small, save_model

# Under pytest-xdist each worker gets its share of the cores: torch's default (every core per worker)
# oversubscribes a 2-core CI machine and made the suite about 2x slower.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))

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

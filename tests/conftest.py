"""Shared test data."""

import json
from pathlib import Path

import pytest

# Keys and shapes of the published MIMO-UNet / MIMO-UNet+ / LBAG checkpoints (a copy of the project
# spec, shipped so the parity tests run in any clone).
OFFICIAL_SHAPES = Path(__file__).resolve().parent / "data" / "official_state_dict_shapes.json"


@pytest.fixture(scope="session")
def official_shapes() -> dict:
    return json.loads(OFFICIAL_SHAPES.read_text())

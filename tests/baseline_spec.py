"""The project spec's facts about the published baselines, shipped with the tests (tests/data/baselines):
official state_dict keys in order with their shapes, parameter counts, SRN-DeblurNet's TF variables."""

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "baselines"
SHAPES = json.loads((DATA / "state_dict_shapes.json").read_text())
PARAMS = json.loads((DATA / "params.json").read_text())

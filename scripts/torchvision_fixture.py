"""Write tests/data/torchvision_reference.json from the real torchvision.

Run it in an environment that has torchvision (it is not a dependency of resgraph):
    python scripts/torchvision_fixture.py
It records, for torchvision's ResNets, every state_dict key with its shape, and the
outputs of resnet18 and resnet50 under deterministic weights (tests/helpers.py `fill`)
on a fixed input, so the tests can check key-for-key and output-for-output compatibility offline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import fill, reference_input  # noqa: E402  (shared with the tests)

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "torchvision_reference.json"
MODELS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "resnext50_32x4d",
]
OUTPUTS = ["resnet18", "resnet50"]


def main() -> None:
    data: dict[str, object] = {"torchvision": torchvision.__version__, "keys": {}, "outputs": {}}
    for name in MODELS:
        model = getattr(torchvision.models, name)(weights=None)
        state = model.state_dict()
        data["keys"][name] = [[k, list(v.shape)] for k, v in state.items()]
        if name in OUTPUTS:
            model.load_state_dict(fill(state))
            model.eval()
            with torch.no_grad():
                data["outputs"][name] = model(reference_input()).tolist()
    OUT.write_text(json.dumps(data) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""``resgraph export``'s checks made before any work: the example input's size."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from helpers import CIFAR20
from resgraph.cli import main
from resgraph.export import MAX_EXAMPLE_BYTES, ExportError, check_example_size
from resgraph.passes import lower
from resgraph.spec import load_spec

SAMPLE = 3 * 32 * 32 * 4  # one float32 input of CIFAR20


def test_the_largest_fixed_batch_within_the_limit_is_taken(tmp_path):
    ir = lower(load_spec(CIFAR20))
    largest = MAX_EXAMPLE_BYTES // SAMPLE
    check_example_size(ir, largest)
    check_example_size(ir, None)
    with pytest.raises(ExportError, match=f"--batch {largest + 1}: the example input"):
        check_example_size(ir, largest + 1)


def test_a_huge_batch_is_one_error_line_and_writes_nothing(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out), "--batch", "10**8"])
    assert result.exit_code == 1  # not an integer: the parser's own message
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(out), "--batch", "100000000"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --batch 100000000: the example input (100000000 x 3x32x32 float32) would "
        "take 1144.41 GiB, over the 1 GiB limit; --batch dynamic exports one file for every "
        "batch size\n"
    )
    assert not out.exists()


# --- a classifier's weights into a backbone ----------------------------------------------
def _classifier_weights(tmp_path, extra=None):
    import torch

    from resgraph.emit.graph_module import build_module

    state = build_module(lower(load_spec(CIFAR20)), seed=1).state_dict()
    state.update(extra or {})
    path = tmp_path / "classifier.pt"
    torch.save(state, path)
    return path, state


def test_a_classifier_s_weights_export_as_its_backbone_without_the_head(tmp_path):
    from resgraph.export import export_spec

    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    weights, state = _classifier_weights(tmp_path)
    args = ["export", str(spec), "--outputs", "layer1", "-o", str(tmp_path / "b.pt2")]
    result = CliRunner().invoke(main, [*args, "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    left = [k for k in state if k.startswith(("layer2.", "fc."))]  # after layer1: not needed
    assert result.stderr.startswith(
        f"note: {weights}: {len(left)} tensors of the classifier that the backbone does not "
        f"have are left out: {', '.join(left[:3])} (+{len(left) - 3} more)\n"
    )
    ir = lower(load_spec(spec, ["outputs=[layer1]"]))
    assert export_spec(ir, tmp_path / "c.pt2", weights=weights).params < sum(
        v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k
    )


def test_a_tensor_that_no_classifier_has_is_still_refused(tmp_path):
    import torch

    spec = tmp_path / "s.yaml"
    spec.write_text(CIFAR20)
    weights, _ = _classifier_weights(tmp_path, {"extra.weight": torch.ones(1)})
    args = ["export", str(spec), "--outputs", "layer1", "-o", str(tmp_path / "b.pt2")]
    result = CliRunner().invoke(main, [*args, "--weights", str(weights)])
    assert result.exit_code == 1
    assert "unexpected: layer2.0.conv1.weight" in result.stderr and "note" not in result.stderr

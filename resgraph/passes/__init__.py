"""The compiler pipeline: named passes run in order, each followed by the verifier.

``RESGRAPH_DUMP_IR=1`` (or ``resgraph lower --dump-after PASS``) prints the IR after a pass.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence

from resgraph.ir import IR
from resgraph.passes.analysis import analyze
from resgraph.passes.lower import lower as lower_spec
from resgraph.passes.shapes import check_joins, infer_shapes
from resgraph.passes.shortcuts import insert_shortcuts
from resgraph.passes.verify import verify
from resgraph.spec.loader import with_outputs
from resgraph.spec.schema import ModelSpec

Pass = Callable[[IR], IR]

# (name, pass, shapes are set afterwards)
PIPELINE: list[tuple[str, Pass, bool]] = [
    ("infer_shapes", infer_shapes, True),
    ("insert_shortcuts", insert_shortcuts, False),
    ("shortcut_shapes", infer_shapes, True),  # shapes of the nodes insert_shortcuts added
    ("check_joins", check_joins, True),
    ("analyze", analyze, True),
]
PASS_NAMES = ["lower"] + [name for name, _, _ in PIPELINE]


def lower(
    spec: ModelSpec,
    *,
    outputs: Sequence[str] | None = None,
    dump_after: str | None = None,
    dump: Callable[[str], None] = print,
) -> IR:
    """Lower a spec and run every pass: the checked IR that all emitters read. ``outputs``
    (feature map names, e.g. ``["layer2", "layer3"]``) makes it a backbone, as the spec's
    ``outputs:`` key does (:func:`resgraph.spec.with_outputs`; a wrong name is a
    :class:`~resgraph.errors.SpecError` listing the valid ones)."""
    if outputs is not None:
        spec = with_outputs(spec, outputs)
    # The passes allocate thousands of small, long-lived objects and free none in cycles, so
    # the cyclic garbage collector's scans during them are wasted work (15-20% of the time
    # for cifar_resnet1202).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(spec, dump_after, dump)
    finally:
        if enabled:
            gc.enable()


def _run(spec: ModelSpec, dump_after: str | None, dump: Callable[[str], None]) -> IR:
    ir = lower_spec(spec)
    verify(ir, after="lower", shapes=False)
    if dump_after == "lower":
        dump(ir.dump())
    for name, fn, shaped in PIPELINE:
        ir = fn(ir)
        verify(ir, after=name, shapes=shaped)
        if dump_after == name:
            dump(ir.dump())
    return ir


__all__ = ["PASS_NAMES", "PIPELINE", "check_joins", "infer_shapes", "insert_shortcuts", "lower"]

"""Pass: parameters and multiply-adds of every node, derived from the op definitions.

Expects: shapes inferred. Guarantees: ``Node.params`` and ``Node.macs`` set. MACs count
the multiply-adds of conv and fc layers for one example, as the paper's FLOPs do; ECA's
1-D conv across channels is not counted (its parameters are), as in timm and the ECA paper.
"""

from __future__ import annotations

from resgraph.errors import Problem, SpecError
from resgraph.ir import IR

MAX_PARAMS = 4_000_000_000  # 16 GB of float32 weights: far past any real spec


def analyze(ir: IR) -> IR:
    total = 0
    for node in ir.nodes():
        assert node.shape is not None
        params, macs = node.op.params(), node.op.macs(node.shape)
        total += params
        if (params, macs) != (node.params, node.macs):
            ir.update(node.name, params=params, macs=macs)
    if total > MAX_PARAMS:
        smap = ir.spec._source
        loc = smap.locate(("stages",)) if smap else None
        raise SpecError(
            Problem(
                f"the network has {total:,} parameters, more than the limit of {MAX_PARAMS:,}",
                loc,
                "stages",
            )
        )
    return ir

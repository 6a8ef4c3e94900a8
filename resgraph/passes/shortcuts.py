"""Pass: insert the shortcut each block's option asks for (He et al. 2015, sec. 3.3).

Expects: lowered IR with shapes inferred, each join's port 1 wired to the block input.
Guarantees: per block with a residual join (add or gate) exactly one of four outcomes --
identity (nothing changes), option-A zero-pad (``downsample``: a parameter-free module),
projection (``downsample.0`` 1x1 conv with stride, ``downsample.1`` BN), or no shortcut
(plain network: the join is removed and the branch feeds the join's consumers). Blocks
without a join, or whose join has no shortcut port (a concatenation), are left alone.
Shapes of inserted nodes are not set; run ``infer_shapes`` after it.
"""

from __future__ import annotations

from dataclasses import replace

from resgraph.errors import Problem, ShapeError, SpecError
from resgraph.ir import IR, Block, Node
from resgraph.ops import RESIDUAL_JOINS, BatchNorm, Conv, GateMix, PadShortcut, fmt_shape


def insert_shortcuts(ir: IR) -> IR:
    for path, block in list(ir.blocks.items()):
        if block.join is None or not isinstance(ir.node(block.join).op, RESIDUAL_JOINS):
            continue  # no join, or one without a shortcut port (a concatenation)
        branch = ir.inputs(block.join)[0]
        out_shape, in_shape = ir.node(branch).shape, ir.node(block.shortcut_from).shape
        assert out_shape is not None and in_shape is not None  # infer_shapes ran before
        stride = block.arg("stride")
        changes = out_shape != in_shape
        if block.shortcut == "none":
            ir.blocks[path] = _remove_join(ir, block)
        elif block.shortcut == "A" and changes:
            if out_shape[0] < in_shape[0]:
                raise ShapeError(
                    Problem(
                        f"option A can only add channels, but {path} goes from "
                        f"{fmt_shape(in_shape)} to {fmt_shape(out_shape)}: use shortcut B or C",
                        block.loc,
                        f"{block.loc.path} ({path})" if block.loc else path,
                    )
                )
            pad = PadShortcut(in_shape[0], out_shape[0], int(stride))
            _rewire(
                ir,
                block,
                [Node(f"{path}.downsample", pad, path, "shortcut", block.loc)],
                block.shortcut_from,
            )
        elif block.shortcut == "C" or (block.shortcut == "B" and changes):
            source = ir.node(block.projection_from).shape
            assert source is not None
            nodes = [
                Node(
                    f"{path}.downsample.0",
                    Conv(source[0], out_shape[0], 1, int(stride)),
                    path,
                    "shortcut",
                    block.loc,
                ),
                Node(f"{path}.downsample.1", BatchNorm(out_shape[0]), path, "shortcut", block.loc),
            ]
            _rewire(ir, block, nodes, block.projection_from)
    return ir


def _rewire(ir: IR, block: Block, chain: list[Node], start: str) -> None:
    assert block.join is not None
    ir.disconnect(block.shortcut_from, block.join)
    x = start
    for node in chain:
        x = ir.add(node, x)
    ir.connect(x, block.join, port=1)


def _remove_join(ir: IR, block: Block) -> Block:
    assert block.join is not None
    join = ir.node(block.join)
    if isinstance(join.op, GateMix):
        raise SpecError(
            Problem(
                "a gated join needs a shortcut to gate; it cannot go with shortcut 'none'",
                block.loc,
                block.loc.path if block.loc else block.path,
            )
        )
    branch = ir.inputs(block.join)[0]
    for succ in ir.outputs(block.join):
        port = ir.graph.edges[block.join, succ]["port"]
        ir.connect(branch, succ, port=port)
    ir.remove(block.join)
    output = branch if block.output == block.join else block.output
    return replace(block, join=None, output=output)

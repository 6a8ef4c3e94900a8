"""Pass: insert the shortcut each block's option asks for (He et al. 2015, sec. 3.3).

Expects: lowered IR with shapes inferred, each join's port 1 wired to the block input.
Guarantees: per block with a residual join (add or gate) exactly one of five outcomes,
recorded as ``Block.shortcut_kind`` -- ``identity`` (nothing changes), ``zero-pad`` (option
A, ``downsample``: a parameter-free module), ``projection`` (options B and C:
``downsample.0`` conv with the block's stride, 1x1 or the spec's ``projection_kernel`` where
it downsamples, ``downsample.1`` BN), ``avg-projection`` (option D: ``downsample.0`` a 2x2
average pool with the stride, ceil mode, padding not counted, or an identity at stride 1,
``downsample.1`` 1x1 conv, ``downsample.2`` BN), or ``none`` (plain network: the join is
removed and the branch feeds the join's consumers). Blocks without a join, or whose join
has no shortcut port (a concatenation), are recorded as ``none``. Shapes of inserted nodes
are not set; run ``shortcut_shapes`` after it.
"""

from __future__ import annotations

from dataclasses import replace

from resgraph.errors import Problem, ShapeError
from resgraph.ir import IR, Block, Node, ShortcutKind
from resgraph.ops import AvgPool, Identity, Op, PadShortcut, fmt_shape
from resgraph.passes.scope import conv_op, norm_op


def insert_shortcuts(ir: IR) -> IR:
    gone: dict[str, str] = {}  # a removed join -> the branch that took its place
    for path, block in list(ir.blocks.items()):
        if block.input in gone or block.shortcut_input in gone:  # a block after a removed join
            block = replace(
                block,
                input=gone.get(block.input, block.input),
                shortcut_input=gone.get(block.shortcut_input, block.shortcut_input),
            )
        if not block.residual:  # no join, or one without a shortcut port (a concatenation)
            ir.blocks[path] = replace(block, shortcut_kind="none")
            continue
        assert block.join is not None
        branch = ir.inputs(block.join)[0]
        out_shape, in_shape = ir.node(branch).shape, ir.node(block.shortcut_input).shape
        assert out_shape is not None and in_shape is not None  # infer_shapes ran before
        changes = out_shape != ir.node(block.input).shape
        kind: ShortcutKind = "identity"
        if block.shortcut == "none":
            gone[block.join] = branch
            block = _remove_join(ir, block)
            kind = "none"
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
            pad = PadShortcut(in_shape[0], out_shape[0], block.stride)
            _rewire(ir, block, [_node(ir, block, "downsample", pad)])
            kind = "zero-pad"
        elif block.shortcut == "C" or (block.shortcut == "B" and changes):
            # timm's rule: the spec's kernel where the projection downsamples, 1x1 elsewhere
            k = ir.spec.projection_kernel if block.stride > 1 else 1
            pad = ((block.stride - 1) + (k - 1)) // 2
            conv = conv_op(ir.spec, in_shape[0], out_shape[0], k, block.stride, pad)
            _rewire(ir, block, _projection(ir, block, [conv, norm_op(ir.spec, out_shape[0])]))
            kind = "projection"
        elif block.shortcut == "D" and changes:  # He et al. 2019, ResNet-D
            pool: Op = Identity()
            if block.stride > 1:
                pool = AvgPool(2, block.stride, ceil_mode=True, count_include_pad=False)
            conv = conv_op(ir.spec, in_shape[0], out_shape[0], 1)
            chain = [pool, conv, norm_op(ir.spec, out_shape[0])]
            _rewire(ir, block, _projection(ir, block, chain))
            kind = "avg-projection"
        ir.blocks[path] = replace(block, shortcut_kind=kind)
    return ir


def _node(ir: IR, block: Block, name: str, op: Op) -> Node:
    """A shortcut module, named as the spec's ``names`` say (``downsample.0`` by default)."""
    path = f"{block.path}.{ir.spec.names.rename(name)}"
    return Node(path, op, block.path, "shortcut", "stage", (), block.loc)


def _projection(ir: IR, block: Block, chain: list[Op]) -> list[Node]:
    """A projection's modules ``downsample.0``, ... in order, the last (its norm) left out
    where the spec has no projection norm."""
    if not ir.spec.projection_norm:
        chain = chain[:-1]
    return [_node(ir, block, f"downsample.{i}", op) for i, op in enumerate(chain)]


def _rewire(ir: IR, block: Block, chain: list[Node]) -> None:
    assert block.join is not None
    ir.disconnect(block.input, block.join)
    x = block.shortcut_input
    for node in chain:
        x = ir.add(node, x)
    ir.connect(x, block.join, port=1)


def _remove_join(ir: IR, block: Block) -> Block:
    assert block.join is not None and block.join_kind == "add"  # the schema refuses a gate
    branch = ir.inputs(block.join)[0]
    for succ in ir.outputs(block.join):
        port = ir.graph.edges[block.join, succ]["port"]
        ir.connect(branch, succ, port=port)
    ir.remove(block.join)
    output = branch if block.output == block.join else block.output
    return replace(block, join=None, output=output)

"""``resgraph render``: pictures of the checked IR, drawn by graphviz.

:func:`to_dot` turns an IR into DOT source at one of three levels -- ``op`` (one node per
op), ``block`` (one node per residual block) or ``stage`` (one node per stage) -- and only
reads the IR. :mod:`.model` reads what a picture needs from the IR, :mod:`.picture` lays it
out as DOT, :mod:`.style` holds every colour, line style and shape, and :mod:`.command` is
the command line.

Shortcuts follow Figure 3 of He et al. (2015): identity shortcuts solid, projection
shortcuts (options B and C) dashed, zero-padding shortcuts (option A) dotted.

Nothing here imports torch; the ``dot`` program is needed only for svg, png and pdf.
"""

from resgraph.render.command import EXTENSIONS, FORMATS, RenderError, draw, render_cmd
from resgraph.render.model import shortcut_kind
from resgraph.render.picture import (
    LEVELS,
    MAX_BLOCK_NODES,
    MAX_OP_NODES,
    add_network,
    build,
    default_level,
    to_dot,
)

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "LEVELS",
    "MAX_BLOCK_NODES",
    "MAX_OP_NODES",
    "RenderError",
    "add_network",
    "build",
    "default_level",
    "draw",
    "render_cmd",
    "shortcut_kind",
    "to_dot",
]

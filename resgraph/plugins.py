"""Ops written in Python by a user: loaded only when the user asks, never by a spec.

``resgraph --plugin mypkg.ops COMMAND ...`` (or :func:`load_plugin` from Python) imports the
module ``mypkg.ops``; every op class it defines (a frozen dataclass deriving from
:class:`resgraph.ops.Op` with a ``kind`` of its own) joins the registry, so block
definitions can name it like a built-in op. A spec can only name ops; it never names a
module, so reading a spec downloaded from anywhere runs no code.

A plugin op that needs a module or function of its own names it in ``helper`` and sets
``helper_module`` to its module: the executed graph uses that object, and generated source
copies its code, as it does for resgraph's own helpers (``resgraph.nn``), so a generated
file stays standalone. Such a helper may use only what a generated file imports: ``torch``,
``torch.nn.functional as F``, ``nn`` and ``Tensor``.
"""

from __future__ import annotations

import importlib
import re

from resgraph import ops
from resgraph.errors import ResgraphError

MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class PluginError(ResgraphError):
    """A plugin cannot be loaded: ``--plugin NAME: what is wrong``."""


def load_plugin(name: str) -> list[str]:
    """Import module ``name`` so that the ops it defines join the registry; the kinds of the
    ops it added, in the order it defines them. Loading a module twice adds nothing."""
    if not MODULE_PATH.fullmatch(name):
        raise PluginError(f"--plugin {name}: not a Python module path (e.g. mypkg.ops)")
    before: dict[str, type[ops.Op]] = {}
    for cls in ops.op_classes():  # the first class of a kind keeps it (resgraph's own first)
        before.setdefault(cls.__dict__.get("kind", ""), cls)
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # a plugin is the user's code: any failure to import is theirs
        raise PluginError(
            f"--plugin {name}: cannot import it: {type(exc).__name__}: {exc}"
        ) from None
    added = [
        c for c in ops.op_classes() if c.__module__ == module.__name__ and "kind" in c.__dict__
    ]
    if not added and not any(c.__module__ == module.__name__ for c in before.values()):
        raise PluginError(f"--plugin {name}: it defines no op (a subclass of resgraph.ops.Op)")
    kinds = []
    for cls in added:
        kind = cls.__dict__["kind"]
        other = before.get(kind)
        if other is not None and other is not cls:
            raise PluginError(
                f"--plugin {name}: op {cls.__name__} takes the kind {kind!r} of "
                f"{other.__module__}.{other.__name__}: choose another kind"
            )
        if cls.helper and cls.helper_module == name and cls.helper in ops.FILE_NAMES:
            raise PluginError(
                f"--plugin {name}: op {cls.__name__}'s helper {cls.helper!r} is a name "
                f"generated files already use"
            )
        kinds.append(kind)
    return kinds

"""What each option value is called wherever it shows, one table per option: a fragment of
a block's class name (``SE`` in ``SEBottleneck``), the summary's wording (the canonical
name) and a picture's label. The emitters, the summary and the pictures read them here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    cls: str  # prefix of a block's class name ("" adds none)
    summary: str  # in the canonical name
    label: str  # in a picture's block label


# channel attention's type: Hu et al. 2018 (SE), Wang et al. 2020 (ECA)
ATTENTION = {"se": Names("SE", "SE", "SE"), "eca": Names("ECA", "ECA", "ECA")}
# a block's anti_alias, whatever its filter (Zhang 2019)
ANTI_ALIAS = Names("AntiAliased", "anti-aliased", "anti-aliased")
# a block's preactivation: true (He et al. 2016)
PREACTIVATION = Names("PreAct", "PreAct-ResNet", "pre-activation")
# a block's join: 'gate' (highway networks, Srivastava et al. 2015)
GATED = Names("Gated", "gated (highway) joins", "gated")
# the shortcut options (He et al. 2015, sec. 3.3; D: He et al. 2019)
SHORTCUT = {
    "A": Names("", "option A", "A"),
    "B": Names("", "option B", "B"),
    "C": Names("", "option C", "C"),
    "D": Names("", "option D", "D"),
    "identity": Names("", "identity", "identity"),
    "none": Names("Plain", "no", "no"),
}

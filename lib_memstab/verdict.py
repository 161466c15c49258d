"""One image's result: what the guard found and did, its one-line summary and a neutral dict (the host adapter owns
its own format, e.g. the webui's infotext grammar in memstab_webui/infotext.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SEVERITIES = ("none", "mild", "strong")


@dataclass
class Verdict:
    image: int  # row in the batch
    segment: int  # 0 for the first sampling pass; a hires second pass (new latent shape) is 1, ...
    steps: int  # steps observed
    score: float  # max |z| of the update norm over the score window
    flagged: bool
    severity: str  # "none" | "mild" | "strong"
    first_step: int | None
    steps_mitigated: int
    nonfinite: bool = False
    extrapolated: bool = False  # some step lay outside the profile's range (statistics were clamped to its edge)
    cond_gap: float | None = None  # mean Wen et al. gap over the score window, when the host provided it
    z_update: list[float] = field(default_factory=list)
    z_latent: list[float] = field(default_factory=list)
    z_x0: list[float] = field(default_factory=list)
    mitigated: list[int] = field(default_factory=list)  # step indices where a correction was applied

    @property
    def label(self) -> str:
        if self.nonfinite:
            return "nonfinite"
        return "memorized" if self.flagged else "clean"

    def summary(self) -> str:
        """One human-readable line, e.g. 'memorized (strong), score 17.25, first step 2, mitigated 6'."""
        parts = [self.label + (f" ({self.severity})" if self.flagged else ""), f"score {fmt_number(self.score)}"]
        if self.first_step is not None:
            parts.append(f"first step {self.first_step}")
        if self.steps_mitigated:
            parts.append(f"mitigated {self.steps_mitigated}")
        if self.extrapolated:
            parts.append("extrapolated")
        return ", ".join(parts)

    @property
    def notes(self) -> list[str]:
        return [n for n, on in (("extrapolated", self.extrapolated), ("nonfinite", self.nonfinite)) if on]

    def to_dict(self) -> dict:
        """The result without its per-step traces, in plain types (a host writes it in its own format)."""
        return {"label": self.label, "score": self.score, "flagged": self.flagged, "severity": self.severity,
                "first_step": self.first_step, "steps": self.steps, "steps_mitigated": self.steps_mitigated,
                "cond_gap": self.cond_gap, "notes": self.notes, "image": self.image, "segment": self.segment}


def fmt_number(v: float, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "nan"
    return f"{v:.{digits}f}" if digits == 2 else f"{v:.{digits}g}"

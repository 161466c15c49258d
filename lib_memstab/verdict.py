"""Correction -> annotation: one image's result, and its compact infotext form (which parses back)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

PREFIX = "MemStab"
SEVERITIES = ("none", "mild", "strong")
_KEY_RE = re.compile(r"^\w[\w \-/]+$")  # what the webui's infotext parser accepts as a key


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
        parts = [self.label + (f" ({self.severity})" if self.flagged else ""), f"score {_fmt(self.score)}"]
        if self.first_step is not None:
            parts.append(f"first step {self.first_step}")
        if self.steps_mitigated:
            parts.append(f"mitigated {self.steps_mitigated}")
        if self.extrapolated:
            parts.append("extrapolated")
        return ", ".join(parts)

    def to_infotext(self, prefix: str = PREFIX) -> dict[str, str]:
        """Compact values under keys the webui's infotext parser reads back (``\\w[\\w \\-/]+``)."""
        d = {f"{prefix} verdict": self.label, f"{prefix} score": _fmt(self.score)}
        if self.flagged:
            d[f"{prefix} severity"] = self.severity
            d[f"{prefix} first step"] = str(self.first_step)
        if self.steps_mitigated:
            d[f"{prefix} mitigated steps"] = str(self.steps_mitigated)
        if self.cond_gap is not None:
            d[f"{prefix} cond gap"] = _fmt(self.cond_gap, 4)
        notes = [n for n, on in (("extrapolated", self.extrapolated), ("nonfinite", self.nonfinite)) if on]
        if notes:
            d[f"{prefix} notes"] = "+".join(notes)
        assert all(_KEY_RE.match(k) for k in d)
        return d

    @classmethod
    def from_infotext(cls, d: dict, prefix: str = PREFIX, image: int = 0, segment: int = 0) -> Verdict:
        """Parse what ``to_infotext`` wrote; raises ValueError naming the key whose value is bad."""
        def get(key, default=None):
            return d.get(f"{prefix} {key}", default)

        label = get("verdict")
        if label not in ("clean", "memorized", "nonfinite"):
            raise ValueError(f"{prefix} verdict must be clean, memorized or nonfinite; got {label!r}")
        try:
            score = float(get("score"))
        except (TypeError, ValueError):
            raise ValueError(f"{prefix} score must be a number; got {get('score')!r}") from None
        flagged = label == "memorized" or get("severity") is not None
        severity = get("severity", "none")
        if severity not in SEVERITIES:
            raise ValueError(f"{prefix} severity must be one of {SEVERITIES}; got {severity!r}")
        first = get("first step")
        mitigated = get("mitigated steps", "0")
        gap = get("cond gap")
        try:
            first = None if first is None else int(first)
            mitigated = int(mitigated)
            gap = None if gap is None else float(gap)
        except ValueError as e:
            raise ValueError(f"{prefix}: a step count or the cond gap is not a number ({e})") from None
        notes = set(filter(None, str(get("notes", "")).split("+")))
        bad = notes - {"extrapolated", "nonfinite"}
        if bad:
            raise ValueError(f"{prefix} notes: unknown note(s) {sorted(bad)}")
        return cls(image=image, segment=segment, steps=0, score=score, flagged=flagged, severity=severity,
                   first_step=first, steps_mitigated=mitigated, nonfinite=label == "nonfinite" or "nonfinite" in notes,
                   extrapolated="extrapolated" in notes, cond_gap=gap)


def _fmt(v: float, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "nan"
    return f"{v:.{digits}f}" if digits == 2 else f"{v:.{digits}g}"

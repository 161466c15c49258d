"""The guard's knobs, validated once on construction so that a bad value never reaches a sampling step."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .rules import RULES

MODES = ("off", "detect", "mitigate")
MITIGATIONS = ("repel", "paper")  # what mitigate mode does; see lib_memstab.correction


@dataclass(frozen=True)
class GuardConfig:
    """What the guard does and how sensitive it is.

    The defaults are the paper's setting at 50 steps: (tau_mild, tau_strong, gamma, k) = (3, 14, 3, 10), with k
    expressed as a fraction of the schedule so that it carries over to other step counts.
    """

    mode: str = "detect"
    tau_mild: float = 3.0  # z-score above which a step is out of the stability region
    tau_strong: float = 14.0  # x0_hat z-score above which a flagged generation is a strong case
    gamma: float = 3.0  # half-width of the stability region, in reference standard deviations
    early_fraction: float = 0.2  # mild cases are corrected only in this first part of the schedule
    score_window: int | str = "all"  # the paper rule's score: the max over the first k steps, or over all steps
    verdict: str = "calibrated"  # the final verdict: thresholds from the reference runs, or the paper's AND rule
    fpr_suspicious: float = 0.02  # "suspicious" above the score that this share of reference generations exceed
    fpr_memorized: float = 0.005  # "memorized" above the score that this share of reference generations exceed
    fpr_early: float = 0.01  # the early flag fires above the early score that this share of references exceed
    mitigation: str = "repel"  # "repel": self-repulsion from the flagged x0_hat; "paper": the paper's norm clamps
    repel_strength: float = 1.0  # share of x0_hat's component along the flagged x0_hat that repel removes

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"GuardConfig.mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        for name, low in (("tau_mild", 0.0), ("tau_strong", 0.0), ("gamma", 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= low:
                raise ValueError(f"GuardConfig.{name} must be a finite number > {low:g}; got {v!r}")
        if self.tau_strong < self.tau_mild:
            raise ValueError(f"GuardConfig.tau_strong must be >= tau_mild ({self.tau_mild:g}); got {self.tau_strong!r}")
        ef = self.early_fraction
        if isinstance(ef, bool) or not isinstance(ef, (int, float)) or not (0.0 <= ef <= 1.0):
            raise ValueError(f"GuardConfig.early_fraction must be a number in [0, 1]; got {ef!r}")
        if self.verdict not in RULES:
            raise ValueError(f"GuardConfig.verdict must be one of {', '.join(RULES)}; got {self.verdict!r}")
        for name in ("fpr_suspicious", "fpr_memorized", "fpr_early"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v < 1.0):
                raise ValueError(f"GuardConfig.{name} must be a number in [0, 1); got {v!r}")
        if self.fpr_suspicious < self.fpr_memorized:
            raise ValueError(f"GuardConfig.fpr_suspicious must be >= fpr_memorized ({self.fpr_memorized:g}); got "
                             f"{self.fpr_suspicious!r}")
        if self.mitigation not in MITIGATIONS:
            raise ValueError(f"GuardConfig.mitigation must be one of {', '.join(MITIGATIONS)}; got "
                             f"{self.mitigation!r}")
        rs = self.repel_strength
        if isinstance(rs, bool) or not isinstance(rs, (int, float)) or not (0.0 < rs <= 2.0):
            raise ValueError(f"GuardConfig.repel_strength must be a number in (0, 2]; got {rs!r}")
        sw = self.score_window
        if not (sw == "all" or (isinstance(sw, int) and not isinstance(sw, bool) and sw >= 1)):
            raise ValueError(f"GuardConfig.score_window must be 'all' or an integer >= 1; got {sw!r}")

    @classmethod
    def from_dict(cls, d: dict) -> GuardConfig:
        """Build from a plain dict (API arguments, JSON); unknown keys are an error, not silently dropped."""
        if not isinstance(d, dict):
            raise ValueError(f"GuardConfig.from_dict needs a dict; got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"GuardConfig: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

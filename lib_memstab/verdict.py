"""One image's result: what the guard found and did, its one-line summary and a neutral dict (the host adapter owns
its own format, e.g. the webui's infotext grammar in memstab_webui/infotext.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import rules

SEVERITIES = ("none", "mild", "strong")


@dataclass
class Verdict:
    image: int  # row in the batch
    segment: int  # 0 for the first sampling pass; a hires second pass (new latent shape) is 1, ...
    steps: int  # steps observed
    score: float  # the score the verdict is judged on (calibrated: max update z over every step)
    flagged: bool  # the final verdict is not clean
    severity: str  # the early flag's: "none" | "mild" | "strong"
    first_step: int | None  # the step the early flag (the paper's AND rule) fired at, which arms mitigation
    steps_mitigated: int
    nonfinite: bool = False
    extrapolated: bool = False  # some step lay outside the profile's range (statistics were clamped to its edge)
    cond_gap: float | None = None  # mean Wen et al. gap over the score window, when the host provided it
    level: str = ""  # "clean" | "suspicious" | "memorized"; empty: from flagged (the paper rule)
    rule: str = "paper"  # "calibrated" (thresholds from the reference runs) or "paper" (the AND rule)
    thresholds: dict | None = None  # {"suspicious": t1, "memorized": t2} the score was compared with
    thresholds_from: str = ""  # "reference runs", or why a fallback was used
    early_score: float | None = None  # the early signal's max over the early window, where the verdict used it
    early_thresholds: dict | None = None  # its {"suspicious", "memorized"} thresholds (calibrated with the others)
    z_update: list[float] = field(default_factory=list)
    z_latent: list[float] = field(default_factory=list)
    z_x0: list[float] = field(default_factory=list)
    z_gap: list[float] = field(default_factory=list)  # one-sided cond-gap z-scores (NaN where not measured)
    early_step: int | None = None  # guard v2's early flag (rules.early_signal above its calibrated threshold)
    mitigated: list[int] = field(default_factory=list)  # step indices where a correction was applied

    def __post_init__(self):
        if not self.level:
            self.level = "memorized" if self.flagged else "clean"

    @property
    def early_flag(self) -> bool:
        return self.first_step is not None

    @property
    def label(self) -> str:
        return "nonfinite" if self.nonfinite else self.level

    @property
    def notes(self) -> list[str]:
        return [n for n, on in (("extrapolated", self.extrapolated), ("nonfinite", self.nonfinite)) if on]

    def summary(self) -> str:
        """One line, e.g. 'memorized, score 20.70 (suspicious > 3.10, memorized > 9.81), early flag at step 2
        (strong), mitigated 6' or, for the paper rule, 'memorized (strong), score 17.25, first step 2'."""
        if self.rule == "paper":
            parts = [self.label + (f" ({self.severity})" if self.flagged else ""), f"score {fmt_number(self.score)}"]
            if self.first_step is not None:
                parts.append(f"first step {self.first_step}")
        else:
            th = self.thresholds or {}
            bounds = f" (suspicious > {fmt_number(th.get('suspicious'))}, memorized > " \
                     f"{fmt_number(th.get('memorized'))})" if th else ""
            parts = [self.label, f"score {fmt_number(self.score)}{bounds}"]
            if self.early_thresholds:
                et = self.early_thresholds
                parts.append(f"early score {fmt_number(self.early_score)} (suspicious > "
                             f"{fmt_number(et.get('suspicious'))}, memorized > {fmt_number(et.get('memorized'))})")
            if self.early_step is not None:
                parts.append(f"early flag at step {self.early_step}")
            if self.first_step is not None:
                parts.append(f"paper flag at step {self.first_step} ({self.severity})")
        if self.steps_mitigated:
            parts.append(f"mitigated {self.steps_mitigated}")
        if self.extrapolated:
            parts.append("extrapolated")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """The result without its per-step traces, in plain types (a host writes it in its own format)."""
        return {"label": self.label, "level": self.level, "score": self.score, "flagged": self.flagged,
                "rule": self.rule, "thresholds": dict(self.thresholds) if self.thresholds else None,
                "thresholds_from": self.thresholds_from, "early_score": self.early_score,
                "early_thresholds": dict(self.early_thresholds) if self.early_thresholds else None,
                "early_step": self.early_step, "severity": self.severity,
                "first_step": self.first_step,
                "steps": self.steps, "steps_mitigated": self.steps_mitigated, "cond_gap": self.cond_gap,
                "notes": self.notes, "image": self.image, "segment": self.segment}


def verdict_thresholds(profile, config, kind: str = "update") -> tuple[dict[str, float], dict | None, str]:
    """The calibrated verdict's thresholds for the whole-pass score and for the early score (None where the profile
    predates the joint calibration: then the whole-pass score decides alone) and where they come from. ``kind``:
    the early score's (lib_memstab.rules.early_kind). The Guard also arms repel mitigation on them."""
    pairs = profile.reference_pairs.get(kind, [])
    if len(pairs) >= 2:
        th, eth = rules.joint_thresholds(pairs, config.fpr_suspicious, config.fpr_memorized)
        return th, eth, f"reference runs ({len(pairs)}): whole pass and early score together"
    if len(profile.reference_scores) >= 2:
        return (rules.thresholds(profile.reference_scores, config.fpr_suspicious, config.fpr_memorized), None,
                f"reference runs ({len(profile.reference_scores)}): whole pass only (calibrate again for the "
                "early score)")
    # an older profile: the paper's own z thresholds, said so
    return ({"suspicious": config.tau_mild, "memorized": config.tau_strong}, None,
            "tau_mild / tau_strong (the profile has no reference scores: calibrate again)")


def final_verdict(z_update, profile, config, early_score: float | None = None, kind: str = "update",
                  thresholds: tuple | None = None) -> dict:
    """The fields of the final verdict for one pass: score, level, flagged, rule, thresholds, thresholds_from and,
    where the profile has joint thresholds, early_score and early_thresholds. The level is the higher of the two
    scores' levels. ``early_score``: the max of the early signal over the early window (NaN or None: not measured).
    The early flag is the caller's (the Guard latches it on the device; a recorder recomputes it from the trace).
    ``thresholds``: what ``verdict_thresholds(profile, config, kind)`` returns, where the caller has it already."""
    if config.verdict == "paper":
        return {"score": rules.pass_score(z_update, None if config.score_window == "all" else
                                          int(config.score_window)), "rule": "paper"}
    score = rules.pass_score(z_update)
    th, eth, source = thresholds or verdict_thresholds(profile, config, kind)
    lv = rules.level(score, th) if math.isfinite(score) else "clean"
    out = {"score": score, "rule": "calibrated", "thresholds": th, "thresholds_from": source}
    if eth is not None and early_score is not None and math.isfinite(early_score):
        lv = rules.higher(lv, rules.level(early_score, eth))
        out.update(early_score=float(early_score), early_thresholds=eth)
    return {**out, "level": lv, "flagged": lv != "clean"}


def fmt_number(v: float | None, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return "nan"
    return f"{v:.{digits}f}" if digits == 2 else f"{v:.{digits}g}"

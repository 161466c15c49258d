"""The guard's decisions, each written once and used by the Guard, the Recorder, the adapter and the benchmark.

- ``early_signal``: guard v2's early flag, the larger of the update and cond-gap z-scores, against a threshold set
  like the verdict's on the references' early scores (the first ``early_fraction`` of the schedule).
- ``early_flag``: the paper's per-step rule (update AND x0_hat z-scores above tau_mild), which arms mitigation. It
  fires early or not at all, and on the testbed most copies never trip it (docs/findings.md).
- ``pass_score``: the detection score of a whole pass, the max over its steps of the update z-score (the paper's
  S_mem over every step).
- ``thresholds`` / ``level``: the final verdict. Its thresholds are quantiles of the reference trajectories' own
  cross-fitted scores (stored in the profile), so "memorized" means "scored above all but ``fpr_memorized`` of the
  ordinary reference generations", and a score above a threshold is never called clean.
- ``joint_thresholds``: the same for two scores at once (the whole-pass score and the early score): one threshold
  each, at the same rank, as high as needed for at most ``fpr`` of the references to pass either. The early score
  separates copies where the whole-pass score does not (docs/findings.md), and calibrating the pair together keeps
  the stated share of false alarms instead of adding two.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LEVELS = ("clean", "suspicious", "memorized")
RULES = ("calibrated", "paper")  # GuardConfig.verdict
EARLY_FRACTION = 0.2  # the early flag's window where a profile's meta does not say: the paper's k = 10 of 50 steps


def early_flag(z_update: torch.Tensor, z_x0: torch.Tensor, tau_mild: float) -> torch.Tensor:
    """Per row: both the update and the x0_hat leave the region at this step (the paper's AND rule)."""
    return (z_update > tau_mild) & (z_x0 > tau_mild)


def early_signal(z_update, z_gap):
    """The early flag's per-step signal: the larger of the update z and the one-sided cond-gap z where the gap was
    measured (A1111), the update z alone elsewhere (Forge, reForge, AND prompts). Torch or numpy, elementwise."""
    if isinstance(z_update, torch.Tensor):
        return torch.where(torch.isfinite(z_gap), torch.maximum(z_update, z_gap), z_update)
    return np.where(np.isfinite(z_gap), np.fmax(z_update, z_gap), z_update)


def early_kind(has_gap: bool) -> str:
    """Which reference early scores apply: with the cond gap, or the update alone."""
    return "max" if has_gap else "update"


def pass_score(z_update, window: int | None = None) -> float:
    """Max finite update z-score over the first ``window`` steps (all when None); NaN when there is none."""
    v = np.asarray(z_update, dtype=np.float64)[: window if window is not None else None]
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else math.nan


def threshold_at(reference_scores: list[float], fpr: float) -> float:
    """The smallest score that at most a share ``fpr`` of the reference scores exceed (an order statistic: with 50
    references and fpr 0.01 it is their maximum)."""
    s = sorted(reference_scores)
    allowed = math.floor(fpr * len(s) + 1e-9)  # references that may lie above the threshold
    return float(s[max(len(s) - 1 - allowed, 0)])


def thresholds(reference_scores: list[float], fpr_suspicious: float, fpr_memorized: float) -> dict[str, float]:
    """{"suspicious": t1, "memorized": t2} with t1 <= t2."""
    t_mem = threshold_at(reference_scores, fpr_memorized)
    return {"suspicious": min(threshold_at(reference_scores, fpr_suspicious), t_mem), "memorized": t_mem}


def joint_threshold(pairs, fpr: float) -> tuple[float, float]:
    """(t_pass, t_early): the lowest pair of order statistics, both at the same rank, such that at most a share
    ``fpr`` of the reference ``pairs`` [(pass score, early score), ...] lie above t_pass or above t_early."""
    v = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    n = len(v)
    allowed = math.floor(fpr * n + 1e-9)
    cols = np.sort(v, 0)
    for k in range(min(allowed, n - 1), -1, -1):  # k references may pass each score alone
        t = cols[n - 1 - k]
        if int(((v[:, 0] > t[0]) | (v[:, 1] > t[1])).sum()) <= allowed:
            return float(t[0]), float(t[1])
    return float(cols[-1, 0]), float(cols[-1, 1])  # not reached: at k = 0 no reference lies above both maxima


def joint_thresholds(pairs, fpr_suspicious: float, fpr_memorized: float) -> tuple[dict, dict]:
    """({"suspicious": t1, "memorized": t2} for the whole-pass score, the same for the early score), t1 <= t2."""
    ms, me = joint_threshold(pairs, fpr_memorized)
    ss, se = joint_threshold(pairs, fpr_suspicious)
    return {"suspicious": min(ss, ms), "memorized": ms}, {"suspicious": min(se, me), "memorized": me}


def level(score: float, th: dict[str, float]) -> str:
    """clean / suspicious / memorized: strictly above a threshold is that level; NaN is for the caller to name."""
    if score > th["memorized"]:
        return "memorized"
    if score > th["suspicious"]:
        return "suspicious"
    return "clean"


def higher(a: str, b: str) -> str:
    """The more severe of two levels."""
    return max(a, b, key=LEVELS.index)

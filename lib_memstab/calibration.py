"""Reference generations -> a profile, driven through a host's own generation function.

The host supplies ``generate(prompt, seed, observe)``, which runs one generation with ``observe`` as the per-step
call (the same call as ``Guard.observe``). Nothing is written here: the caller saves the returned profile, so an
interrupted calibration leaves no half-written file.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .config import GuardConfig
from .profile import MAX_META_INT, Profile, ProfileError, check_meta
from .recorder import Recorder
from .rules import early_kind, threshold_at
from .text import brief
from .verdict import verdict_thresholds

# The most a calibration may ask for (the adapter checks requests against these before queueing anything).
MAX_PROMPTS = 1000
MAX_SEEDS = 64
MAX_GENERATIONS = 4096  # prompts x seeds


class CalibrationInterrupted(RuntimeError):
    pass


class CalibrationTooLarge(ProfileError):
    """A calibration request beyond MAX_PROMPTS, MAX_SEEDS or MAX_GENERATIONS (refused before any generation). A
    ProfileError, so that callers handling invalid profile input refuse it the same way."""


@dataclass
class ThresholdSetter:
    """Which reference generations set one threshold: with few references a threshold is their largest score, so one
    wide ordinary prompt can hold it up for every image (docs/findings.md). ``set_by``: the references scoring at or
    above it, highest first (at most SETTERS_SHOWN); ``next``: the highest score of any other prompt (about where the
    threshold would fall without those prompts; None: there is none)."""

    threshold: str  # what it is, in words
    value: float
    set_by: list[tuple[str | None, float]]
    next: float | None


SETTERS_SHOWN = 3


def threshold_setters(rows, profile: Profile, config: GuardConfig | None = None) -> list[ThresholdSetter]:
    """The references behind the verdict's `memorized` thresholds and the early flag's, at ``config``'s rates.
    ``rows``: Recorder.reference_rows of the recorder that built ``profile`` [(pass score, {kind: early}, label)]."""
    config = config or GuardConfig()
    kind = early_kind(profile.has_gap)
    th, eth, _ = verdict_thresholds(profile, config, kind)
    scored = {"pass": [(lab, a) for a, _, lab in rows], "early": [(lab, e.get(kind)) for _, e, lab in rows]}
    wanted = [("whole-pass score, memorized", "pass", th["memorized"])]
    if eth is not None:
        wanted.append(("early score, memorized", "early", eth["memorized"]))
    early = profile.reference_early.get(kind, [])
    if len(early) >= 2:
        wanted.append(("early flag", "early", threshold_at(early, config.fpr_early)))
    out = []
    for name, which, t in wanted:
        vals = [(lab, float(v)) for lab, v in scored[which] if v is not None and math.isfinite(v)]
        above = sorted((x for x in vals if x[1] >= t), key=lambda x: -x[1])
        setters = {lab for lab, _ in above}
        others = [v for lab, v in vals if lab not in setters]  # another seed of a setter is no way out
        out.append(ThresholdSetter(name, float(t), above[:SETTERS_SHOWN], max(others) if others else None))
    return out


@dataclass
class CalibrationResult:
    profile: Profile
    outliers: list[tuple[int, str | None, float]]  # reference generations outside their own region
    generations: int
    setters: list[ThresholdSetter] = field(default_factory=list)  # threshold_setters at the default rates


def run_calibration(generate: Callable, prompts: Iterable[str], seeds: Iterable[int] = (0,), *,
                    should_stop: Callable[[], bool] = lambda: False,
                    progress: Callable[[int, int], None] | None = None,
                    axis: str = "log_sigma", statistic: str = "median_mad", meta: dict | None = None,
                    outlier_tau: float = 3.0) -> CalibrationResult:
    """Run every (prompt, seed) through ``generate`` with a recorder and build a profile (robust statistics by
    default, so that a memorized prompt in the reference set does not widen the region; it is listed instead).

    ``generate`` should give every prompt its own noise (e.g. seed + 1000 * prompt index): with one shared noise the
    early, noise-dominated steps would show almost no spread and the region there would be far too narrow.

    ``prompts`` and ``seeds``: lists (or any iterables). More than MAX_PROMPTS prompts, MAX_SEEDS seeds or
    MAX_GENERATIONS pairs raises CalibrationTooLarge, and a seed that is not an integer within +-2**53 or a ``meta``
    that is not a saveable JSON object raises ProfileError, all before the first generation.
    """
    prompts = _bounded(prompts, MAX_PROMPTS, "reference prompts")
    seeds = [_seed(s) for s in _bounded(seeds, MAX_SEEDS, "seeds")]
    total = len(prompts) * len(seeds)
    if total > MAX_GENERATIONS:
        raise CalibrationTooLarge(f"{len(prompts)} prompts x {len(seeds)} seeds is {total} generations; at most "
                                  f"{MAX_GENERATIONS}")
    meta = {"reference_prompts": len(prompts), "seeds": seeds, **(meta or {})}
    check_meta(meta)  # before the long run, not after it
    rec = Recorder()
    jobs = ((p, s) for p in prompts for s in seeds)
    for k, (prompt, seed) in enumerate(jobs):
        if should_stop():
            raise CalibrationInterrupted(f"calibration interrupted after {k} of {total} generations; "
                                         "no profile was written")
        generate(prompt, seed, rec.observe)
        if should_stop():  # the host may have cut this generation short: never keep a partial trajectory
            raise CalibrationInterrupted(f"calibration interrupted during generation {k + 1} of {total}; "
                                         "no profile was written")
        rec.finish_run([prompt])
        if progress:
            progress(k + 1, total)
    profile = rec.build_profile(axis=axis, statistic=statistic, meta=meta)
    return CalibrationResult(profile, rec.outliers(profile, outlier_tau), len(rec.trajectories),
                             threshold_setters(rec.reference_rows, profile))


def _bounded(items, limit: int, what: str) -> list:
    """``items`` as a list of at most ``limit``; refused from len() when it has one, else after limit + 1 items, so
    that a huge range or an endless iterator costs nothing."""
    try:
        n = len(items)
    except TypeError:
        n = None
    if n is not None and n > limit:
        raise CalibrationTooLarge(f"{n} {what}; at most {limit}")
    try:
        out = list(itertools.islice(items, limit + 1))
    except TypeError:
        raise CalibrationTooLarge(f"the {what} must be a list; got {type(items).__name__}") from None
    if len(out) > limit:
        raise CalibrationTooLarge(f"more than {limit} {what}; at most {limit}")
    return out


def _seed(s) -> int:
    try:
        v = operator.index(s)  # ints and integer scalars; never a float or bool-like string
    except TypeError:
        raise ProfileError(f"a seed must be an integer; got {brief(s)}") from None
    if isinstance(s, bool) or abs(v) > MAX_META_INT:
        raise ProfileError(f"a seed must be an integer within +-2**53; got {brief(s)}")
    return v

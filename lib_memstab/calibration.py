"""Reference generations -> a profile, driven through a host's own generation function.

The host supplies ``generate(prompt, seed, observe)``, which runs one generation with ``observe`` as the per-step
call (the same call as ``Guard.observe``). Nothing is written here: the caller saves the returned profile, so an
interrupted calibration leaves no half-written file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .profile import Profile
from .recorder import Recorder


class CalibrationInterrupted(RuntimeError):
    pass


@dataclass
class CalibrationResult:
    profile: Profile
    outliers: list[tuple[int, str | None, float]]  # reference generations outside their own region
    generations: int


def run_calibration(generate: Callable, prompts: list[str], seeds: list[int] = (0,), *,
                    should_stop: Callable[[], bool] = lambda: False,
                    progress: Callable[[int, int], None] | None = None,
                    axis: str = "log_sigma", statistic: str = "median_mad", meta: dict | None = None,
                    outlier_tau: float = 3.0) -> CalibrationResult:
    """Run every (prompt, seed) through ``generate`` with a recorder and build a profile (robust statistics by
    default, so that a memorized prompt in the reference set does not widen the region; it is listed instead).

    ``generate`` should give every prompt its own noise (e.g. seed + 1000 * prompt index): with one shared noise the
    early, noise-dominated steps would show almost no spread and the region there would be far too narrow.
    """
    rec = Recorder()
    jobs = [(p, s) for p in prompts for s in seeds]
    for k, (prompt, seed) in enumerate(jobs):
        if should_stop():
            raise CalibrationInterrupted(f"calibration interrupted after {k} of {len(jobs)} generations; "
                                         "no profile was written")
        generate(prompt, seed, rec.observe)
        if should_stop():  # the host may have cut this generation short: never keep a partial trajectory
            raise CalibrationInterrupted(f"calibration interrupted during generation {k + 1} of {len(jobs)}; "
                                         "no profile was written")
        rec.finish_run([prompt])
        if progress:
            progress(k + 1, len(jobs))
    profile = rec.build_profile(axis=axis, statistic=statistic,
                                meta={"reference_prompts": len(prompts), "seeds": list(seeds), **(meta or {})})
    return CalibrationResult(profile, rec.outliers(profile, outlier_tau), len(rec.trajectories))

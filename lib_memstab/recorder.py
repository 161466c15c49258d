"""Reference trajectories -> a Profile (the empirical stability region).

``Recorder.observe`` is the same per-step call as ``Guard.observe`` and returns ``denoised`` unchanged, so a host
drives calibration exactly as it drives the guard. Norms are kept per step as RMS with the latent's element count, so
one recording can build a profile on either axis, in either norm, with either statistic.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

from .config import GuardConfig
from .observation import NORMS, observe_step
from .profile import AXES, GAP, QUANTITIES, STATISTICS, Profile, ProfileError
from .rules import EARLY_FRACTION, early_flag, early_kind, early_signal, pass_score
from .verdict import Verdict, final_verdict

_MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation


class Trajectory:
    """One image's reference run: per step sigma, sigma_next, update, rate, latent, x0 (RMS), cond gap (NaN where the
    host gave none), and its label."""

    def __init__(self, steps: np.ndarray, numel: int, shape: tuple, label: str | None):
        self.steps, self.numel, self.shape, self.label = steps, numel, shape, label

    def values(self, axis: str, norm: str) -> tuple[np.ndarray, np.ndarray]:
        """Axis keys [n] and (update, latent, x0) values [n, 3] in the profile's convention."""
        s = self.steps
        keys = np.log(np.maximum(s[:, 0], 1e-12)) if axis == "log_sigma" else np.arange(len(s), dtype=np.float64)
        update = s[:, 3] if axis == "log_sigma" else s[:, 2]
        vals = np.stack([update, s[:, 4], s[:, 5]], 1)
        if norm == "l2":
            vals = vals * math.sqrt(self.numel)
        return keys, vals

    @property
    def gaps(self) -> np.ndarray:
        return self.steps[:, 6]


class Recorder:
    def __init__(self):
        self.trajectories: list[Trajectory] = []
        self.reference_rows: list = []  # set by build_profile
        self._rows: list[torch.Tensor] = []
        self._shape = None

    def observe(self, x: torch.Tensor, denoised: torch.Tensor, sigma, sigma_next, cond_gap=None) -> torch.Tensor:
        if self._shape is not None and x.shape != self._shape:
            self.finish_run()  # a new latent shape (hires second pass) is a new trajectory
        self._shape = x.shape
        o = observe_step(x, denoised, sigma, sigma_next, "rms")
        gap = (torch.full_like(o.x0, math.nan) if cond_gap is None else
               torch.as_tensor(cond_gap, dtype=o.x0.dtype, device=o.x0.device).reshape(-1).expand_as(o.x0))
        self._rows.append(torch.stack([o.sigma, o.sigma_next, o.update, o.rate, o.latent, o.x0, gap]))  # [7, B]
        return denoised

    def finish_run(self, labels: list[str] | None = None) -> None:
        """Close one sampling run; each image in it becomes one trajectory (non-finite ones are dropped)."""
        if not self._rows:
            return
        data = torch.stack(self._rows).cpu().double().numpy()  # [n, 7, B]
        shape = tuple(self._shape[1:])
        numel = int(np.prod(shape))
        for b in range(data.shape[2]):
            steps = data[:, :, b]
            if np.isfinite(steps[:, :6]).all():
                self.trajectories.append(Trajectory(steps, numel, shape, labels[b] if labels else None))
        self._rows, self._shape = [], None

    def build_profile(self, axis: str = "log_sigma", norm: str = "rms", statistic: str = "median_mad",
                      meta: dict | None = None, folds: int = 10) -> Profile:
        """Per grid point, the reference centre and spread of each norm (mean/std as the paper, or median/MAD), and
        each reference trajectory's whole-pass score judged against a region built without it (``folds``-fold
        cross-fitting; leave-one-out below ``folds`` trajectories): the final verdict's thresholds are quantiles of
        those, so they say how often an ordinary generation scores that high."""
        if axis not in AXES or norm not in NORMS or statistic not in STATISTICS:
            raise ValueError(f"axis in {AXES}, norm in {NORMS}, statistic in {STATISTICS}; got {axis}, {norm}, "
                             f"{statistic}")
        self.finish_run()
        if len(self.trajectories) < 2:
            raise ProfileError(f"need at least 2 finite reference trajectories; have {len(self.trajectories)}")
        longest = max(self.trajectories, key=lambda t: len(t.steps))
        info = {"trajectories": len(self.trajectories), "steps": len(longest.steps),
                "latent_shape": list(longest.shape), **(meta or {})}
        info.setdefault("early_fraction", EARLY_FRACTION)
        profile = _profile(self.trajectories, axis, norm, statistic, info)
        frac = float(info["early_fraction"])
        kinds = ["update"] + (["max"] if profile.has_gap else [])

        def both(p: Profile, t: Trajectory) -> tuple[float, dict[str, float], str | None]:
            keys, zu, zg = self._z(p, t)
            return pass_score(zu[0]), {k: self._early(p, keys, zu[0], zg, frac, k) for k in kinds}, t.label

        rows = self.cross_fitted(profile, folds, both)  # one cross-fit: the pairs keep their trajectory together
        self.reference_rows = rows  # (pass score, {kind: early score}, label): which reference sets each threshold
        rows = [(a, e) for a, e, _ in rows]
        profile.reference_scores = sorted(a for a, _ in rows if math.isfinite(a))
        profile.reference_early = {k: sorted(e[k] for _, e in rows if math.isfinite(e[k])) for k in kinds}
        profile.reference_pairs = {k: sorted([a, e[k]] for a, e in rows if math.isfinite(a) and math.isfinite(e[k]))
                                   for k in kinds}
        return profile

    @staticmethod
    def early_score(profile: Profile, t: Trajectory, fraction: float = 0.2, kind: str = "max") -> float:
        """Max of the early signal over the steps before the profile's early limit (as the Guard's window):
        ``kind`` "max" (update z or cond-gap z, lib_memstab.rules.early_signal), "update", or "gap" (the cond-gap z
        alone, for comparison)."""
        keys, zu, zg = Recorder._z(profile, t)
        return Recorder._early(profile, keys, zu[0], zg, fraction, kind)

    @staticmethod
    def _early(profile: Profile, keys: np.ndarray, z_update: np.ndarray, z_gap: np.ndarray, fraction: float,
               kind: str) -> float:
        inside = profile.is_early(keys, profile.early_limit(fraction))
        v = early_signal(z_update, z_gap) if kind == "max" else z_gap if kind == "gap" else z_update
        v = v[inside & np.isfinite(v)]
        return float(v.max()) if v.size else math.nan

    def cross_fitted_scores(self, profile: Profile, folds: int = 10, score=None) -> list[float]:
        """Sorted finite scores of the reference trajectories, each against a profile of the other folds.
        ``score(profile, trajectory) -> float``; default: the whole-pass score (max update z)."""
        if score is None:
            def score(p, t):
                return pass_score(self.z_scores(p, t)[0])
        return sorted(s for s in self.cross_fitted(profile, folds, score) if math.isfinite(s))

    def cross_fitted(self, profile: Profile, folds: int, score) -> list:
        """``score(held-out profile, trajectory)`` of every reference trajectory whose fold leaves a usable profile
        (``folds``-fold; leave-one-out below ``folds`` trajectories), in fold order."""
        n = len(self.trajectories)
        k = min(int(folds), n)
        out = []
        for f in range(k):
            rest = [t for i, t in enumerate(self.trajectories) if i % k != f]
            try:
                held_out = _profile(rest, profile.axis, profile.norm, profile.statistic, {})
            except ProfileError:
                continue  # this fold leaves too few shared steps; the others still count
            out += [score(held_out, self.trajectories[i]) for i in range(f, n, k)]
        return out

    def outliers(self, profile: Profile, tau: float = 3.0) -> list[tuple[int, str | None, float]]:
        """Reference trajectories that leave the region of their own reference set: (index, label, max |z|).

        Any of the three norms counts (broader than the detection rule, which needs the update and x0_hat together):
        a memorized prompt that slipped into the reference set shows here, and with the robust statistic it does not
        widen the region it is judged against.
        """
        out = []
        for i, t in enumerate(self.trajectories):
            worst = float(self.z_scores(profile, t).max())
            if worst > tau:
                out.append((i, t.label, worst))
        return out

    @staticmethod
    def _z(profile: Profile, t: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Axis keys [n], z-scores [3, n] (update, latent, x0) as the Guard computes them, and the one-sided cond-gap
        z-score [n] (a memorized prompt widens the gap; NaN without gap statistics), from one lookup."""
        keys, vals = t.values(profile.axis, profile.norm)
        mean, std, _ = profile.lookup(torch.tensor(keys, dtype=torch.float32))
        mean, std = mean.double().numpy(), std.double().numpy()
        z = np.abs(vals.T - mean[:3]) / std[:3]
        gap = (t.gaps - mean[3]) / std[3] if profile.has_gap else np.full(len(keys), np.nan)
        return keys, z, gap

    @staticmethod
    def z_scores(profile: Profile, t: Trajectory) -> np.ndarray:
        """[3, n] z-scores (update, latent, x0) of a trajectory against ``profile``, as the Guard computes them."""
        return Recorder._z(profile, t)[1]

    @staticmethod
    def judge(profile: Profile, t: Trajectory, tau: float = 3.0, config: GuardConfig | None = None) -> Verdict:
        """The verdict the Guard would give this trajectory in detect mode (same rules, lib_memstab.rules)."""
        config = config or GuardConfig(tau_mild=tau)
        keys, z, zg = Recorder._z(profile, t)
        hit = early_flag(z[0], z[2], config.tau_mild)
        first = int(np.argmax(hit)) if hit.any() else None
        strong = first is not None and z[2, first] > config.tau_strong
        kind = early_kind(bool(np.isfinite(zg).all()))  # as the Guard: the gap at every step, or the update alone
        frac = float(profile.meta.get("early_fraction", EARLY_FRACTION))
        final = final_verdict(z[0], profile, config, Recorder._early(profile, keys, z[0], zg, frac, kind), kind)
        return Verdict(image=0, segment=0, steps=z.shape[1], flagged=final.pop("flagged", first is not None),
                       severity="none" if first is None else "strong" if strong else "mild", first_step=first,
                       steps_mitigated=0, z_update=z[0].tolist(), z_latent=z[1].tolist(), z_x0=z[2].tolist(),
                       **final)


def _profile(trajectories: list[Trajectory], axis: str, norm: str, statistic: str, meta: dict) -> Profile:
    """The region of these trajectories alone (no reference scores)."""
    cells: dict[float, list[np.ndarray]] = defaultdict(list)
    with_gap = all(np.isfinite(t.gaps).all() for t in trajectories)  # the gap is kept only where every run has it
    for t in trajectories:
        keys, vals = t.values(axis, norm)
        if with_gap:
            vals = np.concatenate([vals, t.gaps[:, None]], 1)
        for k, v in zip(keys, vals):
            cells[round(float(k), 4)].append(v)
    grid = sorted(k for k, v in cells.items() if len(v) >= 2)
    if len(grid) < 2:
        raise ProfileError("the reference trajectories share fewer than 2 steps; record more runs of one schedule")
    qs = QUANTITIES + ((GAP,) if with_gap else ())
    centre, spread = {q: [] for q in qs}, {q: [] for q in qs}
    for k in grid:
        v = np.stack(cells[k])  # [n, Q]
        if statistic == "mean_std":
            c, s = v.mean(0), v.std(0, ddof=1)
        else:
            c = np.median(v, 0)
            s = _MAD_TO_STD * np.median(np.abs(v - c), 0)
        for j, q in enumerate(qs):
            centre[q].append(float(c[j]))
            spread[q].append(float(s[j]))
    longest = max(trajectories, key=lambda t: len(t.steps))
    return Profile(axis=axis, norm=norm, statistic=statistic, grid=grid, mean=centre, std=spread,
                   count=[len(cells[k]) for k in grid], reference_sigmas=[float(s) for s in longest.steps[:, 0]],
                   meta=meta)

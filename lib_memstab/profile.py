"""The empirical stability region: per tracked norm, a reference mean and spread as a function of where the step sits
in the schedule, saved as versioned JSON.

Two axes:
- ``log_sigma`` (default, portable): statistics are indexed by the step's noise level and interpolated in log sigma,
  and the update is tracked as a rate, ||x - denoised|| / sigma, which does not depend on the step size. One profile
  then serves other step counts and samplers.
- ``step``: the paper's per-step tables, indexed by step number, tracking the raw update ||x_next - x||. Only valid for
  the step count it was calibrated with.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .observation import NORMS

FORMAT = "memstab-profile"
VERSION = 1
AXES = ("log_sigma", "step")
STATISTICS = ("mean_std", "median_mad")
QUANTITIES = ("update", "latent", "x0")
STD_FLOOR = 1e-5  # as in the reference re-implementation: a zero spread must not make every step infinitely far


class ProfileError(ValueError):
    """A profile file or dict that cannot be used; the message says what is wrong."""


@dataclass
class Profile:
    axis: str
    norm: str
    statistic: str
    grid: list[float]  # strictly increasing: log sigma, or step index
    mean: dict[str, list[float]]  # quantity -> per grid point
    std: dict[str, list[float]]
    count: list[int]  # reference observations per grid point
    reference_sigmas: list[float] = field(default_factory=list)  # the calibration schedule, high to low
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        _validate(self)
        self._tables: dict = {}

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "axis": self.axis, "norm": self.norm,
                "statistic": self.statistic, "grid": list(self.grid),
                "stats": {q: {"mean": list(self.mean[q]), "std": list(self.std[q])} for q in QUANTITIES},
                "count": list(self.count), "reference_sigmas": list(self.reference_sigmas), "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d) -> Profile:
        if not isinstance(d, dict):
            raise ProfileError(f"a profile must be a JSON object; got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ProfileError(f"not a memstab profile (format is {d.get('format')!r}, expected {FORMAT!r})")
        if d.get("version") != VERSION:
            raise ProfileError(f"unsupported profile version {d.get('version')!r}; this build reads version {VERSION}")
        try:
            stats = d["stats"]
            return cls(axis=d["axis"], norm=d["norm"], statistic=d["statistic"], grid=_floats(d["grid"], "grid"),
                       mean={q: _floats(stats[q]["mean"], f"{q} mean") for q in QUANTITIES},
                       std={q: _floats(stats[q]["std"], f"{q} std") for q in QUANTITIES},
                       count=[_int(c) for c in d["count"]],
                       reference_sigmas=_floats(d.get("reference_sigmas", []), "reference_sigmas"),
                       meta=_meta(d.get("meta", {})))
        except KeyError as e:
            raise ProfileError(f"profile is missing the field {e.args[0]!r}") from None
        except TypeError as e:
            raise ProfileError(f"profile has a field of the wrong type: {e}") from None

    def save(self, path) -> Path:
        """Write atomically: a reader never sees a half-written file."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path) -> Profile:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"cannot read profile {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ProfileError(f"profile {path} is not UTF-8 text") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProfileError(f"profile {path} is not valid JSON (truncated or edited?): {e.msg} at line {e.lineno}") \
                from None
        try:
            return cls.from_dict(d)
        except ProfileError as e:
            raise ProfileError(f"profile {path}: {e}") from None

    # ---------------------------------------------------------------- lookup (on the device, no sync)
    def key_of(self, sigma: torch.Tensor, step: int) -> torch.Tensor:
        """The axis coordinate of a step: log sigma, or the step index."""
        if self.axis == "log_sigma":
            return sigma.clamp_min(1e-12).log()
        return torch.full_like(sigma, float(step))

    def early_limit(self, early_fraction: float) -> float:
        """Axis coordinate that ends the early window: the first ``early_fraction`` of the calibration schedule."""
        if self.axis == "step":
            return len(self.grid) * early_fraction - 0.5  # early iff step index < this
        sig = [s for s in self.reference_sigmas if s > 0]
        if not sig:
            sig = [math.exp(g) for g in reversed(self.grid)]
        k = round(early_fraction * len(sig))
        if k <= 0:
            return math.inf
        if k >= len(sig):
            return -math.inf
        return 0.5 * (math.log(sig[k - 1]) + math.log(sig[k]))  # early iff log sigma > this

    def tables(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid [G] and statistics [2, 3, G] (mean, std over update/latent/x0) on ``device``, built once per device."""
        key = str(device)
        if key not in self._tables:
            grid = torch.tensor(self.grid, dtype=torch.float32, device=device)
            st = torch.tensor([[self.mean[q] for q in QUANTITIES], [self.std[q] for q in QUANTITIES]],
                              dtype=torch.float32, device=device)
            st[1].clamp_(min=STD_FLOOR)
            self._tables[key] = (grid, st)
        return self._tables[key]

    def lookup(self, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean [3, B], std [3, B] at each key (linear interpolation), and whether the key lies outside the grid [B]."""
        grid, st = self.tables(key.device)
        k = key.clamp(grid[0], grid[-1])
        hi = torch.searchsorted(grid, k.contiguous()).clamp(1, len(self.grid) - 1)
        lo = hi - 1
        w = ((k - grid[lo]) / (grid[hi] - grid[lo])).clamp(0, 1)
        vals = st[:, :, lo] * (1 - w) + st[:, :, hi] * w  # [2, 3, B]
        tol = 1e-4 if self.axis == "log_sigma" else 0.5
        outside = (key < grid[0] - tol) | (key > grid[-1] + tol)
        return vals[0], vals[1], outside

    def describe(self) -> str:
        m = self.meta
        parts = [f"{self.axis}-indexed", self.statistic, f"{len(self.grid)} points",
                 f"{m.get('trajectories', '?')} trajectories"]
        for k in ("model", "sampler", "steps", "cfg_scale"):
            if k in m:
                parts.append(f"{k}={m[k]}")
        return ", ".join(str(p) for p in parts)


def make_meta(**kw) -> dict:
    """How a profile was made; ``created`` is filled in."""
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **kw}


def _floats(v, what: str) -> list[float]:
    if not isinstance(v, list):
        raise ProfileError(f"{what} must be a list of numbers")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ProfileError(f"{what} holds a non-number: {x!r}")
        out.append(float(x))
    return out


def _int(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"count holds a non-integer: {v!r}")
    return v


def _meta(v) -> dict:
    if not isinstance(v, dict):
        raise ProfileError("meta must be an object")
    return v


def _validate(p: Profile) -> None:
    if p.axis not in AXES:
        raise ProfileError(f"axis must be one of {AXES}; got {p.axis!r}")
    if p.norm not in NORMS:
        raise ProfileError(f"norm must be one of {NORMS}; got {p.norm!r}")
    if p.statistic not in STATISTICS:
        raise ProfileError(f"statistic must be one of {STATISTICS}; got {p.statistic!r}")
    g = p.grid
    n = len(g)
    if n < 2:
        raise ProfileError(f"the grid needs at least 2 points; got {n}")
    if not all(math.isfinite(x) for x in g):
        raise ProfileError("the grid holds a non-finite value")
    if any(b <= a for a, b in zip(g, g[1:])):
        raise ProfileError("the grid must be strictly increasing (unsorted or duplicate points)")
    if p.axis == "step" and any(x != int(x) or x < 0 for x in g):
        raise ProfileError("a step-indexed grid must hold non-negative whole step numbers")
    for q in QUANTITIES:
        for name, table in (("mean", p.mean), ("std", p.std)):
            if q not in table:
                raise ProfileError(f"{q} {name} is missing")
            vals = table[q]
            if len(vals) != n:
                raise ProfileError(f"{q} {name} has {len(vals)} values for {n} grid points")
            if not all(math.isfinite(x) for x in vals):
                raise ProfileError(f"{q} {name} holds NaN or infinity")
            if any(x < 0 for x in vals):
                raise ProfileError(f"{q} {name} holds a negative value (norms and spreads cannot be negative)")
    if len(p.count) != n or any(c < 1 for c in p.count):
        raise ProfileError("count must hold one positive integer per grid point")
    rs = p.reference_sigmas
    if not all(math.isfinite(x) and x >= 0 for x in rs):
        raise ProfileError("reference_sigmas must be finite and non-negative")
    if any(b > a for a, b in zip(rs, rs[1:])):
        raise ProfileError("reference_sigmas must run from high to low noise")

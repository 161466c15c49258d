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
import errno
import json
import math
import os
import secrets
import stat
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .observation import NORMS
from .text import brief

FORMAT = "memstab-profile"
# 2 adds reference_scores (the calibrated verdict), 3 reference_pairs (the verdict that uses the early score too);
# older files still load and say what they lack
VERSION = 3
READS = (1, 2, 3)
AXES = ("log_sigma", "step")
STATISTICS = ("mean_std", "median_mad")
QUANTITIES = ("update", "latent", "x0")
GAP = "gap"  # optional: the Wen et al. cond gap ||D_cond - D_uncond|| / sigma, where the calibration's host gave it
STD_FLOOR = 1e-5  # as in the reference re-implementation: a zero spread must not make every step infinitely far

# Bounds on what a profile may hold: wide enough for any real sampler and calibration, narrow enough that every
# accepted profile can be looked up, saved and exported without overflow, and validated in bounded time.
MAX_PROFILE_BYTES = 2_000_000  # a profile file or imported document
MAX_GRID_POINTS = 10_000  # grid, statistics, counts and reference_sigmas each
LOG_SIGMA_RANGE = (-30.0, 30.0)  # sigma in about [1e-13, 1e13]
STEP_RANGE = (0.0, 10_000.0)
SIGMA_RANGE = (0.0, 1e6)  # reference_sigmas
STAT_RANGE = (0.0, 1e12)  # means and spreads
COUNT_RANGE = (1, 10**9)
MAX_META_DEPTH = 8
MAX_META_ITEMS = 10_000  # values in meta, all levels together
MAX_META_STRING = 4096  # characters in one string (keys included)
MAX_META_INT = 2**53  # |int| in meta: exact in every JSON reader


class ProfileError(ValueError):
    """A profile file or dict that cannot be used; the message says what is wrong."""


class ProfileNotFound(ProfileError):
    """The named profile (or profile file) does not exist."""


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
    # the whole-pass detection score (lib_memstab.rules.pass_score) of each reference trajectory, cross-fitted
    # (each judged against a region built without it), sorted: the verdict's thresholds are quantiles of these
    reference_scores: list[float] = field(default_factory=list)
    # the same for the early flag's score (lib_memstab.rules.early_signal, max over the first
    # meta["early_fraction"] of the schedule): "update" (the update z alone) and, where the gap was recorded, "max"
    reference_early: dict[str, list[float]] = field(default_factory=dict)
    # per kind as above, each reference trajectory's (whole-pass score, early score), cross-fitted together and
    # sorted: the final verdict's joint thresholds (lib_memstab.rules.joint_thresholds) come from these
    reference_pairs: dict[str, list[list[float]]] = field(default_factory=dict)

    def __post_init__(self):
        _validate(self)
        self._tables: dict = {}

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "axis": self.axis, "norm": self.norm,
                "statistic": self.statistic, "grid": list(self.grid),
                "stats": {q: {"mean": list(self.mean[q]), "std": list(self.std[q])} for q in self.quantities},
                "count": list(self.count), "reference_sigmas": list(self.reference_sigmas),
                "reference_scores": list(self.reference_scores),
                "reference_early": {k: list(v) for k, v in self.reference_early.items()},
                "reference_pairs": {k: [list(x) for x in v] for k, v in self.reference_pairs.items()},
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d) -> Profile:
        if not isinstance(d, dict):
            raise ProfileError(f"a profile must be a JSON object; got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ProfileError(f"not a memstab profile (format is {brief(d.get('format'))}, expected {FORMAT!r})")
        if type(d.get("version")) is not int or d.get("version") not in READS:
            raise ProfileError(f"unsupported profile version {brief(d.get('version'))}; this build reads versions "
                               f"{', '.join(map(str, READS))}")
        try:
            stats = d["stats"]
            if not isinstance(stats, dict):
                raise ProfileError("stats must be an object")
            return cls(axis=d["axis"], norm=d["norm"], statistic=d["statistic"], grid=_floats(d["grid"], "grid"),
                       mean={q: _floats(_table(stats, q)["mean"], f"{q} mean") for q in _present(stats)},
                       std={q: _floats(_table(stats, q)["std"], f"{q} std") for q in _present(stats)},
                       count=_ints(d["count"], "count"),
                       reference_sigmas=_floats(d.get("reference_sigmas", []), "reference_sigmas"),
                       reference_scores=_floats(d.get("reference_scores", []), "reference_scores"),
                       reference_early=_early(d.get("reference_early", {})),
                       reference_pairs=_pairs(d.get("reference_pairs", {})),
                       meta=_meta(d.get("meta", {})))
        except KeyError as e:
            raise ProfileError(f"profile is missing the field {brief(e.args[0])}") from None
        except (TypeError, AttributeError) as e:
            raise ProfileError(f"profile has a field of the wrong type: {brief(str(e), 200)}") from None

    def to_json(self) -> str:
        """The JSON text that ``save`` writes and ``Profile.load`` reads back; never NaN or Infinity. Validates again
        first (the fields may have been changed since construction): raises ProfileError, never writes a bad file."""
        _validate(self)
        d = self.to_dict()
        text = json.dumps(d, indent=1, allow_nan=False)
        if len(text.encode("utf-8")) > MAX_PROFILE_BYTES:
            text = json.dumps(d, separators=(",", ":"), allow_nan=False)  # a large profile: drop the indentation
        if len(text.encode("utf-8")) > MAX_PROFILE_BYTES:
            raise ProfileError(f"the profile is too large to save ({len(text.encode('utf-8'))} bytes; at most "
                               f"{MAX_PROFILE_BYTES})")
        return text

    def save(self, path) -> Path:
        """Write atomically through a fresh temporary file next to ``path``: a reader never sees a half-written file,
        concurrent saves never share a temporary file, and a symbolic link at ``path`` is replaced, not written
        through. Raises ProfileError (nothing written) for a profile too large to save, OSError for the filesystem."""
        path = Path(path)
        data = self.to_json().encode("utf-8")
        fd, tmp = _create_temp(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_folder(path.parent)
        return path

    @classmethod
    def load(cls, path, *, follow_symlinks: bool = True) -> Profile:
        """Read and validate a profile file. ``follow_symlinks=False`` (the store's reads) refuses a symbolic link at
        ``path`` race-free. Raises ProfileNotFound for a missing file, ProfileError for anything else wrong."""
        path = Path(path)
        text = _read_limited(path, follow_symlinks)
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProfileError(f"profile {path} is not valid JSON (truncated or edited?): {e.msg} at line {e.lineno}") \
                from None
        except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4300 digits, or nesting too deep
            raise ProfileError(f"profile {path} is not valid JSON: {brief(str(e), 120)}") from None
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

    @property
    def quantities(self) -> tuple[str, ...]:
        """The tracked quantities: update, latent, x0, and the cond gap where the calibration recorded it."""
        return QUANTITIES + ((GAP,) if GAP in self.mean else ())

    @property
    def has_gap(self) -> bool:
        return GAP in self.mean

    def is_early(self, key, limit: float):
        """Whether axis coordinate(s) ``key`` (tensor or array) lie before ``limit`` (from early_limit): high noise on
        the log-sigma axis, low step numbers on the step axis."""
        return key > limit if self.axis == "log_sigma" else key < limit

    def tables(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid [G] and statistics [2, Q, G] (mean, std over update/latent/x0[/gap]) on ``device``, built once per
        device."""
        key = str(device)
        if key not in self._tables:
            grid = torch.tensor(self.grid, dtype=torch.float32, device=device)
            qs = self.quantities
            st = torch.tensor([[self.mean[q] for q in qs], [self.std[q] for q in qs]],
                              dtype=torch.float32, device=device)
            st[1].clamp_(min=STD_FLOOR)
            self._tables[key] = (grid, st)
        return self._tables[key]

    def lookup(self, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean [Q, B], std [Q, B] at each key (linear interpolation; Q = len(quantities)), and whether the key lies
        outside the grid [B]."""
        grid, st = self.tables(key.device)
        k = key.clamp(grid[0], grid[-1])
        hi = torch.searchsorted(grid, k.contiguous()).clamp(1, len(self.grid) - 1)
        lo = hi - 1
        w = ((k - grid[lo]) / (grid[hi] - grid[lo])).clamp(0, 1)
        vals = st[:, :, lo] * (1 - w) + st[:, :, hi] * w  # [2, Q, B]
        tol = 1e-4 if self.axis == "log_sigma" else 0.5
        outside = (key < grid[0] - tol) | (key > grid[-1] + tol)
        return vals[0], vals[1], outside

    def lacks(self) -> list[str]:
        """What this profile cannot provide (an older calibration), in words for a note."""
        out = []
        if len(self.reference_scores) < 2:
            out.append("calibrated verdict thresholds")
        if len(self.reference_early.get("update", [])) < 2:
            out.append("early-flag thresholds")
        if len(self.reference_pairs.get("update", [])) < 2:
            out.append("the early score in the verdict")
        if out:
            out[-1] += " (it predates them: calibrate again)"
        return out

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


def _create_temp(path: Path) -> tuple[int, str]:
    """A new file next to ``path``, created exclusively (never an existing file, never through a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp"))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "cannot create a unique temporary file", str(path.parent))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); best effort, never an error."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_limited(path: Path, follow_symlinks: bool) -> str:
    """The file's text: a regular file of at most MAX_PROFILE_BYTES, checked on the open descriptor before reading.
    Opened non-blocking, so a FIFO planted under a profile's name cannot hang the reader."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():
            raise ProfileError(f"profile {path} is a symbolic link; the store does not read through links")
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ProfileNotFound(f"cannot read profile {path}: no such file") from None
    except OSError as e:
        if not follow_symlinks and os.path.islink(path):
            raise ProfileError(f"profile {path} is a symbolic link; the store does not read through links") from None
        raise ProfileError(f"cannot read profile {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ProfileError(f"profile {path} is not a regular file")
        if st.st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile {path} is too large ({st.st_size} bytes; at most {MAX_PROFILE_BYTES})")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as e:
        raise ProfileError(f"cannot read profile {path}: {e.strerror or e}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_PROFILE_BYTES:  # it grew while being read
        raise ProfileError(f"profile {path} is too large (more than {MAX_PROFILE_BYTES} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"profile {path} is not UTF-8 text") from None


def _early(v) -> dict[str, list[float]]:
    _check_kinds(v, "reference_early")
    return {k: _floats(x, f"reference_early {k}") for k, x in v.items()}


def _pairs(v) -> dict[str, list[list[float]]]:
    _check_kinds(v, "reference_pairs")
    return {k: [_floats(r, f"reference_pairs {k} item") for r in _list(x, f"reference_pairs {k}")]
            for k, x in v.items()}


def _present(stats: dict) -> tuple[str, ...]:
    return QUANTITIES + ((GAP,) if GAP in stats else ())


def _table(stats: dict, q: str) -> dict:
    t = stats[q]
    if not isinstance(t, dict):
        raise ProfileError(f"stats {q} must be an object with mean and std")
    return t


def _number(x, what: str):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ProfileError(f"{what} holds a non-number: {brief(x)}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ProfileError(f"{what} holds NaN or infinity")
    return x


def _list(v, what: str) -> list:
    if not isinstance(v, list):
        raise ProfileError(f"{what} must be a list of numbers")
    if len(v) > MAX_GRID_POINTS:
        raise ProfileError(f"{what} holds {len(v)} values; at most {MAX_GRID_POINTS}")
    return v


def _floats(v, what: str) -> list[float]:
    out = []
    for x in _list(v, what):
        x = _number(x, what)
        if isinstance(x, int) and abs(x) > MAX_META_INT:  # before float(): a 400-digit integer would overflow it
            raise ProfileError(f"{what} holds {brief(x)}, far out of range")
        out.append(float(x))
    return out


def _ints(v, what: str) -> list[int]:
    out = []
    for x in _list(v, what):
        if isinstance(x, bool) or not isinstance(x, int):
            raise ProfileError(f"{what} holds a non-integer: {brief(x)}")
        out.append(x)
    return out


def _meta(v) -> dict:
    if not isinstance(v, dict):
        raise ProfileError("meta must be an object")
    return v


def check_meta(meta) -> dict:
    """Raise ProfileError unless ``meta`` is a JSON object that can be saved and exported: str keys; values of JSON
    types only (dict, list, str, int, float, bool, None); finite floats; |int| <= 2**53; strings of at most 4096
    characters; nesting at most 8 deep; at most 10,000 values in all. Returns ``meta``."""
    if not isinstance(meta, dict):
        raise ProfileError("meta must be an object")
    items = 0
    stack = [(meta, 1, "meta")]
    while stack:
        v, depth, where = stack.pop()
        items += 1
        if items > MAX_META_ITEMS:
            raise ProfileError(f"meta holds more than {MAX_META_ITEMS} values")
        if v is None or isinstance(v, bool):
            continue
        if isinstance(v, str):
            if len(v) > MAX_META_STRING:
                raise ProfileError(f"{where} is a string of {len(v)} characters; at most {MAX_META_STRING}")
        elif isinstance(v, int):
            if abs(v) > MAX_META_INT:
                raise ProfileError(f"{where} holds {brief(v)}; integers in meta must lie within +-2**53")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ProfileError(f"{where} holds NaN or infinity, which JSON cannot carry")
        elif isinstance(v, (dict, list)):
            if depth > MAX_META_DEPTH:
                raise ProfileError(f"meta is nested more than {MAX_META_DEPTH} levels deep")
            if len(v) > MAX_META_ITEMS:
                raise ProfileError(f"meta holds more than {MAX_META_ITEMS} values")
            if isinstance(v, dict):
                for k, x in v.items():
                    if not isinstance(k, str):
                        raise ProfileError(f"{where} has a key that is not a string: {brief(k)}")
                    if len(k) > MAX_META_STRING:
                        raise ProfileError(f"{where} has a key of {len(k)} characters; at most {MAX_META_STRING}")
                    stack.append((x, depth + 1, f"{where}.{brief(k, 40)}" if len(where) < 200 else where))
            else:
                stack.extend((x, depth + 1, f"{where}[{i}]" if len(where) < 200 else where) for i, x in enumerate(v))
        else:
            raise ProfileError(f"{where} holds a {type(v).__name__}, which is not a JSON value")
    return meta


def _check_range(vals, what: str, lo, hi, spread: bool = False) -> None:
    for x in vals:
        _number(x, what)
        if not lo <= x <= hi:
            if spread and x < 0:
                raise ProfileError(f"{what} holds a negative value (norms and spreads cannot be negative)")
            raise ProfileError(f"{what} holds {brief(x)}, outside [{lo:g}, {hi:g}]")


def _check_kinds(v, what: str) -> None:
    if not isinstance(v, dict) or set(v) - {"update", "max"}:
        raise ProfileError(f"{what} must be an object with the lists 'update' and optionally 'max'")


def _check_scores(values, what: str, ordered: bool = True, spread: bool = True) -> None:
    """Reference scores: a bounded list of finite numbers in STAT_RANGE, sorted low to high unless not ``ordered``."""
    v = _list(values, what)
    for x in v:
        if isinstance(x, float) and not math.isfinite(x):
            raise ProfileError(f"{what} holds NaN or infinity")
    _check_range(v, what, *STAT_RANGE, spread=spread)
    if ordered and any(b < a for a, b in zip(v, v[1:])):
        raise ProfileError(f"{what} must be sorted (low to high)")


def _validate(p: Profile) -> None:
    for what, v in (("axis", p.axis), ("norm", p.norm), ("statistic", p.statistic)):
        if not isinstance(v, str):
            raise ProfileError(f"{what} must be a string; got {brief(v)}")
    if p.axis not in AXES:
        raise ProfileError(f"axis must be one of {AXES}; got {brief(p.axis)}")
    if p.norm not in NORMS:
        raise ProfileError(f"norm must be one of {NORMS}; got {brief(p.norm)}")
    if p.statistic not in STATISTICS:
        raise ProfileError(f"statistic must be one of {STATISTICS}; got {brief(p.statistic)}")
    g = _list(p.grid, "grid")
    n = len(g)
    if n < 2:
        raise ProfileError(f"the grid needs at least 2 points; got {n}")
    for x in g:
        if isinstance(x, float) and not math.isfinite(x):
            raise ProfileError("the grid holds a non-finite value")
    _check_range(g, f"the {p.axis} grid", *(LOG_SIGMA_RANGE if p.axis == "log_sigma" else STEP_RANGE))
    if any(b <= a for a, b in zip(g, g[1:])):
        raise ProfileError("the grid must be strictly increasing (unsorted or duplicate points)")
    g32 = array("f", g)  # the lookup runs in single precision: its points must stay distinct there
    if any(b <= a for a, b in zip(g32, g32[1:])):
        raise ProfileError("the grid has points too close together to tell apart in single precision")
    if p.axis == "step" and any(x != int(x) for x in g):
        raise ProfileError("a step-indexed grid must hold non-negative whole step numbers")
    for name, table in (("mean", p.mean), ("std", p.std)):
        if not isinstance(table, dict):
            raise ProfileError(f"{name} must map each quantity to its values")
        extra = set(table) - {*QUANTITIES, GAP}
        if extra:
            raise ProfileError(f"{name} holds unknown quantities {brief([str(q) for q in extra][:5])}")
    for q in (*QUANTITIES, *([GAP] if GAP in p.mean or GAP in p.std else [])):
        for name, table in (("mean", p.mean), ("std", p.std)):
            if q not in table:
                raise ProfileError(f"{q} {name} is missing")
            vals = _list(table[q], f"{q} {name}")
            if len(vals) != n:
                raise ProfileError(f"{q} {name} has {len(vals)} values for {n} grid points")
            for x in vals:
                if isinstance(x, float) and not math.isfinite(x):
                    raise ProfileError(f"{q} {name} holds NaN or infinity")
            _check_range(vals, f"{q} {name}", *STAT_RANGE, spread=True)
    count = _list(p.count, "count")
    if len(count) != n or any(isinstance(c, bool) or not isinstance(c, int) or not COUNT_RANGE[0] <= c <= COUNT_RANGE[1]
                              for c in count):
        raise ProfileError(f"count must hold one positive integer (at most {COUNT_RANGE[1]}) per grid point")
    rs = _list(p.reference_sigmas, "reference_sigmas")
    for x in rs:
        _number(x, "reference_sigmas")
        if not SIGMA_RANGE[0] <= x <= SIGMA_RANGE[1]:
            raise ProfileError(f"reference_sigmas must be finite and within [0, {SIGMA_RANGE[1]:g}]; got {brief(x)}")
    if any(b > a for a, b in zip(rs, rs[1:])):
        raise ProfileError("reference_sigmas must run from high to low noise")
    _check_scores(p.reference_scores, "reference_scores")
    _check_kinds(p.reference_early, "reference_early")
    for k, v in p.reference_early.items():
        _check_scores(v, f"reference_early {k}")
    _check_kinds(p.reference_pairs, "reference_pairs")
    for k, v in p.reference_pairs.items():
        rows = _list(v, f"reference_pairs {k}")
        for r in rows:
            if len(_list(r, f"reference_pairs {k} item")) != 2:
                raise ProfileError(f"reference_pairs {k}: every item must be a [pass score, early score] pair")
            _check_scores(r, f"reference_pairs {k}", ordered=False, spread=False)
        if any(b < a for a, b in zip(rows, rows[1:])):
            raise ProfileError(f"reference_pairs {k} must be sorted (low to high)")
    check_meta(p.meta)

"""Which stability profile a job uses: "automatic" = the profile in the profile folder whose meta model hash matches
the loaded checkpoint; otherwise a named profile (the file's stem). Minimal on purpose; calibration (issue 4)
extends it."""

from __future__ import annotations

from pathlib import Path

from lib_memstab import Profile, ProfileError

from .args import AUTOMATIC

EXTENSION_ROOT = Path(__file__).resolve().parents[1]
HASH_KEYS = ("model_hash", "sd_model_hash", "checkpoint_hash")  # meta keys read, in this order
_CACHE: dict[Path, tuple[tuple, object]] = {}


def profile_dir(opts) -> Path:
    d = (getattr(opts, "data", None) or {}).get("memstab_profile_dir") or ""
    return Path(d).expanduser() if d else EXTENSION_ROOT / "profiles"


def list_profiles(opts) -> list[str]:
    d = profile_dir(opts)
    return sorted(f.stem for f in d.glob("*.json")) if d.is_dir() else []


def model_hash(p) -> str | None:
    """The loaded checkpoint's hash as the host knows it (short A1111 hash, else the full sha256)."""
    model = getattr(p, "sd_model", None)
    info = getattr(model, "sd_checkpoint_info", None)
    for h in (getattr(model, "sd_model_hash", None), getattr(info, "shorthash", None), getattr(info, "sha256", None)):
        if isinstance(h, str) and h:
            return h.lower()
    return None


def hashes_match(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    a, b = a.lower(), b.lower()
    return min(len(a), len(b)) >= 8 and (a.startswith(b) or b.startswith(a))


def load(path: Path) -> Profile:
    """Cached by (mtime, size): a profile is read once, and again after it changes. Raises ProfileError."""
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(path)
    if hit is None or hit[0] != stamp:
        try:
            hit = (stamp, Profile.load(path))
        except ProfileError as e:
            hit = (stamp, e)
        _CACHE[path] = hit
    if isinstance(hit[1], ProfileError):
        raise hit[1]
    return hit[1]


def resolve(choice: str, p, opts) -> tuple[Profile | None, str, str | None]:
    """(profile or None, its name, a note when detection is off because there is no usable profile)."""
    d = profile_dir(opts)
    if choice == AUTOMATIC:
        h = model_hash(p)
        for f in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                prof = load(f)
            except (ProfileError, OSError):
                continue
            if any(hashes_match(h, str(prof.meta.get(k, ""))) for k in HASH_KEYS):
                return prof, f.stem, None
        return None, "none", (f"not calibrated for this model (hash {h or 'unknown'}): detection off; calibrate it "
                              f"or choose a profile")
    path = d / f"{choice}.json"
    if not path.is_file():
        return None, choice, f"profile {choice} not found in {d}: detection off"
    try:
        return load(path), choice, None
    except (ProfileError, OSError) as e:
        return None, choice, f"profile {choice} unusable ({e}): detection off"

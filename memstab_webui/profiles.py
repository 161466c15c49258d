"""Which stability profile a job uses, on top of lib_memstab.ProfileStore (safe names, atomic writes, the automatic
choice). "automatic": the profile calibrated on the loaded checkpoint (meta ``model_hash`` equal to its short hash or
its sha256), else one of the same family (same latent channels and latent scale), else none and a "not calibrated"
note that points at the calibrate button."""

from __future__ import annotations

import os
from pathlib import Path

from lib_memstab import ProfileError, ProfileNotFound, ProfileStore

from . import family
from .args import AUTOMATIC

EXTENSION_ROOT = Path(__file__).resolve().parents[1]
CALIBRATE_HINT = ("press \"Calibrate this model\" (Memorization guard -> Calibration and profiles) or POST "
                  "/memstab/v1/calibrate")


def profile_dir(opts) -> Path:
    d = (getattr(opts, "data", None) or {}).get("memstab_profile_dir") or ""
    return Path(d).expanduser() if str(d).strip() else EXTENSION_ROOT / "profiles"


def store(opts) -> ProfileStore:
    return ProfileStore(profile_dir(opts))


def list_profiles(opts) -> list[str]:
    try:
        return [s.name for s in store(opts).list()]
    except OSError:  # an unreadable folder: no choices, never a crash while building the UI
        return []


def check_writable(folder: Path) -> None:
    """Before a long calibration: can the folder be created and written? Raises ProfileError saying why not."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ProfileError(f"the profile folder {folder} cannot be used: {probe} is not a folder (Settings -> "
                           "Memorization guard -> Profile folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ProfileError(f"the profile folder {folder} is not writable (Settings -> Memorization guard -> "
                           "Profile folder)")


def automatic(model, opts):
    """(StoredProfile or None, note or None, reason). By hash, else by family, else a "not calibrated" note. The
    note is also set when several profiles claimed this checkpoint (lib_memstab.ProfileStore.choose's rule), so the
    image says which one judged it and why; ``reason`` always says how the choice was made."""
    st = store(opts)
    for h in family.hashes(model):
        hit, reason = st.choose(h, None)
        if hit is not None:
            contested = reason != f"calibrated on this model ({hit.name})"
            return hit, (f"automatic chose {reason}" if contested else None), reason
    fam = family.family_of(model)
    if fam is not None:
        hit, reason = st.choose(None, fam)
        if hit is not None:
            return hit, (f"profile {hit.name} is from another checkpoint of the same family; calibrate this model "
                         "for best results"), reason
    h = family.short_hash(model)
    note = f"not calibrated for this model (hash {h or 'unknown'}): detection off; {CALIBRATE_HINT}"
    return None, note, note


def resolve(choice: str, p, opts):
    """(profile or None, its name, a note). Without a profile the note says why detection is off; with a profile of
    the same family only, the note says so and the guard runs."""
    model = getattr(p, "sd_model", None)
    if choice == AUTOMATIC:
        try:
            hit, note, _ = automatic(model, opts)
        except OSError as e:
            return None, "none", f"profile folder unreadable ({e}): detection off"
        return (hit.profile, hit.name, note) if hit is not None else (None, "none", note)
    st = store(opts)
    try:
        path = st.path_for(choice)
    except ProfileError as e:
        return None, "invalid", f"{e}: detection off"
    if not path.is_file():
        return None, choice, f"profile {choice} not found in {st.folder}: detection off"
    try:
        return st.load(choice), choice, None
    except ProfileNotFound:
        return None, choice, f"profile {choice} not found in {st.folder}: detection off"
    except (ProfileError, OSError) as e:
        return None, choice, f"profile {choice} unusable ({e}): detection off"

"""A folder of named profiles: save, load, list, delete, import, export, and the automatic choice for a model.

Names are checked before any path is built, so nothing is ever read or written outside the folder. Entries inside the
folder are never read through a symbolic link (the folder itself may be one), and saves replace a link rather than
write through it. The parsed listing is cached per folder and re-read only for entries that changed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from .profile import MAX_PROFILE_BYTES, Profile, ProfileError, ProfileNotFound
from .text import brief

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,99}")
# device names on Windows, with or without an extension ("nul.json" is the null device there)
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
ORIGIN_CALIBRATION = "calibration"  # meta["origin"] of a profile made by this extension's calibration
ORIGIN_IMPORT = "import"  # stamped by ProfileStore.import_json, whatever the document claimed


def _valid_name(name) -> bool:
    return (isinstance(name, str) and _NAME.fullmatch(name) is not None and ".." not in name
            and not name.endswith((".", " ")) and name.split(".")[0].rstrip(" ").upper() not in _RESERVED)


def check_name(name: str) -> str:
    """A profile name is a plain file stem: letters, digits, '.', '_', ' ', '-'; no separators, no '..'."""
    if not _valid_name(name):
        raise ProfileError(f"invalid profile name {brief(name)}: use letters, digits, '.', '_', '-' and spaces "
                           "(at most 100, no path separators or '..')")
    return name


def profile_name(model_name: str, short_hash: str | None) -> str:
    """The default name for a model's profile, e.g. 'v1-5-pruned-emaonly-6ce0161689'."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model_name or "model").stem).strip("-.") or "model"
    h = re.sub(r"[^A-Za-z0-9]", "", short_hash or "")
    name = f"{stem[:80]}-{h[:16]}" if h else stem[:96]
    if not _valid_name(name):  # e.g. '..' inside the stem, or a Windows device name
        name = "model-" + name.replace("..", "-")[:90].strip("-.")
    return check_name(name)


@dataclass
class StoredProfile:
    name: str
    path: Path
    profile: Profile | None  # shared with the store's cache: treat as read-only
    error: str | None = None  # why the file cannot be used


# ---------------------------------------------------------------- the listing cache (module level: the adapter makes
# a new ProfileStore per job). Per resolved folder: {file name: (signature, StoredProfile)}.
_CACHE: dict[str, dict[str, tuple[tuple, StoredProfile]]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_FOLDERS = 32


def _signature(st: os.stat_result) -> tuple:
    return (stat.S_IFMT(st.st_mode), st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


class ProfileStore:
    def __init__(self, folder):
        self.folder = Path(folder)

    def path_for(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def save(self, profile: Profile, name: str) -> Path:
        path = self.path_for(name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return profile.save(path)
        except OSError as e:
            raise ProfileError(f"cannot write profile {brief(name)} to {self.folder}: {e.strerror or e}") from None

    def load(self, name: str) -> Profile:
        """Raises ProfileNotFound if there is no such profile, ProfileError if it cannot be used (a symbolic link is
        refused)."""
        path = self.path_for(name)
        try:
            return Profile.load(path, follow_symlinks=False)
        except ProfileNotFound:
            raise ProfileNotFound(f"no profile named {brief(name)} in {self.folder} (cannot read {path.name}: no "
                                  "such file)") from None

    def delete(self, name: str) -> None:
        """Removes the file (a symbolic link itself, never its target). ProfileNotFound if there is none."""
        path = self.path_for(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ProfileNotFound(f"no profile named {brief(name)} in {self.folder}") from None
        except OSError as e:
            raise ProfileError(f"cannot delete profile {brief(name)}: {e.strerror or e}") from None

    def export_json(self, name: str) -> str:
        return self.load(name).to_json()

    def import_json(self, text, name: str) -> Path:
        """Validate first; an invalid document is never written. The saved profile's meta says ``"origin":
        "import"``, whatever the document claimed. At most MAX_PROFILE_BYTES of text."""
        check_name(name)
        if isinstance(text, (bytes, bytearray)):
            if len(text) > MAX_PROFILE_BYTES:
                raise ProfileError(_too_large(len(text)))
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise ProfileError("the imported profile is not UTF-8 text") from None
        if not isinstance(text, str):
            raise ProfileError(f"the imported profile must be JSON text; got {type(text).__name__}")
        if len(text) > MAX_PROFILE_BYTES:
            raise ProfileError(_too_large(len(text)))
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProfileError(f"the imported profile is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") \
                from None
        except (ValueError, RecursionError) as e:
            raise ProfileError(f"the imported profile is not valid JSON: {brief(str(e), 120)}") from None
        profile = Profile.from_dict(d)
        profile.meta = {**profile.meta, "origin": ORIGIN_IMPORT}
        return self.save(profile, name)

    def list(self) -> list[StoredProfile]:
        """Every profile file in the folder, usable or not (an unusable one carries its error), sorted by name. A
        symbolic link is listed as unusable and never read. Parsed once and cached until the entry changes."""
        if not self.folder.is_dir():
            return []
        key = str(self.folder.resolve())
        seen: dict[str, tuple] = {}
        links = []
        with os.scandir(self.folder) as it:
            for entry in it:
                if not entry.name.endswith(".json") or not _valid_name(entry.name[:-5]):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:  # gone since the listing
                    continue
                if stat.S_ISLNK(st.st_mode):
                    links.append(entry.name)
                seen[entry.name] = _signature(st)
        with _CACHE_LOCK:
            old = _CACHE.pop(key, {})
            new = {}
            for fname, sig in seen.items():
                hit = old.get(fname)
                if hit is not None and hit[0] == sig:
                    new[fname] = hit
                    continue
                path = self.folder / fname
                if fname in links:
                    sp = StoredProfile(fname[:-5], path, None, f"{fname} is a symbolic link; the store does not "
                                       "read through links (copy the file into the folder instead)")
                else:
                    try:
                        sp = StoredProfile(fname[:-5], path, Profile.load(path, follow_symlinks=False))
                    except ProfileError as e:
                        sp = StoredProfile(fname[:-5], path, None, str(e))
                new[fname] = (sig, sp)
            _CACHE[key] = new  # most recently used last
            while len(_CACHE) > _CACHE_FOLDERS:
                _CACHE.pop(next(iter(_CACHE)))
        return [StoredProfile(sp.name, self.folder / f, sp.profile, sp.error)
                for f, (_, sp) in sorted(new.items())]

    def choose(self, model_hash: str | None, family: dict | None = None) -> tuple[StoredProfile | None, str]:
        """The automatic choice: a profile calibrated on this model (by hash), else one of the same family (same
        latent channels and scale), else none. Returns (choice, reason).

        Among several candidates: one made by this extension's calibration (meta "origin": "calibration") before any
        other (imports are stamped "import"), then the newest meta "created", then the name. The reason names the
        rule and the other candidates."""
        usable = [p for p in self.list() if p.profile is not None]
        if model_hash:
            h = str(model_hash).lower()
            hits = [p for p in usable if str(p.profile.meta.get("model_hash", "")).lower() == h]
            if hits:
                best, note = _pick(hits, "profiles carry this hash")
                return best, f"calibrated on this model ({best.name}){note}"
        if family:
            hits = [p for p in usable if all(p.profile.meta.get(k) == v for k, v in family.items())]
            if hits:
                best, note = _pick(hits, "profiles of this family")
                return best, (f"same model family, not this model ({best.name}){note}; calibrate this model for best "
                              "results")
        return None, "not calibrated: no profile for this model; calibrate it first"


def _too_large(n: int) -> str:
    return f"the imported profile is too large ({n} characters; at most {MAX_PROFILE_BYTES})"


def _origin(p: StoredProfile) -> str:
    o = p.profile.meta.get("origin")
    return {ORIGIN_CALIBRATION: "calibrated", ORIGIN_IMPORT: "imported"}.get(o, "origin unknown")


def _created(p: StoredProfile) -> float:
    """meta "created" as a POSIX time; missing or unreadable: the oldest."""
    c = p.profile.meta.get("created")
    if not isinstance(c, str):
        return float("-inf")
    try:
        t = _dt.datetime.fromisoformat(c.strip().replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    try:
        return t.timestamp()
    except (OverflowError, OSError, ValueError):
        return float("-inf")


def _rank(p: StoredProfile) -> tuple:
    return (p.profile.meta.get("origin") != ORIGIN_CALIBRATION, -_created(p), p.name)


def _pick(hits: list[StoredProfile], what: str) -> tuple[StoredProfile, str]:
    """The best candidate and, when there were several, why it won and who else was there."""
    hits = sorted(hits, key=_rank)
    best, others = hits[0], hits[1:]
    if not others:
        return best, ""
    calibrated = [p for p in hits if p.profile.meta.get("origin") == ORIGIN_CALIBRATION]
    if best in calibrated:
        rule = "chose the newest calibration" if len(calibrated) > 1 else "chose the one calibration made here"
    else:
        rule = "none was calibrated here; chose the newest"
    if _rank(best)[:2] == _rank(others[0])[:2]:
        rule += " (tie broken by name)"
    shown = ", ".join(f"{p.name} ({_origin(p)})" for p in others[:5])
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    return best, f": {len(hits)} {what}; {rule}; also: {shown}{more}"


MAX_PROMPT_FILE = 1 << 20  # bytes: 1000 prompts (calibration.MAX_PROMPTS) of ~1000 characters


def read_prompts(path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are ignored. A file above MAX_PROMPT_FILE bytes
    is refused before it is read whole (its prompts are echoed in the calibration report)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PROMPT_FILE + 1)
        if len(raw) > MAX_PROMPT_FILE:
            raise ProfileError(f"the reference prompt file {brief(str(path), 200)} is larger than {MAX_PROMPT_FILE} "
                               "bytes")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"cannot read the reference prompts {path}: {e}") from None
    prompts = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise ProfileError(f"the reference prompt file {path} holds no prompt")
    return prompts


DEFAULT_REFERENCE_PROMPTS = Path(__file__).with_name("data") / "reference_prompts.txt"

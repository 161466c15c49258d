"""A folder of named profiles: save, load, list, delete, import, export, and the automatic choice for a model.

Names are checked before any path is built, so nothing is ever read or written outside the folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .profile import Profile, ProfileError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


def check_name(name: str) -> str:
    """A profile name is a plain file stem: letters, digits, '.', '_', ' ', '-'; no separators, no '..'."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or name.endswith((".", " ")):
        raise ProfileError(f"invalid profile name {name!r}: use letters, digits, '.', '_', '-' and spaces "
                           "(at most 100, no path separators or '..')")
    return name


def profile_name(model_name: str, short_hash: str | None) -> str:
    """The default name for a model's profile, e.g. 'v1-5-pruned-emaonly-6ce0161689'."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model_name or "model").stem).strip("-.") or "model"
    h = re.sub(r"[^A-Za-z0-9]", "", short_hash or "")
    return check_name(f"{stem[:80]}-{h[:16]}" if h else stem[:96])


@dataclass
class StoredProfile:
    name: str
    path: Path
    profile: Profile | None
    error: str | None = None  # why the file cannot be used


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
            raise ProfileError(f"cannot write profile {name!r} to {self.folder}: {e.strerror or e}") from None

    def load(self, name: str) -> Profile:
        return Profile.load(self.path_for(name))

    def delete(self, name: str) -> None:
        path = self.path_for(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ProfileError(f"no profile named {name!r} in {self.folder}") from None
        except OSError as e:
            raise ProfileError(f"cannot delete profile {name!r}: {e.strerror or e}") from None

    def export_json(self, name: str) -> str:
        return json.dumps(self.load(name).to_dict(), indent=1)

    def import_json(self, text: str, name: str) -> Path:
        """Validate first; an invalid document is never written."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, TypeError) as e:
            raise ProfileError(f"the imported profile is not valid JSON: {e}") from None
        return self.save(Profile.from_dict(d), name)

    def list(self) -> list[StoredProfile]:
        """Every profile file in the folder, usable or not (an unusable one carries its error)."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob("*.json")):
            if not _NAME.match(path.stem):
                continue
            try:
                out.append(StoredProfile(path.stem, path, Profile.load(path)))
            except ProfileError as e:
                out.append(StoredProfile(path.stem, path, None, str(e)))
        return out

    def choose(self, model_hash: str | None, family: dict | None = None) -> tuple[StoredProfile | None, str]:
        """The automatic choice: the profile calibrated on this model (by hash), else one of the same family (same
        latent channels and scale), else none. Returns (choice, reason)."""
        usable = [p for p in self.list() if p.profile is not None]
        if model_hash:
            for p in usable:
                if str(p.profile.meta.get("model_hash", "")).lower() == model_hash.lower():
                    return p, f"calibrated on this model ({p.name})"
        if family:
            for p in usable:
                if all(p.profile.meta.get(k) == v for k, v in family.items()):
                    return p, f"same model family, not this model ({p.name}); calibrate this model for best results"
        return None, "not calibrated: no profile for this model; calibrate it first"


def read_prompts(path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"cannot read the reference prompts {path}: {e}") from None
    prompts = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise ProfileError(f"the reference prompt file {path} holds no prompt")
    return prompts


DEFAULT_REFERENCE_PROMPTS = Path(__file__).with_name("data") / "reference_prompts.txt"

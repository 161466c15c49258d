"""The script's arguments: positional in ui() order, or one dict (API), plus XYZ overrides set on ``p``.

Bad input never raises: it becomes a clear message, and the guard does not run for that job (the image finishes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from lib_memstab import GuardConfig

UI_ORDER = ("enabled", "mode", "profile", "tau_mild", "tau_strong", "gamma", "early_fraction", "plot")
GUARD_KEYS = tuple(f.name for f in fields(GuardConfig))
DICT_KEYS = tuple(dict.fromkeys(UI_ORDER + GUARD_KEYS))
MODE_LABELS = {"detect": "Detect only", "mitigate": "Detect and mitigate"}
_MODE_OF = {**{v.lower(): k for k, v in MODE_LABELS.items()}, "detect": "detect", "mitigate": "mitigate",
            "off": "off"}
AUTOMATIC = "automatic"
XYZ_FIELDS = {"enabled": "memstab_enabled", "mode": "memstab_mode", "tau_mild": "memstab_tau_mild",
              "tau_strong": "memstab_tau_strong", "gamma": "memstab_gamma"}
_NUMBERS = ("tau_mild", "tau_strong", "gamma", "early_fraction")


def setting_defaults(opts) -> dict:
    """The values a job uses for what its arguments leave out: the Settings section, else GuardConfig's defaults."""
    g = GuardConfig()
    data = getattr(opts, "data", None) or {}
    return {"enabled": False,
            "mode": data.get("memstab_mode", "detect"),
            "profile": data.get("memstab_profile", AUTOMATIC),
            "tau_mild": data.get("memstab_tau_mild", g.tau_mild),
            "tau_strong": data.get("memstab_tau_strong", g.tau_strong),
            "gamma": data.get("memstab_gamma", g.gamma),
            "early_fraction": data.get("memstab_early_fraction", g.early_fraction),
            "plot": data.get("memstab_plot", False),
            "score_window": g.score_window}


def ui_defaults(opts) -> list:
    """What ui() shows before the user touches it, in ui() order (the API fills missing positions with these)."""
    d = setting_defaults(opts)
    d["mode"] = MODE_LABELS.get(d["mode"], MODE_LABELS["detect"])
    return [d[k] for k in UI_ORDER]


@dataclass
class RunArgs:
    enabled: bool = False
    mode: str = "detect"
    profile: str = AUTOMATIC
    plot: bool = False
    config: GuardConfig | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.enabled and not self.errors and self.mode != "off"


def parse(args, opts=None, p=None) -> RunArgs:
    """args: the script's slice of p.script_args. Never raises."""
    vals = setting_defaults(opts)
    errors: list[str] = []
    args = tuple(args or ())
    if args and isinstance(args[0], dict):
        given = dict(args[0])
        unknown = sorted(set(given) - set(DICT_KEYS))
        if unknown:
            errors.append(f"unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(DICT_KEYS)}")
        given.setdefault("enabled", given.get("mode") != "off")  # sending a dict means "use it" unless said
        vals.update({k: v for k, v in given.items() if k in DICT_KEYS})
    else:
        if len(args) > len(UI_ORDER):
            errors.append(f"{len(args)} positional arguments; at most {len(UI_ORDER)} ({', '.join(UI_ORDER)})")
        vals.update(zip(UI_ORDER, args))
    if p is not None:  # XYZ plot axes set these on each cell's p
        for key, attr in XYZ_FIELDS.items():
            if hasattr(p, attr):
                vals[key] = getattr(p, attr)
    out = RunArgs()
    out.enabled = _bool(vals["enabled"], "enabled", errors)
    out.plot = _bool(vals["plot"], "plot", errors)
    mode = vals["mode"]
    if isinstance(mode, str) and mode.strip().lower() in _MODE_OF:
        out.mode = _MODE_OF[mode.strip().lower()]
    else:
        errors.append(f"mode must be one of detect, mitigate, off (or the UI labels); got {mode!r}")
    prof = vals["profile"]
    if isinstance(prof, str) and prof.strip():
        out.profile = prof.strip()
    else:
        errors.append(f"profile must be '{AUTOMATIC}' or a profile name; got {prof!r}")
    nums = {}
    for k in _NUMBERS:
        v = vals[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            errors.append(f"{k} must be a number; got {v!r}")
        else:
            nums[k] = float(v)
    if len(nums) == len(_NUMBERS):
        try:
            out.config = GuardConfig(mode=out.mode, score_window=vals["score_window"], **nums)
        except ValueError as e:
            errors.append(str(e))
    out.errors = errors
    return out


def _bool(v, name, errors) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):  # gradio and JSON sometimes give 0/1
        return bool(v)
    if isinstance(v, str) and v in ("True", "False"):  # XYZ and pasted infotext give strings
        return v == "True"
    errors.append(f"{name} must be true or false; got {v!r}")
    return False

"""The script's arguments: positional in ui() order, or one dict (API), plus XYZ overrides set on ``p``; all of them
are the knobs of memstab_webui.knobs.

Bad input never raises: it becomes a clear message (bounded: untrusted values are never echoed whole), and the
guard does not run for that job (the image finishes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lib_memstab import GuardConfig
from lib_memstab.text import brief

from . import knobs as K
from .knobs import AUTOMATIC, MODE_LABELS, UI_ORDER, coerce

__all__ = ["AUTOMATIC", "MODE_LABELS", "UI_ORDER", "RunArgs", "parse", "setting_defaults", "ui_defaults"]
MAX_UNKNOWN_SHOWN = 5


def setting_defaults(opts) -> dict:
    """The values a job uses for what its arguments leave out: the Settings section, else the knob's default."""
    data = getattr(opts, "data", None) or {}
    return {k.name: data.get(k.setting_key, k.default) if k.setting else k.default for k in K.KNOBS}


def ui_defaults(opts) -> list:
    """What ui() shows before the user touches it, in ui() order (the API fills missing positions with these)."""
    d = setting_defaults(opts)
    for k in K.KNOBS:  # a choice control shows labels: the setting's value becomes its label
        if k.kind == "choice":
            d[k.name] = k.choices.get(d[k.name], k.choices[k.default])
    return [d[k] for k in K.UI_ORDER]


@dataclass
class RunArgs:
    enabled: bool = False
    mode: str = "detect"
    profile: str = AUTOMATIC
    plot: bool = False
    config: GuardConfig | None = None
    values: dict = field(default_factory=dict)  # every knob's parsed value, by name
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
        unknown = [k for k in given if k not in K.BY_NAME]
        if unknown:
            shown = ", ".join(brief(k, 40) for k in unknown[:MAX_UNKNOWN_SHOWN])
            more = f" and {len(unknown) - MAX_UNKNOWN_SHOWN} more" if len(unknown) > MAX_UNKNOWN_SHOWN else ""
            errors.append(f"unknown key(s) {shown}{more}; known: {', '.join(K.DICT_KEYS)}")
        given.setdefault("enabled", given.get("mode") != "off")  # sending a dict means "use it" unless said
        vals.update({k: v for k, v in given.items() if k in K.BY_NAME})
    else:
        order = K.UI_ORDER
        if len(args) > len(order):
            errors.append(f"{len(args)} positional arguments; at most {len(order)} ({', '.join(order)})")
        vals.update(zip(order, args))
    if p is not None:  # XYZ plot axes set these on each cell's p
        for k in K.KNOBS:
            if k.xyz and hasattr(p, k.xyz_attr):
                vals[k.name] = getattr(p, k.xyz_attr)
    out = RunArgs()
    ok = {}
    for k in K.KNOBS:
        try:
            ok[k.name] = coerce(k, vals[k.name])
        except ValueError as e:
            errors.append(f"{k.name} {e}; got {brief(vals[k.name])}")
    out.values = ok
    out.enabled = ok.get("enabled", False)
    out.plot = ok.get("plot", False)
    out.mode = ok.get("mode", out.mode)
    out.profile = ok.get("profile", out.profile)
    guard = [k.name for k in K.KNOBS if k.guard]
    if all(n in ok for n in guard):
        try:
            out.config = GuardConfig(**{n: ok[n] for n in guard})
        except ValueError as e:
            errors.append(str(e))
    out.errors = errors
    return out

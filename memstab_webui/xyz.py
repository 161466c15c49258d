"""X/Y/Z plot axes, one per knob marked ``xyz`` in memstab_webui.knobs. Each sets an attribute on the cell's p that
args.parse reads."""

from __future__ import annotations

from . import knobs as K

LABEL = "[MemStab]"


def find_xyz_module():
    from modules import scripts

    for d in getattr(scripts, "scripts_data", []):
        if d.script_class.__module__ in ("xyz_grid.py", "scripts.xyz_grid") or str(d.path).endswith("xyz_grid.py"):
            return d.module
    return None


def _setter(attr):
    def apply(p, x, xs):
        setattr(p, attr, x)
    return apply


def axes() -> list[tuple]:
    """(label, type, setter attribute, choices or None) per axis."""
    out = []
    for k in K.KNOBS:
        if not k.xyz:
            continue
        choices = ["True", "False"] if k.kind == "bool" else list(k.choices) if k.kind == "choice" else None
        out.append((f"{LABEL} {k.xyz_label}", float if k.kind == "number" else str, k.xyz_attr, choices))
    return out


def register() -> None:
    """on_before_ui. Never raises: a missing or different XYZ script only means no axes."""
    try:
        xyz = find_xyz_module()
        if xyz is None or any(LABEL in getattr(o, "label", "") for o in xyz.axis_options):
            return
        for label, typ, attr, choices in axes():
            kw = {"choices": (lambda c=choices: list(c))} if choices else {}
            xyz.axis_options.append(xyz.AxisOption(label, typ, _setter(attr), **kw))
    except Exception as e:
        from .log import report

        report("[MemStab] adding the X/Y/Z plot axes failed", e)

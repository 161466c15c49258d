"""X/Y/Z plot axes: enabled, mode, tau_mild, tau_strong, gamma. Each sets an attribute on the cell's p that
args.parse reads (args.XYZ_FIELDS)."""

from __future__ import annotations

from .args import XYZ_FIELDS

LABEL = "[MemStab]"
AXES = (("enabled", "Enabled", str, ["True", "False"]), ("mode", "Mode", str, ["detect", "mitigate"]),
        ("tau_mild", "Sensitivity (tau_mild)", float, None), ("tau_strong", "Strong threshold (tau_strong)", float,
                                                                None),
        ("gamma", "Region width (gamma)", float, None))


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


def register() -> None:
    """on_before_ui. Never raises: a missing or different XYZ script only means no axes."""
    try:
        xyz = find_xyz_module()
        if xyz is None or any(LABEL in getattr(o, "label", "") for o in xyz.axis_options):
            return
        for key, label, typ, choices in AXES:
            kw = {"choices": (lambda c=choices: list(c))} if choices else {}
            xyz.axis_options.append(xyz.AxisOption(f"{LABEL} {label}", typ, _setter(XYZ_FIELDS[key]), **kw))
    except Exception as e:
        from .run import report

        report("[MemStab] adding the X/Y/Z plot axes failed", e)

"""Settings -> "Memorization guard": defaults for the knobs (from memstab_webui.knobs), the profile folder,
calibration, ADetailer, the log."""

from __future__ import annotations

from . import knobs as K
from .knobs import AUTOMATIC

SECTION = ("memstab", "Memorization guard")


def _component(name: str):
    try:
        import gradio as gr

        return getattr(gr, name)
    except ImportError:  # only in tests without gradio; the host always has it
        return name


def _knob_option(k):
    """(default, label, component name, component args, info) of a knob's Settings entry."""
    if k.kind == "choice":
        return k.default, k.setting, "Radio", {"choices": list(k.choices)}, k.tooltip
    if k.kind == "profile":
        def profile_choices():
            from modules import shared

            from . import profiles

            return {"choices": [AUTOMATIC, *profiles.list_profiles(shared.opts)]}

        return k.default, k.setting, "Dropdown", profile_choices, k.tooltip
    if k.kind == "number":
        lo, hi, step = k.slider
        return k.default, k.setting, "Slider", {"minimum": lo, "maximum": hi, "step": step}, k.tooltip
    return k.default, k.setting, None, None, None


def options() -> dict:
    """key -> (default, label, component name, component args, info)."""
    return {
        **{k.setting_key: _knob_option(k) for k in K.KNOBS if k.setting},
        "memstab_profile_dir": ("", "Profile folder (empty: the extension's profiles/ folder)", None, None, None),
        "memstab_calib_prompts": (50, "Calibration: reference prompts per run", "Slider",
                                  {"minimum": 2, "maximum": 500, "step": 1}, "the paper used 50"),
        "memstab_calib_seeds": (1, "Calibration: seeds per reference prompt", "Slider",
                                {"minimum": 1, "maximum": 8, "step": 1}, None),
        "memstab_reference_prompts": ("", "Calibration: reference prompt file (empty: the shipped "
                                      "lib_memstab/data/reference_prompts.txt)", None, None,
                                      "a .txt file, one ordinary prompt per line; # starts a comment"),
        "memstab_adetailer": (False, "Also guard ADetailer's inner passes (needs the script in ADetailer's list)",
                              None, None, None),
        "memstab_log": ("errors", "Console log", "Radio", {"choices": ["quiet", "errors", "verdicts", "debug"]},
                        "verdicts prints one line per image; debug also one summary per sampling pass"),
    }


def register() -> None:
    from modules import shared

    for key, (default, label, comp, comp_args, info) in options().items():
        oi = shared.OptionInfo(default, label, _component(comp) if comp else None, comp_args, section=SECTION)
        if info:
            oi = oi.info(info)
        shared.opts.add_option(key, oi)

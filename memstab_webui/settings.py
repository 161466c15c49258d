"""Settings -> "Memorization guard": defaults for the controls, the profile folder, calibration, plots, ADetailer,
the log."""

from __future__ import annotations

from lib_memstab import GuardConfig

SECTION = ("memstab", "Memorization guard")


def _component(name: str):
    try:
        import gradio as gr

        return getattr(gr, name)
    except ImportError:  # only in tests without gradio; the host always has it
        return name


def options() -> dict:
    """key -> (default, label, component name, component args, info)."""
    from . import profiles
    from .args import AUTOMATIC

    g = GuardConfig()

    def profile_choices():
        from modules import shared

        return {"choices": [AUTOMATIC, *profiles.list_profiles(shared.opts)]}

    return {
        "memstab_mode": ("detect", "Default mode", "Radio", {"choices": ["detect", "mitigate"]},
                         "detect only writes the verdict; mitigate also steers flagged generations"),
        "memstab_profile": (AUTOMATIC, "Default profile", "Dropdown", profile_choices,
                            "automatic: the profile calibrated for the loaded checkpoint (by its hash)"),
        "memstab_tau_mild": (g.tau_mild, "Default sensitivity (tau_mild, z-score)", "Slider",
                             {"minimum": 0.5, "maximum": 20, "step": 0.1}, "lower flags more"),
        "memstab_tau_strong": (g.tau_strong, "Default strong threshold (tau_strong, z-score)", "Slider",
                               {"minimum": 1, "maximum": 100, "step": 0.5}, "x0 z-score that makes a case strong"),
        "memstab_gamma": (g.gamma, "Default region width (gamma, spreads)", "Slider",
                          {"minimum": 0.5, "maximum": 10, "step": 0.1}, "half-width of the stability region"),
        "memstab_early_fraction": (g.early_fraction, "Default early window (fraction of the schedule)", "Slider",
                                   {"minimum": 0, "maximum": 1, "step": 0.05}, "mild cases are corrected only here"),
        "memstab_plot": (False, "Add a stability plot image per image to the gallery by default", None, None, None),
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

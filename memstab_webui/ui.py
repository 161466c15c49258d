"""The script's controls, in args.UI_ORDER. InputAccordion (A1111 >= 1.6, Forge, reForge) makes the accordion header
the enable switch; elsewhere an Accordion with a Checkbox. gradio-3.41 style only (gr.update, no .style, no gr.Box)
so that Forge's gradio-4 shim builds it too. No side effects: the API calls ui() again to get default values."""

from __future__ import annotations

from . import TITLE, profiles
from .args import AUTOMATIC, MODE_LABELS, UI_ORDER, ui_defaults

PASTE = {"mode": "MemStab mode", "profile": "MemStab profile", "tau_mild": "MemStab tau mild",
         "tau_strong": "MemStab tau strong", "gamma": "MemStab gamma", "early_fraction": "MemStab early window"}


def build(script, is_img2img: bool, opts=None) -> list:
    import gradio as gr

    try:
        from modules.ui_components import InputAccordion
    except Exception:
        InputAccordion = None
    if opts is None:
        from modules import shared

        opts = shared.opts
    d = dict(zip(UI_ORDER, ui_defaults(opts)))
    choices = [AUTOMATIC, *profiles.list_profiles(opts)]
    eid = script.elem_id

    def body():
        c = {"mode": gr.Radio(list(MODE_LABELS.values()), value=d["mode"], label="Mode", elem_id=eid("mode")),
             "profile": gr.Dropdown(choices, value=d["profile"] if d["profile"] in choices else AUTOMATIC,
                                    label="Profile", elem_id=eid("profile")),
             "tau_mild": gr.Slider(0.5, 20, value=d["tau_mild"], step=0.1, label="Sensitivity (tau_mild)",
                                   elem_id=eid("tau_mild")),
             "tau_strong": gr.Slider(1, 100, value=d["tau_strong"], step=0.5, label="Strong threshold (tau_strong)",
                                     elem_id=eid("tau_strong")),
             "gamma": gr.Slider(0.5, 10, value=d["gamma"], step=0.1, label="Region width (gamma)",
                                elem_id=eid("gamma")),
             "early_fraction": gr.Slider(0, 1, value=d["early_fraction"], step=0.05, label="Early window",
                                         elem_id=eid("early_fraction")),
             "plot": gr.Checkbox(d["plot"], label="Show stability plot", elem_id=eid("plot"))}
        return c

    if InputAccordion is not None:
        with InputAccordion(False, label=TITLE, elem_id=eid("enabled")) as enabled:
            c = body()
    else:
        with gr.Accordion(TITLE, open=False, elem_id=eid("accordion")):
            enabled = gr.Checkbox(False, label="Enable", elem_id=eid("enabled"))
            c = body()
    c["enabled"] = enabled
    script.infotext_fields = [
        (enabled, lambda p: "MemStab mode" in p),  # off when pasting an infotext without our keys
        (c["mode"], lambda p: MODE_LABELS.get(p.get("MemStab mode"), gr.update())),
        (c["profile"], lambda p: p["MemStab profile"] if p.get("MemStab profile") in choices else gr.update()),
        *[(c[k], PASTE[k]) for k in ("tau_mild", "tau_strong", "gamma", "early_fraction")],
    ]
    script.paste_field_names = list(PASTE.values())
    return [c[k] for k in UI_ORDER]

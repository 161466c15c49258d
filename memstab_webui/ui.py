"""The script's controls, in args.UI_ORDER. InputAccordion (A1111 >= 1.6, Forge, reForge) makes the accordion header
the enable switch; elsewhere an Accordion with a Checkbox. gradio-3.41 style only (gr.update, no .style, no gr.Box)
so that gradio 4 (Forge 2) builds it too, with or without Forge's shim. No side effects: the API calls ui() again
to get default values."""

from __future__ import annotations

import html
import json

from . import TITLE, profiles
from . import knobs as K
from .args import ui_defaults
from .knobs import AUTOMATIC, coerce, paste_value, titles

TITLES_CLASS = "memstab-titles"  # javascript/memstab_hints.js merges the knobs' tooltips from this element


def _control(gr, k, value, choices, eid):
    """The control of one knob (the accordion's switch itself is made by build())."""
    if k.kind == "choice":
        return gr.Radio(list(k.choices.values()), value=value, label=k.label, elem_id=eid(k.name))
    if k.kind == "profile":
        return gr.Dropdown(choices, value=value if value in choices else AUTOMATIC, label=k.label,
                           elem_id=eid(k.name))
    if k.kind == "number":
        lo, hi, step = k.slider
        return gr.Slider(lo, hi, value=value, step=step, label=k.label, elem_id=eid(k.name))
    if k.kind == "bool":
        return gr.Checkbox(value, label=k.label, elem_id=eid(k.name))
    raise ValueError(f"no control for a {k.kind!r} knob ({k.name}); give it ui=False or a case here")


def _paste(k, choices):
    """The paste-back function of one knob: the infotext's value, the default where the infotext leaves the knob out
    (memstab_webui.knobs). None (the control is left as it is) where the infotext carries no MemStab keys or a bad
    value: both hosts' UI paste turn None into an update, and their API skips it; a gradio 4 update object would
    reach Forge's API, which calls float() on it (a 500 for every infotext without our keys)."""
    def paste(params):
        if "MemStab mode" not in params:
            return None
        v = paste_value(k, params)
        if k.kind == "profile" and v not in choices:
            return None
        try:
            return coerce(k, float(v)) if k.kind == "number" else coerce(k, v) if k.kind == "bool" else v
        except (TypeError, ValueError, OverflowError):  # a hand-edited infotext: keep the control as it is
            return None

    return paste


def build(script, is_img2img: bool, opts=None) -> list:
    import gradio as gr

    try:
        from modules.ui_components import InputAccordion
    except Exception:
        InputAccordion = None
    if opts is None:
        from modules import shared

        opts = shared.opts
    d = dict(zip(K.UI_ORDER, ui_defaults(opts)))
    choices = [AUTOMATIC, *profiles.list_profiles(opts)]
    eid = script.elem_id
    knobs = [k for k in K.KNOBS if k.ui and k.name != "enabled"]

    def body():
        c = {k.name: _control(gr, k, d[k.name], choices, eid) for k in knobs}
        data = html.escape(json.dumps(titles()), quote=True)
        gr.HTML(f'<div class="{TITLES_CLASS}" hidden data-titles="{data}"></div>')
        return c

    if InputAccordion is not None:
        with InputAccordion(False, label=TITLE, elem_id=eid("enabled")) as enabled:
            c = body()
            panel(gr, script, is_img2img, opts, c["profile"])
    else:
        with gr.Accordion(TITLE, open=False, elem_id=eid("accordion")):
            enabled = gr.Checkbox(False, label="Enable", elem_id=eid("enabled"))
            c = body()
            panel(gr, script, is_img2img, opts, c["profile"])
    c["enabled"] = enabled
    script.infotext_fields = [
        (enabled, lambda p: "MemStab mode" in p),  # off when pasting an infotext without our keys
        *[(c[k.name], _paste(k, choices)) for k in knobs if k.infotext],
    ]
    script.paste_field_names = [k.infotext_key for k in knobs if k.infotext]
    return [c[k] for k in K.UI_ORDER]


# the host's own generation controls (A1111/Forge elem_ids), seen through Script.after_component: calibration uses
# the user's current sampler, steps, CFG and size
HOST_IDS = {"sampling": "sampler", "steps": "steps", "cfg_scale": "cfg_scale", "width": "width", "height": "height"}


def capture(script, component, elem_id) -> None:
    """Script.after_component: remember the host's generation controls of each tab."""
    try:
        if not isinstance(elem_id, str) or "_" not in elem_id:
            return
        tab, _, what = elem_id.partition("_")
        if tab in ("txt2img", "img2img") and what in HOST_IDS:
            host = script.__dict__.setdefault("_memstab_host", {})
            host.setdefault(tab, {})[HOST_IDS[what]] = component
    except Exception:
        pass  # never break the host's UI build


def panel(gr, script, is_img2img: bool, opts, profile_dropdown) -> None:
    """Calibration and profile management inside the accordion. Its components are not script arguments."""
    from . import manage

    eid = script.elem_id
    data = getattr(opts, "data", None) or {}
    with gr.Accordion("Calibration and profiles", open=False, elem_id=eid("calibration")):
        # not manage.status() here: reading shared.sd_model while the UI is built would wait for the model to load
        status = gr.Markdown("Press **Refresh** to see which profile the loaded model uses.", elem_id=eid("status"))
        with gr.Row():
            n_prompts = gr.Number(value=data.get("memstab_calib_prompts", 50), precision=0,
                                  label="Reference prompts", elem_id=eid("calib_prompts"))
            n_seeds = gr.Number(value=data.get("memstab_calib_seeds", 1), precision=0, label="Seeds per prompt",
                                elem_id=eid("calib_seeds"))
        exclude = gr.Textbox(label="Leave out these reference prompts (one per line; the next ones take their place)",
                             lines=2, placeholder="a prompt the last report names as setting a threshold",
                             elem_id=eid("calib_exclude"))
        calibrate = gr.Button("Calibrate this model", variant="primary", elem_id=eid("calibrate"))
        # the browser's progress task id: javascript/memstab_progress.js replaces this value (the element the
        # progress bar goes above: the report below) with a "task(...)" id before the click reaches Python
        task_id = gr.Textbox(value=eid("calib_report"), visible=False, elem_id=eid("calib_task"))
        result = gr.Markdown(elem_id=eid("calib_report"))
        band = gr.Image(type="pil", label="Calibrated stability region", interactive=False, elem_id=eid("band"))
        with gr.Row():
            stored = gr.Dropdown(profiles.list_profiles(opts), label="Stored profiles", elem_id=eid("stored"))
            refresh = gr.Button("Refresh", elem_id=eid("refresh"))
            delete = gr.Button("Delete", elem_id=eid("delete"))
            export = gr.Button("Export", elem_id=eid("export"))
        message = gr.Markdown(elem_id=eid("manage_message"))
        text = gr.Textbox(label="Profile JSON", lines=3, elem_id=eid("json"))
        with gr.Row():
            upload = gr.File(label="Profile file (.json)", file_types=[".json"], elem_id=eid("upload"))
            import_name = gr.Textbox(label="Import as", elem_id=eid("import_name"))
            do_import = gr.Button("Import", elem_id=eid("import"))
    tab = "img2img" if is_img2img else "txt2img"
    host = (script.__dict__.get("_memstab_host") or {}).get(tab, {})
    keys = [k for k in HOST_IDS.values() if k in host]

    def shared_opts():
        from modules import shared

        return shared.opts

    def run_calibration(id_task, n, seeds, left_out, *values):
        return manage.calibrate_ui(n, seeds, dict(zip(keys, values)), id_task=id_task, exclude=left_out)

    def lists():
        names = profiles.list_profiles(shared_opts())
        return (gr.update(choices=[AUTOMATIC, *names]), gr.update(choices=names, value=None),
                manage.status(shared_opts()))

    try:  # an API-side ui() call (defaults only) may have no Blocks to bind to
        lists_out = [profile_dropdown, stored, status]
        calibrate.click(run_calibration, inputs=[task_id, n_prompts, n_seeds, exclude, *[host[k] for k in keys]],
                        outputs=[result, band], **js_kwarg(calibrate.click, "memstabCalibrate")
                        ).then(lists, outputs=lists_out)
        refresh.click(lists, outputs=lists_out)
        delete.click(lambda name: manage.delete(name, shared_opts()), inputs=[stored],
                     outputs=[message]).then(lists, outputs=lists_out)
        export.click(lambda name: manage.export(name, shared_opts()), inputs=[stored], outputs=[message, text])
        do_import.click(lambda t, f, n: manage.import_(t, f, n, shared_opts()), inputs=[text, upload, import_name],
                        outputs=[message]).then(lists, outputs=lists_out)
    except Exception as e:
        from .log import report

        report("[MemStab] wiring the calibration panel failed; the guard's controls still work", e)


def js_kwarg(listener, fn_name: str) -> dict:
    """The event listener's keyword for a javascript function run before the Python one: gradio 3 ``_js``, gradio 4
    ``js`` (Forge's shim renames ``_js``, but the name the listener itself takes always works)."""
    import inspect

    try:
        params = inspect.signature(listener).parameters
    except (TypeError, ValueError):
        params = {}
    return {"js": fn_name} if "js" in params and "_js" not in params else {"_js": fn_name}

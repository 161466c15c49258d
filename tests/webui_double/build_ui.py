"""Build the script's ui() (with the calibration panel) inside a gr.Blocks, as the webui does, and print what came out
as JSON. Run as a subprocess by tests/test_webui_ui.py with a gradio-4 folder first on sys.path, so that gradio 4.40
(Forge 2's pin) shadows the gradio 3.41.2 installed in the environment: python build_ui.py <gradio folder or "">."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST_CONTROLS = (("txt2img_sampling", "Dropdown"), ("txt2img_steps", "Slider"), ("txt2img_cfg_scale", "Slider"),
                 ("txt2img_width", "Slider"), ("txt2img_height", "Slider"))


def build(gr, host, is_img2img: bool, input_accordion: bool) -> dict:
    if not input_accordion:
        sys.modules["modules.ui_components"] = None  # a host without InputAccordion: the import fails
    s = host.script_class()
    s.is_img2img = is_img2img
    try:
        with gr.Blocks() as demo:
            tab = "img2img" if is_img2img else "txt2img"
            for elem_id, kind in HOST_CONTROLS:
                s.after_component(getattr(gr, kind)(label=elem_id), elem_id=elem_id.replace("txt2img", tab))
            comps = s.ui(is_img2img)
    finally:
        sys.modules.pop("modules.ui_components", None)
    deps = demo.get_config_file()["dependencies"]
    by_id = {getattr(b, "_id", None): b for b in demo.blocks.values()}
    calib = [d for d in deps if any(getattr(by_id.get(t[0] if isinstance(t, (list, tuple)) else t), "elem_id", "")
                                    .endswith("_calibrate") for t in d.get("targets", []))]
    return {"types": [type(c).__name__ for c in comps], "values": [c.value for c in comps],
            "elem_ids": [c.elem_id for c in comps], "labels": [getattr(c, "label", None) for c in comps],
            "events": len(deps), "calibrate_js": [d.get("js") for d in calib],
            "calibrate_inputs": [len(d.get("inputs", [])) for d in calib], "reported": host.reported()}


def main(folder: str) -> None:
    if folder:
        sys.path.insert(0, folder)
    sys.path[1:1] = [str(HERE.parent), str(HERE.parents[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gradio as gr
    try:  # gradio 4 writes a .pyi stub next to every Component subclass's source (the double's InputAccordion)
        import gradio.component_meta as cm

        cm.create_or_modify_pyi = lambda *a, **k: None
    except ImportError:
        pass
    from webui_double import Host

    host = Host("a1111")
    out = {"gradio": gr.__version__, "gradio_file": gr.__file__, "builds": {}}
    try:
        for is_img2img in (False, True):
            for ia in (True, False):
                name = f"{'img2img' if is_img2img else 'txt2img'}/{'input_accordion' if ia else 'accordion'}"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out["builds"][name] = build(gr, host, is_img2img, ia)
    finally:
        host.close()
    print("MEMSTAB_UI " + json.dumps(out, default=str))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

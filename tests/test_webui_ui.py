"""ui() inside a gr.Blocks with the gradio A1111 pins (3.41.2): with the host's InputAccordion and with the
Accordion + Checkbox fallback; and under gradio 4.40.0 (Forge 2) in a subprocess. Skipped where gradio is not
installed (requirements-dev.txt cannot pin it: gradio 3.41.2 declares pillow<11 and the dev environment pins
pillow 13, with which it imports and builds fine)."""

import re
import sys
import warnings

import pytest
from conftest import ROOT as ROOT_DIR
from webui_double.helpers import parse

pytest_plugins = ["webui_double.testing"]
with warnings.catch_warnings():  # gradio 3.41's own imports warn about newer fastapi/starlette
    warnings.simplefilter("ignore", DeprecationWarning)
    gr = pytest.importorskip("gradio", reason="gradio is not installed (pip install --no-deps gradio==3.41.2 + deps)")


def build(host, is_img2img=False):
    s = host.script_class()
    s.is_img2img = is_img2img
    with gr.Blocks():
        comps = s.ui(is_img2img)
    return s, comps


@pytest.mark.parametrize("input_accordion", [True, False])
def test_ui_builds_with_defaults_in_ui_order(host, input_accordion, monkeypatch):
    from memstab_webui.args import UI_ORDER, ui_defaults

    if not input_accordion:
        monkeypatch.setitem(sys.modules, "modules.ui_components", None)  # a host without it: import fails
    s, comps = build(host)
    assert len(comps) == len(UI_ORDER)
    assert [c.value for c in comps] == ui_defaults(host.shared.opts)
    enabled = comps[0]
    assert isinstance(enabled, gr.Checkbox) and enabled.value is False
    if input_accordion:
        assert type(enabled).__name__ == "InputAccordion"
        assert enabled.accordion.label == "Memorization guard"
    assert comps[1].choices in (["Detect only", "Detect and mitigate"],
                                [("Detect only", "Detect only"), ("Detect and mitigate", "Detect and mitigate")])
    assert all(c.elem_id.startswith("script_txt2img_memorization_guard_") for c in comps)


def test_ui_builds_in_img2img_too(host):
    _, comps = build(host, is_img2img=True)
    assert all(c.elem_id.startswith("script_img2img_") for c in comps)


def test_paste_back_fields(host):
    s, comps = build(host)
    res = host.run(host.txt2img({"mode": "mitigate", "tau_mild": 4.5}, prompt="-1", steps=8))
    params = parse(res.infotexts[0])
    got = {}
    for comp, key in s.infotext_fields:
        v = key(params) if callable(key) else params.get(key)
        got[comps.index(comp)] = v
    assert got[0] is True and got[1] == "Detect and mitigate" and got[2] == "analytic" and float(got[3]) == 4.5
    from memstab_webui.knobs import KNOBS

    assert set(s.paste_field_names) == {k.infotext_key for k in KNOBS if k.ui and k.infotext}
    assert {"MemStab mode", "MemStab profile", "MemStab tau mild"} <= set(params), "mode, profile, non-defaults"
    assert s.infotext_fields[0][1]({"Steps": "20"}) is False, "an infotext without our keys switches the guard off"


def test_every_control_has_a_tooltip(host):
    """The panel's hints are in the javascript; the knobs' come from the knob table, carried by a hidden element
    that the javascript merges (so a new knob needs no javascript edit)."""
    import html
    import json

    from conftest import ROOT

    js = (ROOT / "javascript" / "memstab_hints.js").read_text()
    titled = set(re.findall(r'^\s*"([^"]+)":', js, re.M))
    with gr.Blocks() as demo:
        comps = host.script_class().ui(False)
    carriers = [b.value for b in demo.blocks.values() if isinstance(b, gr.HTML) and "memstab-titles" in str(b.value)]
    assert len(carriers) == 1 and ".memstab-titles" in js and "dataset.titles" in js
    carried = json.loads(html.unescape(re.search(r'data-titles="([^"]*)"', carriers[0]).group(1)))
    labels = {c.label for c in comps} | {"Memorization guard"}
    assert labels <= titled | set(carried) and "Enable" in carried and "Detect only" in carried
    assert all(len(t) > 20 for t in carried.values())


GRADIO4 = ROOT_DIR / ".venv" / "gradio4"  # tools/dev-env.sh installs requirements-ui4.txt there


@pytest.mark.skipif(not (GRADIO4 / "gradio").is_dir(),
                    reason=f"gradio 4 is not installed in {GRADIO4} (./tools/dev-env.sh installs requirements-ui4.txt)")
def test_ui_builds_under_gradio_4(host):
    """Forge 2 runs gradio 4.40.0: ui() and the calibration panel build there too (without Forge's shim, so the code
    itself is gradio-4 clean), in both tabs, with and without InputAccordion. In a subprocess with the gradio-4 folder
    first on sys.path, so that it shadows the gradio 3.41.2 this process has imported."""
    import json
    import os
    import subprocess

    from memstab_webui.args import UI_ORDER, ui_defaults

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT_DIR / "tests" / "webui_double" / "build_ui.py"), str(GRADIO4)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT_DIR)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MEMSTAB_UI ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("MEMSTAB_UI "):])
    assert out["gradio"] == "4.40.0" and out["gradio_file"].startswith(str(GRADIO4))
    assert set(out["builds"]) == {f"{t}/{a}" for t in ("txt2img", "img2img") for a in ("input_accordion", "accordion")}
    for name, b in out["builds"].items():
        tab, kind = name.split("/")
        assert len(b["types"]) == len(UI_ORDER) and b["values"] == ui_defaults(host.shared.opts), name
        assert b["types"][0] == ("InputAccordion" if kind == "input_accordion" else "Checkbox"), name
        assert all(e.startswith(f"script_{tab}_memorization_guard_") for e in b["elem_ids"]), name
        assert "memstabCalibrate" in b["calibrate_js"] and 9 in b["calibrate_inputs"], name  # task id, 2, exclude, 5
        assert b["events"] >= 7 and b["reported"] == [], name


def test_a_new_knob_is_one_entry(host, monkeypatch):
    """What docs/development.md promises: append one Knob and the control, its tooltip, the Settings entry, the
    argument parsing (dict and positional), the infotext key with its paste-back and the X/Y/Z axis all follow."""
    from memstab_webui import args, infotext, knobs, settings, xyz

    new = knobs.Knob("extra", "Extra switch", "bool", False, "A knob added by this test, to show it takes one entry.",
                     setting="Default extra switch", infotext="extra", xyz=True)
    monkeypatch.setattr(knobs, "KNOBS", (*knobs.KNOBS, new))
    knobs.derive()
    try:
        assert knobs.UI_ORDER[-1] == "extra", "appended: positional API arguments keep their order"
        assert "memstab_extra" in settings.options()
        assert "[MemStab] Extra switch" in [a[0] for a in xyz.axes()]
        assert knobs.titles()["Extra switch"].startswith("A knob added")
        a = args.parse([{"mode": "detect", "extra": True}])
        assert not a.errors and a.values["extra"] is True
        b = args.parse([True, "Detect only", "automatic", 3, 14, 3, 0.2, False, "paper", 0.02, 0.005, "repel", 1.0,
                        True])
        assert not b.errors and b.values["extra"] is True
        assert infotext.job_values(a.values, "p")["MemStab extra"] == "True"
        assert "MemStab extra" not in infotext.job_values(args.parse([{"mode": "detect"}]).values, "p")
        s = host.script_class()
        with gr.Blocks():
            comps = s.ui(False)
        assert comps[-1].label == "Extra switch" and isinstance(comps[-1], gr.Checkbox)
        assert "MemStab extra" in s.paste_field_names
        paste = dict((c.label, key) for c, key in s.infotext_fields if not isinstance(c, gr.Accordion))
        assert paste["Extra switch"]({"MemStab mode": "detect", "MemStab extra": "True"}) is True
        assert paste["Extra switch"]({"MemStab mode": "detect", "MemStab extra": "False"}) is False
        assert paste["Extra switch"]({"MemStab mode": "detect"}) is False, "left out: the default"
    finally:
        monkeypatch.undo()
        knobs.derive()


def test_every_choice_control_starts_on_one_of_its_choices(host):
    """Seen in a real browser: the Verdict radio started with nothing selected (its default was the setting's value,
    not its label)."""
    _, comps = build(host)
    for c in comps:
        if isinstance(c, gr.Radio):
            values = [ch[1] if isinstance(ch, (list, tuple)) else ch for ch in c.choices]
            assert c.value in values, (c.label, c.value, values)

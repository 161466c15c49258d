"""The script's surface: API arguments (positional and dict, bad ones), infotext keys that parse back, X/Y/Z axes,
settings, the stability plot, registration and unloading, install.py."""

import json
import re
import runpy
import sys

import pytest
import torch
from PIL import Image
from webui_double.helpers import MEMORIZED, images, memstab_keys, parse, run_of

pytest_plugins = ["webui_double.testing"]
KEY = re.compile(r"^\w[\w \-/]+$")


def keys_of(res):
    return [memstab_keys(parse(t)) for t in res.infotexts]


def test_positional_args_in_ui_order(host):
    from memstab_webui.args import UI_ORDER

    assert UI_ORDER[:8] == ("enabled", "mode", "profile", "tau_mild", "tau_strong", "gamma", "early_fraction", "plot")
    assert UI_ORDER[8:] == ("verdict", "fpr_suspicious", "fpr_memorized", "mitigation", "repel_strength"), \
        "guard v2's knobs appended: old calls work"
    res = host.run(host.txt2img([True, "Detect and mitigate", "automatic", 3, 14, 3, 0.2, False], prompt=MEMORIZED,
                                steps=10))
    (k,) = keys_of(res)
    assert k["MemStab mode"] == "mitigate" and int(k["MemStab mitigated steps"]) > 0
    res = host.run(host.txt2img([True], prompt=MEMORIZED, steps=10))  # the API fills the rest from ui()
    (k,) = keys_of(res)
    assert k["MemStab mode"] == "detect" and k["MemStab verdict"] == "memorized"


def test_dict_arg_with_guard_config_keys(host):
    args = {"enabled": True, "mode": "mitigate", "tau_mild": 3, "tau_strong": 14, "gamma": 3, "early_fraction": 0.2,
            "score_window": 5, "profile": "automatic", "plot": False}
    res = host.run(host.txt2img(args, prompt=MEMORIZED, steps=10))
    (k,) = keys_of(res)
    assert k["MemStab mode"] == "mitigate" and k["MemStab verdict"] == "memorized"
    assert run_of(res).args.config.score_window == 5
    res = host.run(host.txt2img({"mode": "detect"}, prompt=MEMORIZED, steps=10))
    assert keys_of(res)[0]["MemStab verdict"] == "memorized", "a dict without 'enabled' turns the guard on"


@pytest.mark.parametrize("bad,expected", [
    ({"enabled": True, "tau_mild": "high", "bogus": 1}, ["tau_mild must be a number", "unknown key(s) 'bogus'"]),
    ({"enabled": "yes"}, ["enabled must be true or false"]),
    ({"mode": "aggressive"}, ["mode must be one of"]),
    ({"tau_mild": 20, "tau_strong": 5}, ["tau_strong must be >= tau_mild"]),
    ([True, "detect", "automatic", "3", 14, 3, 0.2, False], ["tau_mild must be a number; got '3'"]),
    ([True, "detect", "", 3, 14, 3, 0.2, False], ["profile must be"]),
])
def test_bad_args_give_a_clear_message_and_the_image_finishes(host, bad, expected):
    off = images(host.run(host.txt2img(None, prompt=MEMORIZED, steps=8)))
    res = host.run(host.txt2img(bad, prompt=MEMORIZED, steps=8))
    assert torch.equal(images(res), off)
    info = json.loads(res.js())
    msg = info["extra_generation_params"]["MemStab error"]
    assert msg.startswith("bad arguments: ") and all(e in msg for e in expected), msg
    assert "MemStab error" in parse(info["infotexts"][0])
    assert any(msg in m for m, _ in host.reported()), "and in the log"


def test_infotext_keys_parse_back(host):
    from memstab_webui.infotext import parse_verdict

    res = host.run(host.txt2img({"mode": "mitigate"}, prompt=[MEMORIZED, "101"], batch_size=2, steps=12,
                                enable_hr=True, hr_second_pass_steps=4, denoising_strength=0.5))
    run = run_of(res)
    for i, text in enumerate(res.infotexts):
        parsed = parse(text)
        ours = memstab_keys(parsed)
        assert ours and all(KEY.match(k) for k in ours)
        for prefix in ("MemStab", "MemStab hires"):
            (v,) = [v for ident, pfx, v in run.results.verdicts if pfx == prefix and ident[0] == res.all_seeds[i]]
            back = parse_verdict(parsed, prefix=prefix)
            assert (back.label, back.severity, back.first_step, back.steps_mitigated) == \
                   (v.label, v.severity, v.first_step, v.steps_mitigated)
            assert back.score == pytest.approx(v.score, abs=0.006)
    for key in res.extra_generation_params:
        assert not key.startswith("MemStab") or KEY.match(key)


@pytest.mark.parametrize("given", [{"mode": "mitigate", "tau_mild": 4.5, "gamma": 2.5, "early_fraction": 0.3},
                                   {"mode": "detect"}, {"mode": "detect", "tau_strong": 20}])
def test_pasted_infotext_reproduces_the_settings(host, given):
    """Through the ui's own paste-back functions (what the webui calls on "Read generation parameters"): a setting
    left out of the infotext (at its default) pastes as that default."""
    from memstab_webui.args import parse as parse_args
    from memstab_webui.args import ui_defaults

    gr = pytest.importorskip("gradio", reason="the paste-back functions return gradio updates")
    s = host.script_class()
    with gr.Blocks():
        comps = s.ui(False)
    res = host.run(host.txt2img(given, prompt=MEMORIZED, steps=8))
    params = parse(res.infotexts[0])
    pasted = list(ui_defaults(host.shared.opts))
    for comp, key in s.infotext_fields:
        pasted[comps.index(comp)] = key(params) if callable(key) else params.get(key)
    a = parse_args(pasted, host.shared.opts)
    assert not a.errors and a.config == run_of(res).args.config
    written = set(memstab_keys(params)) - {"MemStab verdict", "MemStab score", "MemStab severity", "MemStab first step",
                                            "MemStab mitigated steps", "MemStab cond gap", "MemStab notes"}
    assert {"MemStab mode", "MemStab profile"} <= written
    assert ("MemStab tau mild" in written) == ("tau_mild" in given) and ("MemStab gamma" in written) == \
        ("gamma" in given), "a threshold is written only where it is not the default"


def test_xyz_axes_set_the_fields_the_script_reads(host):
    labels = [o.label for o in host.xyz.axis_options if o.label.startswith("[MemStab]")]
    assert labels == ["[MemStab] Enabled", "[MemStab] Mode", "[MemStab] Sensitivity (tau_mild)",
                      "[MemStab] Strong threshold (tau_strong)", "[MemStab] Region width (gamma)",
                      "[MemStab] Verdict rule", "[MemStab] Mitigation", "[MemStab] Repel strength"]
    host.callbacks.before_ui_callback()  # a UI reload must not add them twice
    assert len([o for o in host.xyz.axis_options if o.label.startswith("[MemStab]")]) == 8
    axes = {o.label: o for o in host.xyz.axis_options}
    p = host.txt2img([False], prompt=MEMORIZED, steps=8)
    for label, value in (("Enabled", "True"), ("Mode", "mitigate"), ("Sensitivity (tau_mild)", 4.0),
                         ("Strong threshold (tau_strong)", 20.0), ("Region width (gamma)", 2.0)):
        axes[f"[MemStab] {label}"].apply(p, value, [])
    assert (p.memstab_enabled, p.memstab_mode, p.memstab_tau_mild, p.memstab_tau_strong, p.memstab_gamma) == \
           ("True", "mitigate", 4.0, 20.0, 2.0)
    (k,) = keys_of(host.run(p))
    assert (k["MemStab mode"], k["MemStab tau mild"], k["MemStab tau strong"], k["MemStab gamma"]) == \
           ("mitigate", "4", "20", "2")
    assert list(k)[:2] == ["MemStab verdict", "MemStab score"], "the verdict leads"
    assert axes["[MemStab] Mode"].choices() == ["detect", "mitigate"]
    assert axes["[MemStab] Verdict rule"].choices() == ["calibrated", "paper"]
    assert axes["[MemStab] Mitigation"].choices() == ["repel", "paper"]


def test_settings_section_and_defaults(host):
    from memstab_webui.args import ui_defaults
    from memstab_webui.settings import SECTION

    opts = host.shared.opts
    ours = {k: v for k, v in opts.data_labels.items() if k.startswith("memstab_")}
    assert set(ours) == {"memstab_mode", "memstab_profile", "memstab_tau_mild", "memstab_tau_strong", "memstab_gamma",
                         "memstab_early_fraction", "memstab_plot", "memstab_profile_dir", "memstab_adetailer",
                         "memstab_log", "memstab_calib_prompts", "memstab_calib_seeds", "memstab_reference_prompts",
                         "memstab_verdict", "memstab_fpr_suspicious", "memstab_fpr_memorized", "memstab_mitigation",
                         "memstab_repel_strength"}
    assert all(v.section == SECTION for v in ours.values())
    opts.data["memstab_mode"] = "mitigate"
    opts.data["memstab_tau_mild"] = 5.0
    assert ui_defaults(opts)[:4] == [False, "Detect and mitigate", "automatic", 5.0]
    (k,) = keys_of(host.run(host.txt2img({"enabled": True}, prompt=MEMORIZED, steps=8)))
    assert k["MemStab mode"] == "mitigate" and k["MemStab tau mild"] == "5"


def test_stability_plot_is_added_per_image_and_segment(host):
    res = host.run(host.txt2img({"mode": "mitigate", "plot": True}, prompt=[MEMORIZED, "101"], batch_size=2,
                                steps=10, enable_hr=True, hr_second_pass_steps=3, denoising_strength=0.5))
    plots = [im for im in res.images if isinstance(im, Image.Image)]
    assert len(plots) == 4 and len(res.infotexts) == len(res.images)
    assert plots[0].size == (640, 360) and plots[0].getextrema() != ((255, 255), (255, 255), (255, 255))
    assert res.infotexts[-1].startswith("MemStab hires stability plot, seed")


def test_register_is_idempotent_and_unload_removes_everything(host):
    import importlib.util

    from memstab_webui import hooks, patches

    def count():
        return {k: sum(1 for c in v if "memstab_webui" in getattr(c.callback, "__module__", ""))
                for k, v in host.callbacks.callback_map.items()}

    before = count()
    assert before["callbacks_cfg_after_cfg"] == 1
    hooks.register()  # and "Reload custom script bodies" re-executes the script file
    spec = importlib.util.spec_from_file_location("memstab.py", host.module.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert count() == before
    patches.install()
    host.callbacks.script_unloaded_callback()
    assert count()["callbacks_cfg_after_cfg"] == 0 and not patches.installed()


def test_install_py_checks_versions(capsys):
    from conftest import ROOT

    runpy.run_path(str(ROOT / "install.py"), run_name="__main__")  # as the webui runs it, minus the subprocess
    assert "nothing to install" in capsys.readouterr().out
    sys.path.insert(0, str(ROOT))
    try:
        import install
    finally:
        sys.path.remove(str(ROOT))
    assert install.check() == []


def test_layout_rules():
    """The webui imports every .py in scripts/; the core must stay host-independent."""
    from conftest import ROOT

    assert sorted(f.name for f in (ROOT / "scripts").glob("*.py")) == ["memstab.py"]
    for f in (ROOT / "lib_memstab").glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+modules\b", f.read_text(), re.M), f


@pytest.mark.parametrize("which", ["render", "render_band"])
def test_plot_text_fits_and_leaves_the_label_badge_free(which):
    """Seen in the real webui: the caption ran 58 px past the image and gradio's label badge covered the title's
    start. Now nothing is drawn under the badge, and every text line ends inside the right margin."""
    import numpy as np
    from conftest import flat_profile

    from lib_memstab import Verdict
    from memstab_webui import plot

    title = "MemStab hires part 2 stability plot, seed 4294967295: memorized (strong), score 12345.67, first step " \
            "12, mitigated 40, extrapolated " * 2
    if which == "render":
        v = Verdict(image=0, segment=0, steps=20, score=1.0, flagged=True, severity="strong", first_step=2,
                    steps_mitigated=1, z_update=[1.0] * 20, z_latent=[2.0] * 20, z_x0=[30.0] * 20, mitigated=[2])
        img = plot.render(v, 3.0, 3.0, title)
    else:
        img = plot.render_band(flat_profile(), 3.0, title)
    a = np.asarray(img.convert("L")) < 250
    assert not a[:plot.BADGE].any(), "nothing under gradio's label badge"
    if which == "render":  # the legend fits on its line, not cut with "..." (seen in a real browser)
        from PIL import ImageDraw, ImageFont

        font, width = ImageFont.load_default(), img.size[0] - 48 - 12
        caption = plot.legend(3.0, 3.0)
        assert plot._lines(ImageDraw.Draw(img), caption, font, width, 1) == [caption]
    w = img.size[0]
    assert not a[:, w - 12 + 1:].any(), "no text past the right margin"

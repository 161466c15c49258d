"""Calibration from the webui against the host double: reference generations through the host's process_images with
the real k-diffusion samplers on the analytic memorizing model, then the guard on later jobs with the new profile;
interrupt, bad folders, bad names, nonsense profiles, a memorized prompt salted into the reference set, the API
routes, the automatic choice (hash, family, none), SDXL and 16-channel latents."""

import json

import pytest
import torch
from webui_double.helpers import MEMORIZED, ORDINARY, images, memstab_keys, parse
from webui_double.testing import ORDINARY_PROMPTS, assert_agrees

from lib_memstab import CalibrationInterrupted, Profile

pytest_plugins = ["webui_double.testing"]
SMALL = {"width": 64, "height": 64, "steps": 12}


def calibrate(host, **req):
    from memstab_webui import calibrate as c

    return c.calibrate(c.parse_request({**SMALL, "n_prompts": 12, **req}, host.shared.opts))


def guarded(host, prompt, **kw):
    res = host.run(host.txt2img({"mode": "detect", "profile": "automatic"}, prompt=prompt, **{**SMALL, **kw}))
    return memstab_keys(parse(res.infotexts[0])), res


def count_denoise(host):
    model, orig, n = host.shared.sd_model, host.shared.sd_model.denoise, [0]

    def counting(*a):
        n[0] += 1
        return orig(*a)

    model.denoise = counting
    return n


def test_calibrate_then_every_later_generation_gets_a_verdict(cal):
    from memstab_webui import patches
    from memstab_webui.registry import RUN

    st = cal.shared.state
    model, orig, seen = cal.shared.sd_model, cal.shared.sd_model.denoise, set()

    def watching(*a):
        seen.add((st.job_count, st.job_no, st.job))
        return orig(*a)

    model.denoise = watching
    rep = calibrate(cal)
    model.denoise = orig
    assert rep.name == "analytic-a1b2c3d4e5" and rep.path == cal.folder / "analytic-a1b2c3d4e5.json"
    assert rep.generations == 12 and rep.outliers == []
    meta = Profile.load(rep.path).meta
    assert {k: meta[k] for k in ("model_hash", "model", "sampler", "steps", "cfg_scale", "width", "height",
                                 "latent_channels", "latent_scale")} == \
        {"model_hash": "a1b2c3d4e5", "model": "analytic.safetensors", "sampler": "Euler", "steps": 12,
         "cfg_scale": 7.0, "width": 64, "height": 64, "latent_channels": 4, "latent_scale": 0.18215}
    assert meta["trajectories"] == 12 and rep.profile.statistic == "median_mad"
    assert {(c, n) for c, n, _ in seen} == {(12, k) for k in range(12)}, "progress through the webui's own state"
    assert (12, 11, "MemStab calibration 12/12") in seen and st.job_no == 12 and st.ended == 1
    assert not RUN and not patches.installed(), "nothing of the calibration stays active"
    # verdicts with other samplers and step counts (the profile is sigma-indexed)
    for sampler, steps in (("Euler", 12), ("DPM++ 2M", 25), ("Heun", 8)):
        mem, _ = guarded(cal, MEMORIZED, sampler_name=sampler, steps=steps)
        ordn, _ = guarded(cal, ORDINARY, sampler_name=sampler, steps=steps, seed=77)
        assert mem["MemStab verdict"] == "memorized", sampler
        assert_agrees(mem)
        assert_agrees(ordn)
        assert ordn["MemStab verdict"] == "clean" or sampler != "Euler", "the calibration's own sampler"
        assert mem["MemStab profile"] == "analytic-a1b2c3d4e5" and "MemStab note" not in mem
    assert cal.reported() == []


@pytest.mark.parametrize("variant,sampler", [("a1111", "Heun"), ("a1111", "DDIM"), ("a1111", "PLMS"),
                                             ("forge", "Euler"), ("forge", "DDIM")])
def test_calibration_follows_the_guards_step_tracking(tmp_path, variant, sampler):
    """One trajectory per reference generation, one row per sampler step (never a second-order auxiliary
    evaluation), on both host flavours and the timesteps path."""
    from webui_double import Host

    h = Host(variant)
    try:
        h.shared.opts.data["memstab_profile_dir"] = str(tmp_path)
        (tmp_path / "ref.txt").write_text("\n".join(ORDINARY_PROMPTS[:4]))
        rep = calibrate(h, prompts_file=str(tmp_path / "ref.txt"), sampler=sampler, steps=10, n_prompts=4)
        assert rep.profile.meta["trajectories"] == 4
        assert len(rep.profile.reference_sigmas) in (9, 10)  # A1111's timesteps path evaluates steps - 1 times
        assert all(s > 0 for s in rep.profile.reference_sigmas), "sigmas, not timesteps"
        mem, _ = guarded(h, MEMORIZED, sampler_name=sampler, steps=10, seed=3)  # seed 1 escapes at 10 DDIM steps
        assert mem["MemStab verdict"] == "memorized"
        assert h.reported() == []
    finally:
        h.close()


@pytest.mark.parametrize("at_generation", [2, 3])
def test_interrupt_writes_nothing(cal, at_generation):
    """Interrupt in the middle (and in the last generation: a partial trajectory must not make a profile)."""
    from memstab_webui.registry import RUN

    n = count_denoise(cal)
    model, counting = cal.shared.sd_model, cal.shared.sd_model.denoise

    def interrupting(*a):
        if n[0] == 12 * (at_generation - 1) + 5:  # 12 steps per generation, 5 steps into this one
            cal.shared.state.interrupt()
        return counting(*a)

    model.denoise = interrupting
    with pytest.raises(CalibrationInterrupted, match="no profile was written"):
        calibrate(cal, n_prompts=3)
    assert not cal.folder.exists() and not RUN and cal.shared.state.ended == 1
    from memstab_webui import manage

    md, image = manage.calibrate_ui(3, 1, SMALL)  # the button says so too (the next one runs: begin() resets)
    assert image is not None and "Calibrated" in md
    model.denoise = interrupting
    n[0] = 0
    md, image = manage.calibrate_ui(3, 1, SMALL)
    assert md.startswith("**Calibration stopped:**") and image is None


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_unusable_profile_folder_is_refused_before_any_generation(cal, kind):
    from memstab_webui import calibrate as c

    blocker = cal.tmp / "blocker"
    blocker.write_text("x")
    cal.shared.opts.data["memstab_profile_dir"] = str(blocker if kind == "file" else blocker / "profiles")
    n = count_denoise(cal)
    with pytest.raises(c.CalibrationError, match="cannot be used: .* is not a folder"):
        calibrate(cal)
    assert n[0] == 0 and blocker.read_text() == "x"


def test_save_failure_after_the_run_is_a_clear_message(cal, monkeypatch):
    """The folder becomes unusable while calibrating: the store's OSError becomes a ProfileError, no file."""
    from memstab_webui import manage, profiles

    monkeypatch.setattr(profiles, "check_writable", lambda folder: None)
    cal.shared.opts.data["memstab_profile_dir"] = str(cal.prompts / "profiles")  # under a file
    md, image = manage.calibrate_ui(3, 1, SMALL)
    assert md.startswith("**Calibration not done:** cannot write profile") and image is None


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "x\\y", "/abs", "", "trailing.", "dots..x", "c:evil"])
def test_bad_names_never_write_outside_the_folder(cal, name):
    from memstab_webui import calibrate as c
    from memstab_webui import manage

    before = sorted(p.name for p in cal.tmp.rglob("*"))
    n = count_denoise(cal)
    with pytest.raises(c.CalibrationError):
        c.parse_request({"name": name})
    assert n[0] == 0
    opts = cal.shared.opts
    assert manage.delete(name, opts).startswith("**Not deleted:**")
    assert manage.export(name, opts)[0].startswith("**Not exported:**")
    valid = json.dumps(calibrate_profile_dict())
    assert manage.import_(valid, None, name, opts).startswith("**Not imported:**")
    assert sorted(p.name for p in cal.tmp.rglob("*")) == before


def calibrate_profile_dict():
    from conftest import flat_profile

    return flat_profile().to_dict()


def test_nonsense_profile_files(cal):
    """A hand-edited file is listed as unusable with its error, skipped by automatic, refused by name; importing
    nonsense writes nothing."""
    from memstab_webui import manage

    opts = cal.shared.opts
    cal.folder.mkdir()
    (cal.folder / "broken.json").write_text('{"format": "memstab-profile", "version": 1, "axis": "sideways"')
    (cal.folder / "wrong.json").write_text(json.dumps({**calibrate_profile_dict(), "axis": "sideways"}))
    rows = {r["name"]: r for r in manage.listing(opts)}
    assert rows["broken"]["usable"] is False and "not valid JSON" in rows["broken"]["error"]
    assert rows["wrong"]["usable"] is False and "axis must be one of" in rows["wrong"]["error"]
    k, _ = guarded(cal, MEMORIZED)
    assert "not calibrated" in k["MemStab note"]
    res = cal.run(cal.txt2img({"mode": "detect", "profile": "broken"}, prompt=MEMORIZED, **SMALL))
    k = memstab_keys(parse(res.infotexts[0]))
    assert "profile broken unusable" in k["MemStab note"] and "not valid JSON" in k["MemStab note"]
    assert manage.export("broken", opts)[0].startswith("**Not exported:**")
    for text in ("{nonsense", json.dumps({"format": "memstab-profile", "version": 99}), "[1, 2]"):
        assert manage.import_(text, None, "new", opts).startswith("**Not imported:**")
    assert not (cal.folder / "new.json").exists()
    assert cal.reported() == []


def test_salted_reference_set_lists_the_memorized_prompt_and_still_flags(cal):
    """A memorized prompt among the reference prompts: listed as an outlier, and with the default robust statistic
    the region it was part of still flags memorized generations."""
    salted = ORDINARY_PROMPTS[:14] + [MEMORIZED] + ORDINARY_PROMPTS[14:19]
    cal.prompts.write_text("\n".join(salted))
    rep = calibrate(cal, n_prompts=20)
    assert rep.profile.statistic == "median_mad"
    assert [p for p, _ in rep.outliers] == [MEMORIZED], rep.outliers
    assert "z " in rep.markdown() and MEMORIZED in rep.markdown()
    # ... and the report names it as what holds the whole-pass threshold up, far above every other prompt
    pass_th = next(t for t in rep.setters if t.threshold == "whole-pass score, memorized")
    assert pass_th.set_by[0][0] == MEMORIZED and pass_th.next < pass_th.value
    assert f"- whole-pass score, memorized {pass_th.value:.2f}: `{MEMORIZED}`" in rep.markdown()
    for seed in (5, 6):
        mem, _ = guarded(cal, MEMORIZED, seed=seed)
        assert mem["MemStab verdict"] == "memorized"
    assert guarded(cal, ORDINARY, seed=9)[0]["MemStab verdict"] == "clean"


def test_leaving_out_the_prompt_the_report_names_puts_the_next_one_in_its_place(cal):
    """The report's advice, followed through the request: the named prompt is left out, the next prompt of the file
    takes its place (as many generations as asked), the report and the profile's meta say so, and the thresholds
    fall far below the salted prompt's scores."""
    salted = ORDINARY_PROMPTS[:14] + [MEMORIZED] + ORDINARY_PROMPTS[14:21]
    cal.prompts.write_text("\n".join(salted))
    before = calibrate(cal, n_prompts=20, name="salted")
    named = {p for t in before.setters for p, _ in t.set_by}
    assert MEMORIZED in named
    after = calibrate(cal, n_prompts=20, name="replaced", exclude=[*named, "not in the file"])
    assert after.generations == 20 and after.outliers == [] and after.profile.meta["prompts_left_out"] == len(named)
    assert MEMORIZED not in {p for t in after.setters for p, _ in t.set_by}
    assert "left out as asked, the next ones in the file in their place; 1 of the prompts to leave out are not in " \
           "the file" in after.markdown()
    pass_th = {t.threshold: t.value for t in after.setters}["whole-pass score, memorized"]
    assert pass_th < {t.threshold: t for t in before.setters}["whole-pass score, memorized"].next * 2
    assert "prompts_left_out" not in before.profile.meta
    # the panel's box: one prompt per line
    from memstab_webui import manage

    md, _ = manage.calibrate_ui(20, 1, SMALL, cal.shared.opts, exclude=f"  {MEMORIZED}  \n\n")
    assert "1 reference prompt(s) left out as asked" in md and "left their own region" not in md


def test_automatic_choice_by_hash_then_family_then_not_calibrated(cal):
    from memstab_webui import manage

    rep = calibrate(cal, n_prompts=6)
    other = Profile.load(rep.path)
    other.meta["model_hash"] = "0123456789"
    other.save(cal.folder / "other-model.json")
    k, _ = guarded(cal, MEMORIZED)
    assert k["MemStab profile"] == rep.name and "MemStab note" not in k
    model = cal.shared.sd_model
    model.sd_model_hash = model.sd_checkpoint_info.shorthash = "fedcba9876"  # another checkpoint, same family
    k, _ = guarded(cal, MEMORIZED)
    assert k["MemStab verdict"] == "memorized" and "same family" in k["MemStab note"]
    assert k["MemStab profile"] in (rep.name, "other-model")
    assert "automatic uses profile" in manage.status()
    model.scale_factor = 0.5  # another family: nothing fits
    k, _ = guarded(cal, MEMORIZED)
    assert "MemStab verdict" not in k
    assert "not calibrated for this model (hash fedcba9876)" in k["MemStab note"]
    assert "Calibrate this model" in k["MemStab note"]
    assert "**not calibrated**" in manage.status() and "Calibrate this model" in manage.status()
    model.sd_checkpoint_info.sha256 = "0123456789" + "e" * 54  # a profile may carry the full sha256 instead
    other.meta["model_hash"] = model.sd_checkpoint_info.sha256
    other.save(cal.folder / "other-model.json")
    assert guarded(cal, MEMORIZED)[0]["MemStab profile"] == "other-model"


def test_sdxl_calibrates_and_runs(cal):
    """SDXL: 4x128x128 latents, dict conds, its own VAE scale: a family of its own, calibrated and guarded."""
    from webui_double.host_model import SDXLModel

    calibrate(cal, n_prompts=4)  # an SD 1.x profile must not stand in for SDXL
    cal.shared.sd_model = SDXLModel()
    k, _ = guarded(cal, MEMORIZED, width=1024, height=1024, steps=8)
    assert "not calibrated" in k["MemStab note"]
    rep = calibrate(cal, n_prompts=6, width=None, height=None, steps=8)  # SDXL's default size: 1024
    assert rep.name == "sdxl-5e6f7a8b9c" and rep.profile.meta["latent_shape"] == [4, 128, 128]
    assert rep.profile.meta["latent_scale"] == 0.13025 and (rep.settings["width"], rep.settings["height"]) == \
        (1024, 1024)
    k, res = guarded(cal, ORDINARY, width=1024, height=1024, steps=8, seed=40)
    assert k["MemStab verdict"] == "clean" and k["MemStab profile"] == "sdxl-5e6f7a8b9c"
    assert "MemStab cond gap" in k, "the dict conds were read (rows per image)"
    assert images(res).shape[1:] == (4, 128, 128) and cal.reported() == []
    # (the double's analytic model does not memorize from noise at 128x128, so a memorized SDXL generation is not
    # shown here; the same code path flags memorized 8x8 generations in every other test)


def test_16_channel_latents_are_not_supported_yet_and_say_so(cal, monkeypatch):
    from webui_double.host_model import Flux16Model

    from memstab_webui import calibrate as c
    from memstab_webui import family, manage

    calibrate(cal, n_prompts=4)
    cal.shared.sd_model = Flux16Model()
    off = images(cal.run(cal.txt2img(None, prompt=ORDINARY, **SMALL)))
    k, res = guarded(cal, ORDINARY)
    assert "not supported yet (16-channel latents" in k["MemStab note"] and "MemStab verdict" not in k
    assert torch.equal(images(res), off) and off.shape[1] == 16
    with pytest.raises(c.CalibrationError, match="not supported yet"):
        calibrate(cal)
    assert "not supported yet" in manage.status()
    # a host that does not expose the channel count: the latent's shape says it, at the first step
    monkeypatch.setattr(family, "unsupported", lambda model: None)
    res = cal.run(cal.txt2img({"mode": "mitigate", "profile": "analytic-a1b2c3d4e5"}, prompt=ORDINARY, **SMALL))
    k = memstab_keys(parse(res.infotexts[0]))
    assert "not supported yet (16-channel latents" in k["MemStab note"] and "MemStab verdict" not in k
    assert torch.equal(images(res), off)
    with pytest.raises(c.CalibrationError, match="not supported yet"):
        calibrate(cal, n_prompts=4)
    assert sorted(p.name for p in cal.folder.iterdir()) == ["analytic-a1b2c3d4e5.json"]
    assert cal.reported() == []


@pytest.mark.parametrize("bad,msg", [({"n_prompts": 0}, "n_prompts must be a whole number"),
                                     ({"steps": "20"}, "steps must be a whole number"),
                                     ({"cfg_scale": -1}, "cfg_scale must be a number in (0, 100]"),
                                     ({"seeds": [1, "2"]}, "seeds must be a count"),
                                     ({"sampler": "Nope"}, "unknown sampler 'Nope'"),
                                     ({"width": 100}, "width must be a multiple of 8"),
                                     ({"prompts_file": "/etc/passwd"}, "prompts_file must be a .txt file"),
                                     ({"prompts_file": "/nowhere/x.txt"}, "cannot read the reference prompts"),
                                     ({"bogus": 1}, "unknown key(s) 'bogus'"),
                                     ({"exclude": ["a"] * 101}, "exclude must be a list of at most 100 prompts"),
                                     ({"exclude": ["a", 3]}, "exclude must be a list of at most 100 prompts"),
                                     ({"exclude": {"a": 1}}, "exclude must be a list of at most 100 prompts"),
                                     ({"exclude": ["x" * 1001]}, "at most 1000 characters (no NUL)"),
                                     ({"exclude": "a\0b"}, "at most 1000 characters (no NUL)"),
                                     ({"exclude": "y" * 200000}, "exclude must hold at most 100 prompts"),
                                     ({"exclude": [str(c) for c in range(101, 131)]}, "nothing is left")])
def test_bad_requests(cal, bad, msg):
    from memstab_webui import calibrate as c

    with pytest.raises(c.CalibrationError) as e:
        calibrate(cal, **bad)
    assert msg in str(e.value)
    assert not cal.folder.exists()


def test_api_routes(cal):
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    app = fastapi.FastAPI()
    cal.callbacks.app_started_callback(None, app)
    cal.callbacks.app_started_callback(None, app)  # a UI reload: routes are not added twice
    assert sum(1 for r in app.routes if getattr(r, "path", "") == "/memstab/v1/calibrate") == 1
    client = TestClient(app)
    r = client.get("/memstab/v1/profiles")
    assert r.status_code == 200 and r.json()["profiles"] == []
    assert "not calibrated" in r.json()["automatic"]["note"]
    cal.prompts.write_text("\n".join([*ORDINARY_PROMPTS[:7], MEMORIZED, *ORDINARY_PROMPTS[7:11]]))
    r = client.post("/memstab/v1/calibrate", json={"n_prompts": 12, "seeds": 1, "sampler": "Euler", "steps": 12,
                                                   "cfg_scale": 7.5, "width": 64, "height": 64})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "analytic-a1b2c3d4e5" and body["generations"] == 12
    assert [o["prompt"] for o in body["outliers"]] == [MEMORIZED] and body["profile"].startswith("log_sigma-indexed")
    r2 = client.post("/memstab/v1/calibrate", json={"n_prompts": 11, "seeds": 1, "sampler": "Euler", "steps": 12,
                                                    "width": 64, "height": 64, "exclude": [MEMORIZED], "name": "left"})
    assert r2.status_code == 200 and r2.json()["outliers"] == [] and r2.json()["meta"]["prompts_left_out"] == 1
    client.delete("/memstab/v1/profiles/left")
    setters = {t["threshold"]: t for t in body["threshold_setters"]}
    assert setters["whole-pass score, memorized"]["set_by"][0]["prompt"] == MEMORIZED
    assert {"early score, memorized", "early flag"} <= set(setters)
    assert all(t["next"] is None or t["next"] < t["value"] <= t["set_by"][-1]["score"] for t in setters.values())
    assert body["meta"]["model_hash"] == "a1b2c3d4e5" and body["meta"]["cfg_scale"] == 7.5
    r = client.get("/memstab/v1/profiles").json()
    assert r["automatic"] == {"name": "analytic-a1b2c3d4e5", "note": None,
                              "reason": "calibrated on this model (analytic-a1b2c3d4e5)"}
    assert [(p["name"], p["usable"]) for p in r["profiles"]] == [("analytic-a1b2c3d4e5", True)]
    exported = client.get("/memstab/v1/profiles/analytic-a1b2c3d4e5").json()
    assert Profile.from_dict(exported).meta["model_hash"] == "a1b2c3d4e5"
    assert client.put("/memstab/v1/profiles/copy", json=exported).json() == {"name": "copy", "imported": True}
    assert client.put("/memstab/v1/profiles/junk", json={"format": "x"}).status_code == 400
    assert client.delete("/memstab/v1/profiles/copy").json() == {"name": "copy", "deleted": True}
    assert client.delete("/memstab/v1/profiles/copy").status_code == 404
    for path in ("/memstab/v1/profiles/..", "/memstab/v1/profiles/%2E%2E", "/memstab/v1/profiles/a%2Fb"):
        assert client.delete(path).status_code in (400, 404)
    r = client.post("/memstab/v1/calibrate", json={"name": "../../evil"})
    assert r.status_code == 400 and "invalid profile name" in r.json()["error"]
    outside = cal.folder.parent / "elsewhere.txt"
    outside.write_text("a private line\n")
    r = client.post("/memstab/v1/calibrate", json={"prompts_file": str(outside)})
    assert r.status_code == 400 and "must be the reference prompt file set in Settings" in r.json()["error"]
    r = client.post("/memstab/v1/calibrate", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    n = count_denoise(cal)
    model, counting = cal.shared.sd_model, cal.shared.sd_model.denoise

    def interrupting(*a):
        if n[0] == 20:
            cal.shared.state.interrupt()
        return counting(*a)

    model.denoise = interrupting
    r = client.post("/memstab/v1/calibrate", json={"n_prompts": 4, "name": "partial", **SMALL})
    assert r.status_code == 409 and "no profile was written" in r.json()["error"]
    assert sorted(p.name for p in cal.folder.iterdir()) == ["analytic-a1b2c3d4e5.json"]
    assert not list(cal.tmp.glob("**/evil*"))


def test_manage_round_trip_and_band_plot(cal):
    from memstab_webui import manage, plot

    opts = cal.shared.opts
    assert "**not calibrated**" in manage.status()
    md, image = manage.calibrate_ui(6, 1, SMALL)
    assert md.startswith("**Calibrated** `analytic-a1b2c3d4e5` from 6 reference generations (Euler, 12 steps")
    assert image.size == (640, 480) and len(image.getcolors(1 << 16)) > 5
    assert "automatic uses profile `analytic-a1b2c3d4e5`" in manage.status()
    msg, text = manage.export("analytic-a1b2c3d4e5", opts)
    assert Profile.from_dict(json.loads(text)).meta["model_hash"] == "a1b2c3d4e5"
    f = cal.tmp / "shared-by-a-friend.json"
    f.write_text(text)
    assert manage.import_("", str(f), "", opts) == "Imported profile `shared-by-a-friend`."
    assert manage.delete("shared-by-a-friend", opts) == "Deleted profile `shared-by-a-friend`."
    step_profile = Profile.from_dict({**json.loads(text), "axis": "step",
                                      "grid": list(range(len(json.loads(text)["grid"])))})
    assert plot.render_band(step_profile, 3, "step axis").size == (640, 480)


def test_panel_uses_the_hosts_generation_controls(cal):
    gr = pytest.importorskip("gradio")
    s = cal.script_class()
    s.is_img2img = False
    with gr.Blocks() as demo:
        for elem_id, comp in (("txt2img_sampling", gr.Dropdown(["Euler", "Heun"], value="Heun")),
                              ("txt2img_steps", gr.Slider(1, 150, value=10)), ("txt2img_cfg_scale", gr.Slider(1, 30)),
                              ("txt2img_width", gr.Slider(64, 2048, value=64)),
                              ("txt2img_height", gr.Slider(64, 2048, value=64)), ("txt2img_prompt", gr.Textbox())):
            s.after_component(comp, elem_id=elem_id)
        s.ui(False)
    assert set(s._memstab_host["txt2img"]) == {"sampler", "steps", "cfg_scale", "width", "height"}
    (fn,) = [f for f in demo.fns if len(f.inputs) == 9]  # task id, n_prompts, seeds, exclude, five host controls
    md, image = fn.fn("task(panel)", 4, 1, "", "Heun", 10, 6.0, 64, 64)
    assert "(Heun, 10 steps, CFG 6, 64x64)" in md and image is not None
    refresh = [f for f in demo.fns if not f.inputs and len(f.outputs) == 3]
    profile_choices, stored, status = refresh[0].fn()
    assert profile_choices["choices"] == ["automatic", "analytic-a1b2c3d4e5"] and stored["choices"] == \
        ["analytic-a1b2c3d4e5"]
    assert "automatic uses profile `analytic-a1b2c3d4e5`" in status


class _Placeholder:
    """Forge's FakeInitialModel as the adapter sees it: no checkpoint info, no hash, no latent scale."""

    cond_stage_model = None
    chunk_length = 75


def _loading(host, *models):
    """process_images that first loads the next model into shared.sd_model, as Forge does (processing.py:804)."""
    orig, queue = host.processing.process_images, list(models)

    def process_images(p):
        if queue:
            host.shared.sd_model = queue.pop(0) if len(queue) > 1 else queue[0]
        p.sd_model = host.shared.sd_model  # A1111/Forge: a property returning shared.sd_model
        return orig(p)

    host.processing.process_images = process_images


def test_calibrating_right_after_a_lazy_start_labels_the_real_model(cal):
    real = cal.shared.sd_model
    cal.shared.sd_model = _Placeholder()
    _loading(cal, real)
    rep = calibrate(cal, n_prompts=4)
    assert rep.name == "analytic-a1b2c3d4e5"
    meta = json.loads((cal.folder / "analytic-a1b2c3d4e5.json").read_text())["meta"]
    assert (meta["model"], meta["model_hash"], meta["latent_scale"]) == ("analytic.safetensors", "a1b2c3d4e5", 0.18215)
    k, _ = guarded(cal, MEMORIZED)
    assert k["MemStab profile"] == "analytic-a1b2c3d4e5" and k["MemStab verdict"] == "memorized"


def test_calibrating_after_a_checkpoint_switch_labels_the_new_one(cal):
    old = cal.shared.sd_model  # still in shared.sd_model: Forge loads the switched checkpoint at the next job
    new = type(old)()
    new.sd_model_hash = new.sd_checkpoint_info.shorthash = "0123456789"
    new.sd_checkpoint_info.name = "switched.safetensors"
    _loading(cal, new)
    rep = calibrate(cal, n_prompts=4)
    assert rep.name == "switched-0123456789"
    assert json.loads((cal.folder / f"{rep.name}.json").read_text())["meta"]["model_hash"] == "0123456789"


def test_a_model_the_host_cannot_identify_is_refused_after_one_generation(cal):
    """A host that never says which checkpoint ran (no hash, no latent scale): refused, not a profile that nothing
    will ever match."""
    from types import SimpleNamespace

    from memstab_webui import calibrate as c

    anonymous = type(cal.shared.sd_model)()
    anonymous.sd_model_hash, anonymous.sd_checkpoint_info, anonymous.scale_factor = None, SimpleNamespace(), None
    cal.shared.sd_model = anonymous
    n = count_denoise(cal)
    with pytest.raises(c.CalibrationError, match="cannot tell which checkpoint was measured"):
        calibrate(cal, n_prompts=4)
    assert 0 < n[0] <= SMALL["steps"] and not cal.folder.exists(), "refused after the first generation"


def test_a_checkpoint_change_during_calibration_is_refused(cal):
    from memstab_webui import calibrate as c

    a = cal.shared.sd_model
    b = type(a)()
    b.sd_model_hash = b.sd_checkpoint_info.shorthash = "9999999999"
    _loading(cal, a, b)
    with pytest.raises(c.CalibrationError, match="the checkpoint changed during calibration"):
        calibrate(cal, n_prompts=4)
    assert not cal.folder.exists()


def test_a_reference_generation_the_webui_fails_is_a_clear_refusal(cal):
    """Seen in a real A1111 with a random checkpoint: its NaN check raises inside process_images. The calibration
    names the prompt, writes nothing and answers 400 over HTTP, with no traceback through the extension's files."""
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from memstab_webui import calibrate as c

    orig = cal.processing.process_images

    class NansException(Exception):
        pass

    def failing(p):
        if p.prompt == ORDINARY_PROMPTS[2]:
            raise NansException("A tensor with NaNs was produced in Unet.")
        return orig(p)

    cal.processing.process_images = failing
    with pytest.raises(c.CalibrationError, match=r"reference generation 3 \('103'\) failed in the webui: NansExc"):
        calibrate(cal, n_prompts=4)
    assert not cal.folder.exists()
    app = fastapi.FastAPI()
    cal.callbacks.app_started_callback(None, app)
    r = TestClient(app).post("/memstab/v1/calibrate", json={**SMALL, "n_prompts": 4})
    assert r.status_code == 400 and "NansException" in r.json()["error"]
    assert all(tb == "" for _, tb in cal.reported())


def test_reference_runs_carry_an_empty_script_runner(cal):
    """reForge reads p.scripts.alwayson_scripts without a None check: reference runs get an empty runner, and still
    no script runs in them (ours included)."""
    seen = []
    orig = cal.processing.process_images

    def spy(p):
        seen.append((type(p.scripts).__name__, list(getattr(p.scripts, "alwayson_scripts", [None]))))
        return orig(p)

    cal.processing.process_images = spy
    calibrate(cal, n_prompts=3)
    assert seen == [("ScriptRunner", [])] * 3

"""The adapter under hostile and careless input: the faults found by attacking a real A1111 v1.10.1's routes
(unbounded work, 500s with tracebacks, echoed and logged untrusted text, an imported profile shadowing the automatic
choice, paste-back of a hand-edited infotext), each as a regression test, plus property tests of the argument and
request parsers. The core's side (profile validation, names, atomic and symlink-safe writes, the cache) is in
test_hardening_core.py."""

import json
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_webui_calibration import calibrate, guarded
from webui_double.helpers import MEMORIZED, images, parse

pytest_plugins = ["webui_double.testing"]
fastapi = pytest.importorskip("fastapi")


@pytest.fixture
def client(cal):
    from fastapi.testclient import TestClient

    app = fastapi.FastAPI()
    cal.callbacks.app_started_callback(None, app)
    return TestClient(app, raise_server_exceptions=False)


# ------------------------------------------------------------------------------------------------ unbounded work
@pytest.mark.parametrize("body,bound", [
    ({"seeds": 1_000_000, "n_prompts": 8}, "seeds must be a whole number in [1, 64]"),
    ({"seeds": 10**9}, "seeds must be a whole number in [1, 64]"),
    ({"seeds": list(range(65))}, "at most 64 seeds"),
    ({"n_prompts": 10**7}, "n_prompts must be a whole number in [1, 1000]"),
    ({"n_prompts": 1000, "seeds": 5}, "at most 4096"),
    ({"width": 10**6, "height": 10**6}, "width must be a whole number in [64, 4096]"),
    ({"steps": 10**9}, "steps must be a whole number in [1, 500]"),
    ({"cfg_scale": 1e300}, "cfg_scale must be a number in (0, 100]"),
])
def test_calibration_bounds_are_checked_before_any_work(cal, client, body, bound):
    n = [0]
    orig = cal.processing.process_images

    def counting(p):
        n[0] += 1
        return orig(p)

    cal.processing.process_images = counting
    t = time.perf_counter()
    r = client.post("/memstab/v1/calibrate", json=body)
    assert r.status_code == 400 and bound in r.json()["error"], r.text
    assert time.perf_counter() - t < 2 and n[0] == 0 and not cal.folder.exists()


@pytest.mark.parametrize("body", [
    {"cfg_scale": 10**400}, {"seeds": 10**400}, {"steps": 10**400}, {"width": -(10**400)}, {"n_prompts": 10**400},
    {"prompts_file": "ref\x00.txt"}, {"prompts_file": "x" * 5000 + ".txt"}, {"sampler": "a" * 200},
    {"name": "x\n"}, {"name": "a" * 101},
])
def test_absurd_values_are_a_400_not_a_traceback(cal, client, body):
    raw = json.dumps(body)
    r = client.post("/memstab/v1/calibrate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert len(r.text) < 1000, "the bad value is not echoed whole"
    assert "Traceback" not in r.text and cal.reported() == []


@pytest.mark.parametrize("content,ctype", [
    (b"hello", "text/plain"), (b"{", "application/json"), (b"\xff\xfe", "application/octet-stream"),
    (b"[1, 2]", "application/x-www-form-urlencoded"), (b"[" * 100_000 + b"]" * 100_000, "application/json"),
])
def test_bodies_of_any_content_type_get_a_4xx(cal, client, content, ctype):
    for method, url in (("post", "/memstab/v1/calibrate"), ("put", "/memstab/v1/profiles/x")):
        r = getattr(client, method)(url, content=content, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
    assert not cal.folder.exists() or list(cal.folder.iterdir()) == []


def test_import_size_limit_and_not_found(cal, client):
    from lib_memstab import MAX_PROFILE_BYTES

    r = client.put("/memstab/v1/profiles/big", content=b" " * (MAX_PROFILE_BYTES + 1))
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert client.get("/memstab/v1/profiles/nothing").status_code == 404
    assert client.delete("/memstab/v1/profiles/nothing").status_code == 404
    assert client.get("/memstab/v1/profiles/..%2Fx").status_code in (400, 404)


def test_nan_in_an_imported_meta_is_refused_and_listing_stays_up(cal, client):
    calibrate(cal, prompts_file=str(cal.prompts))
    (good,) = cal.folder.iterdir()
    doc = json.loads(good.read_text())
    for bad in ({"x": float("nan")}, {"x": [float("inf")]}, {"deep": {"deeper": -float("inf")}}):
        doc["meta"] = bad
        raw = json.dumps(doc)  # Python writes NaN/Infinity, as a careless client would
        r = client.put("/memstab/v1/profiles/imported", content=raw)
        assert r.status_code == 400, r.text
    doc["grid"][0] = 10**400
    assert client.put("/memstab/v1/profiles/imported", content=json.dumps(doc)).status_code == 400
    r = client.get("/memstab/v1/profiles")
    assert r.status_code == 200 and [p["name"] for p in r.json()["profiles"]] == [good.stem]
    assert client.get(f"/memstab/v1/profiles/{good.stem}").status_code == 200


# ------------------------------------------------------------------------------------------------ the automatic choice
def test_an_imported_profile_cannot_silently_take_over(cal, client):
    """An import carrying the loaded model's hash under a name that sorts first, with a huge spread that would make
    every image 'clean': the calibration keeps the choice, and the API, the panel and the infotext say so."""
    from memstab_webui import manage

    calibrate(cal, prompts_file=str(cal.prompts))
    (good,) = cal.folder.iterdir()
    doc = json.loads(good.read_text())
    doc["stats"] = {q: {"mean": v["mean"], "std": [1e6] * len(v["std"])} for q, v in doc["stats"].items()}
    doc["meta"]["origin"] = "calibration"  # a claim the import must not keep
    r = client.put("/memstab/v1/profiles/000-shadow", content=json.dumps(doc))
    assert r.status_code == 200, r.text
    auto = client.get("/memstab/v1/profiles").json()["automatic"]
    assert auto["name"] == good.stem and "000-shadow (imported)" in auto["reason"]
    assert "000-shadow" in auto["note"] and "000-shadow" in manage.status(cal.shared.opts)
    k, _ = guarded(cal, MEMORIZED)
    assert k["MemStab verdict"] == "memorized" and k["MemStab profile"] == good.stem
    assert "000-shadow (imported)" in k["MemStab note"], "the image says which profile judged it and why"


def test_the_profile_folder_is_parsed_once_not_per_job(cal):
    from lib_memstab import Profile

    calibrate(cal, prompts_file=str(cal.prompts))
    guarded(cal, MEMORIZED)
    calls, orig = [0], Profile.from_dict.__func__

    def counting(cls, d):
        calls[0] += 1
        return orig(cls, d)

    Profile.from_dict = classmethod(counting)
    try:
        for _ in range(3):
            k, _ = guarded(cal, MEMORIZED)
            assert k["MemStab verdict"] == "memorized"
    finally:
        Profile.from_dict = classmethod(orig)
    assert calls[0] == 0


# ------------------------------------------------------------------------------------------------ script arguments
@pytest.mark.parametrize("args", [{"tau_mild": 10**400}, {"gamma": -(10**400)}, {"early_fraction": 10**30},
                                  {"score_window": 10**400}, {"mode": "m" * 100_000}])
def test_absurd_script_arguments_give_a_bounded_note_and_no_traceback(cal, args):
    off = images(cal.run(cal.txt2img(None, prompt=MEMORIZED, steps=8)))
    res = cal.run(cal.txt2img(args, prompt=MEMORIZED, steps=8))
    assert images(res).equal(off)
    msg = res.extra_generation_params["MemStab error"]
    assert msg.startswith("bad arguments: ") and len(msg) < 600, msg[:300]
    assert all(tb == "" for _, tb in cal.reported()), "reported as a message, without a traceback"


def test_unknown_keys_cannot_forge_a_log_line_nor_amplify(cal):
    keys = {"x\n[MemStab] forged line": 1, **{f"k{i}": 1 for i in range(100_000)}}
    res = cal.run(cal.txt2img(keys, prompt=MEMORIZED, steps=4))
    msg = res.extra_generation_params["MemStab error"]
    assert "\n" not in msg and len(msg) < 1000 and "99996 more" in msg and "forged" in msg
    (logged,) = [m for m, _ in cal.reported()]
    assert "\n" not in logged


def test_a_hand_edited_infotext_pastes_without_error(cal):
    gr = pytest.importorskip("gradio")
    s = cal.script_class()
    with gr.Blocks():
        comps = s.ui(False)
    res = cal.run(cal.txt2img({"mode": "mitigate", "tau_mild": 4.5}, prompt=MEMORIZED, steps=8))
    text = res.infotexts[0].replace("MemStab tau mild: 4.5", "MemStab tau mild: abc")
    params = parse(text)
    assert params["MemStab tau mild"] == "abc"
    fields = {comps.index(c): key for c, key in s.infotext_fields}
    tau = fields[3](params)
    assert tau is None, "left as it is (None: the hosts' paste skips it), no float('abc')"
    params["MemStab tau mild"] = "1e999"
    assert fields[3](params) is None
    plain = parse(res.infotexts[0].split("MemStab")[0].rstrip(", "))  # an infotext without our keys (seen in Forge:
    assert all(key(plain) in (None, False) for _, key in s.infotext_fields if callable(key))  # an update -> 500)


# ------------------------------------------------------------------------------------------------ properties
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                       max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["enabled", "mode", "profile", "tau_mild", "tau_strong", "gamma",
                                        "early_fraction", "plot", "score_window", "other"]), JSONISH, max_size=6)
       | st.lists(JSONISH, max_size=10))
def test_argument_parsing_never_raises(args):
    from memstab_webui.args import parse as parse_args

    a = parse_args([args] if isinstance(args, dict) else args)
    assert (a.config is not None) or a.errors
    assert all(len(e) < 700 for e in a.errors)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["prompts_file", "n_prompts", "seeds", "sampler", "steps", "cfg_scale",
                                        "width", "height", "name", "bogus"]), JSONISH, max_size=5) | JSONISH)
def test_calibration_requests_parse_or_say_why(body):
    from memstab_webui import calibrate as c

    try:
        r = c.parse_request(body)
    except c.CalibrationError as e:
        assert len(str(e)) < 1000
        return
    assert 1 <= r.n_prompts * len(r.seeds) <= 4096 and (r.steps is None or 1 <= r.steps <= 500)


def test_no_route_answers_500_for_random_imports(cal, client):
    @settings(max_examples=60, deadline=None)
    @given(JSONISH, st.text(max_size=30))
    def run(doc, name):
        r = client.put(f"/memstab/v1/profiles/{quote(name or 'x', safe='')}", content=json.dumps(doc))
        assert r.status_code < 500, r.text

    run()


@pytest.mark.parametrize("name", ["x\nMemStab verdict: clean", "../etc/passwd", "a" * 150])
def test_a_profile_argument_is_a_plain_name(cal, name):
    res = cal.run(cal.txt2img({"mode": "detect", "profile": name}, prompt=MEMORIZED, steps=4))
    msg = res.extra_generation_params["MemStab error"]
    assert "profile must be 'automatic' or a profile name" in msg and "\n" not in msg

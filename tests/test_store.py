import json

import pytest
import torch
from conftest import flat_profile

from lib_memstab import (
    DEFAULT_REFERENCE_PROMPTS,
    CalibrationInterrupted,
    ProfileError,
    ProfileStore,
    check_name,
    profile_name,
    read_prompts,
    run_calibration,
)
from memstab_testbed.analytic import SHAPE, AnalyticModel


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "", ".hidden", "x..y", "name.", "a" * 101, None, "c:x"])
def test_bad_names_never_build_a_path(tmp_path, name):
    store = ProfileStore(tmp_path / "profiles")
    with pytest.raises(ProfileError, match="invalid profile name"):
        store.save(flat_profile(), name)
    assert not (tmp_path / "profiles").exists() or not list((tmp_path / "profiles").iterdir())
    assert not (tmp_path / "evil.json").exists()


def test_profile_name_from_a_checkpoint():
    assert profile_name("models/Stable-diffusion/v1-5-pruned-emaonly.safetensors", "6ce0161689") == \
        "v1-5-pruned-emaonly-6ce0161689"
    assert check_name(profile_name("../../we ird/na:me?.ckpt", "ab/cd")) == "na-me-abcd"


def test_save_load_list_delete_export_import(tmp_path):
    store = ProfileStore(tmp_path / "p")
    p = flat_profile()
    p.meta["model_hash"] = "abc123"
    store.save(p, "one")
    assert store.load("one").to_dict() == p.to_dict()
    (tmp_path / "p" / "broken.json").write_text("{not json")
    listed = {s.name: s for s in store.list()}
    assert set(listed) == {"one", "broken"} and listed["broken"].profile is None and "JSON" in listed["broken"].error
    text = store.export_json("one")
    store.import_json(text, "two")
    assert store.load("two").to_dict() == {**p.to_dict(), "meta": {**p.meta, "origin": "import"}}  # stamped
    with pytest.raises(ProfileError, match="not valid JSON"):
        store.import_json("{", "three")
    bad = json.loads(text)
    bad["stats"]["x0"]["std"][0] = -1
    with pytest.raises(ProfileError, match="negative"):
        store.import_json(json.dumps(bad), "three")
    assert not (tmp_path / "p" / "three.json").exists()
    store.delete("two")
    with pytest.raises(ProfileError, match="no profile named"):
        store.delete("two")


def test_unwritable_folder_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    store = ProfileStore(tmp_path / "file" / "profiles")  # a folder below a file can never be created
    with pytest.raises(ProfileError, match="cannot write profile"):
        store.save(flat_profile(), "x")


def test_automatic_choice_by_hash_then_family(tmp_path):
    store = ProfileStore(tmp_path)
    a, b = flat_profile(), flat_profile()
    a.meta.update(model_hash="AAA", latent_channels=4, latent_scale=8)
    b.meta.update(model_hash="BBB", latent_channels=4, latent_scale=8)
    store.save(a, "a")
    store.save(b, "b")
    assert store.choose("bbb")[0].name == "b"
    choice, why = store.choose("ccc", {"latent_channels": 4, "latent_scale": 8})
    assert choice is not None and "same model family" in why
    choice, why = store.choose("ccc", {"latent_channels": 16, "latent_scale": 8})
    assert choice is None and why.startswith("not calibrated")
    assert ProfileStore(tmp_path / "missing").choose("x")[0] is None


def test_shipped_reference_prompts():
    prompts = read_prompts(DEFAULT_REFERENCE_PROMPTS)
    assert len(prompts) >= 100 and len(set(prompts)) == len(prompts)


def test_a_reference_prompt_file_too_large_is_refused_before_it_is_read_whole(tmp_path):
    from lib_memstab.store import MAX_PROMPT_FILE

    big = tmp_path / "big.txt"
    big.write_bytes(b"a photo\n" * (MAX_PROMPT_FILE // 8 + 1))
    with pytest.raises(ProfileError, match="larger than"):
        read_prompts(big)
    ok = tmp_path / "ok.txt"
    ok.write_bytes(b"a photo\n" * (MAX_PROMPT_FILE // 8))  # exactly the bound
    assert len(read_prompts(ok)) == MAX_PROMPT_FILE // 8


def _analytic_generate(conds):
    from memstab_testbed.kdiff import import_k_diffusion

    k = import_k_diffusion()
    sigmas = torch.cat([torch.logspace(1.16, -1.5, 12), torch.zeros(1)])
    model = AnalyticModel()

    def generate(prompt, seed, observe):
        x = torch.randn((1, *SHAPE), generator=torch.Generator().manual_seed(seed)) * sigmas[0]
        cfg = model.cfg_denoiser([conds[prompt]], 7.5)
        steps = iter(range(len(sigmas)))

        def den(x, sigma, **_):
            return observe(x, cfg(x, sigma), sigma[0], sigmas[next(steps) + 1])

        k.sampling.sample_euler(den, x, sigmas, disable=True)

    return generate


def test_calibration_lists_a_memorized_prompt_salted_into_the_reference_set():
    conds = {f"ordinary {i}": i for i in range(30)}
    conds["salted memorized"] = -1
    seen = []
    res = run_calibration(_analytic_generate(conds), list(conds), seeds=[0, 1], progress=lambda k, n: seen.append(k),
                          meta={"model_hash": "abc"})
    assert res.generations == 62 and seen[-1] == 62
    assert res.profile.meta["model_hash"] == "abc" and res.profile.meta["reference_prompts"] == 31
    assert "salted memorized" in {label for _, label, _ in res.outliers}
    # the references behind each threshold: the salted prompt, both seeds, holds the whole-pass threshold up
    from lib_memstab import GuardConfig
    from lib_memstab.rules import threshold_at
    from lib_memstab.verdict import verdict_thresholds

    th, eth, _ = verdict_thresholds(res.profile, GuardConfig(), "update")
    by = {s.threshold: s for s in res.setters}
    assert set(by) == {"whole-pass score, memorized", "early score, memorized", "early flag"}
    assert by["whole-pass score, memorized"].value == th["memorized"]
    assert by["early score, memorized"].value == eth["memorized"]
    assert by["early flag"].value == threshold_at(res.profile.reference_early["update"], GuardConfig().fpr_early)
    assert by["whole-pass score, memorized"].set_by[0][0] == "salted memorized"
    # "next" is the highest other prompt, not the salted prompt's second seed (which also scores far above)
    assert by["whole-pass score, memorized"].next < by["whole-pass score, memorized"].value / 10
    for s in res.setters:
        vals = [v for _, v in s.set_by]
        assert vals and vals == sorted(vals, reverse=True) and min(vals) >= s.value
        assert s.next is None or s.next < s.value


def test_interrupted_calibration_raises_and_returns_nothing():
    conds = {f"p{i}": i for i in range(5)}
    calls = []
    with pytest.raises(CalibrationInterrupted, match="after 2 of 5"):
        run_calibration(_analytic_generate(conds), list(conds), should_stop=lambda: len(calls) >= 2,
                        progress=lambda k, n: calls.append(k))
    # an interrupt that lands during the last generation is not kept either
    gen = _analytic_generate(conds)
    stop = {"now": False}

    def generate(prompt, seed, observe):
        gen(prompt, seed, observe)
        stop["now"] = prompt == "p4"

    with pytest.raises(CalibrationInterrupted, match="during generation 5 of 5"):
        run_calibration(generate, list(conds), should_stop=lambda: stop["now"])

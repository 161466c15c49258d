"""Regression tests for faults found by attacking the webui's routes: hostile or careless profiles, names, imports,
concurrent saves, symbolic links, oversized calibration requests, and the automatic choice."""

import copy
import itertools
import json
import math
import os
import threading
import time
import tracemalloc

import pytest
import torch
from conftest import flat_profile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lib_memstab import (
    MAX_GENERATIONS,
    MAX_PROFILE_BYTES,
    MAX_PROMPTS,
    MAX_SEEDS,
    CalibrationTooLarge,
    Profile,
    ProfileError,
    ProfileNotFound,
    ProfileStore,
    brief,
    check_name,
    run_calibration,
)
from lib_memstab import profile as profile_mod

posix_only = pytest.mark.skipif(os.name != "posix", reason="symbolic links and FIFOs as on POSIX")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _doc(**meta):
    p = flat_profile()
    p.meta.update(meta)
    return p.to_dict()


def _never_generate(prompt, seed, observe):
    raise AssertionError("no generation may run for a refused request")


# ------------------------------------------------------------------------------------------------ 1. unbounded work
def test_a_huge_seed_range_is_refused_instantly_without_allocating():
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(CalibrationTooLarge, match=f"at most {MAX_SEEDS}"):
            run_calibration(_never_generate, ["a", "b"], range(10**9))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0 and peak < 1_000_000
    assert issubclass(CalibrationTooLarge, ProfileError)


@pytest.mark.parametrize("prompts,seeds,match", [
    (["p"] * (MAX_PROMPTS + 1), [0], f"at most {MAX_PROMPTS}"),
    (["p"] * MAX_PROMPTS, list(range(MAX_SEEDS)), f"at most {MAX_GENERATIONS}"),
    (["p"], itertools.count(), f"at most {MAX_SEEDS}"),  # endless, no len(): cut after MAX_SEEDS + 1
    ((f"p{i}" for i in itertools.count()), [0], f"at most {MAX_PROMPTS}"),
])
def test_oversized_calibrations_are_refused_before_any_generation(prompts, seeds, match):
    with pytest.raises(CalibrationTooLarge, match=match):
        run_calibration(_never_generate, prompts, seeds)


@pytest.mark.parametrize("seeds,meta", [([0.5], None), ([True], None), ([2**60], None), ([0], {"x": float("nan")}),
                                        ([0], {"x": object()})])
def test_bad_seeds_and_meta_are_refused_before_any_generation(seeds, meta):
    with pytest.raises(ProfileError):
        run_calibration(_never_generate, ["p"], seeds, meta=meta)


# ------------------------------------------------------------------------------------------------ 2. NaN and friends
@pytest.mark.parametrize("meta,match", [
    ({"x": float("nan")}, "NaN"),
    ({"a": {"b": [1, float("inf")]}}, "NaN or infinity"),
    ({"x": 2**53 + 1}, "2\\*\\*53"),
    ({"x": "s" * 4097}, "4097 characters"),
    ({"k" * 5000: 1}, "key of 5000"),
    ({"x": [[[[[[[[[1]]]]]]]]]}, "nested"),
    ({"x": list(range(10_001))}, "10000 values"),
    ({f"k{i}": i for i in range(10_001)}, "10000 values"),
    ({"x": (1, 2)}, "tuple"),
    ({1: "a"}, "not a string"),
])
def test_meta_must_be_saveable_json(tmp_path, meta, match):
    with pytest.raises(ProfileError, match=match):
        Profile.from_dict(_doc() | {"meta": meta})
    p = flat_profile()
    with pytest.raises(ProfileError, match=match):
        Profile(p.axis, p.norm, p.statistic, p.grid, p.mean, p.std, p.count, p.reference_sigmas, meta)


def test_meta_changed_after_construction_is_refused_at_save_and_nothing_is_written(tmp_path):
    p = flat_profile()
    p.meta["bad"] = float("nan")
    with pytest.raises(ProfileError, match="NaN"):
        ProfileStore(tmp_path).save(p, "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field,index", [("grid", 0), ("count", 0), ("reference_sigmas", 0), ("mean", 0)])
@pytest.mark.parametrize("value", [10**400, -(10**400), 2**60])
def test_huge_integers_anywhere_are_a_profile_error(field, index, value):
    d = _doc()
    target = d["stats"]["update"]["mean"] if field == "mean" else d[field]
    target[index] = value
    with pytest.raises(ProfileError):
        Profile.from_dict(d)


def test_a_json_integer_too_long_to_parse_is_a_profile_error(tmp_path):
    text = json.dumps(_doc()).replace('"test": true', '"test": ' + "9" * 5000)
    with pytest.raises(ProfileError, match="not valid JSON"):
        ProfileStore(tmp_path).import_json(text, "x")
    (tmp_path / "y.json").write_text(text)
    with pytest.raises(ProfileError, match="not valid JSON"):
        Profile.load(tmp_path / "y.json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        ProfileStore(tmp_path).import_json("[" * 100_000 + "]" * 100_000, "z")


# ------------------------------------------------------------------------------------------------ 3. grid ranges
@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(grid=[700.0 + i for i in range(10)], reference_sigmas=[]), "outside"),
    (lambda d: d.update(grid=[-31.0 + i for i in range(10)]), "outside"),
    (lambda d: d.update(axis="step", grid=[float(10_001 + i) for i in range(10)]), "outside"),
    (lambda d: d.update(reference_sigmas=[2e6] + d["reference_sigmas"][1:]), "reference_sigmas"),
    (lambda d: d["stats"]["latent"]["std"].__setitem__(0, 1e13), "outside"),
    (lambda d: d["count"].__setitem__(0, 10**9 + 1), "count"),
    (lambda d: d.update(grid=list(range(10_001))), "at most 10000"),
    (lambda d: d.update(grid=[1.0 + i * 1e-9 for i in range(10)]), "single precision"),
])
def test_grids_and_statistics_outside_what_a_sampler_produces_are_refused(mutate, match):
    d = _doc()
    mutate(d)
    with pytest.raises(ProfileError, match=match):
        Profile.from_dict(d)


_wide_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-40, 40), st.integers(-5, 20000),
                         st.integers(-(10**30), 10**30))
_log_grids = st.lists(st.floats(-30, 30) | st.sampled_from([-30.0, 30.0, -29.999, 29.999]), min_size=2, max_size=10,
                      unique=True) | st.lists(st.floats(-31, 31) | st.sampled_from([709.8, -745.2]) | _wide_floats,
                                              min_size=2, max_size=10, unique=True)
_step_grids = st.lists(st.integers(0, 10_000), min_size=2, max_size=10, unique=True) | st.lists(
    st.integers(0, 10_002) | _wide_floats, min_size=2, max_size=10, unique=True)
_sigmas = st.lists(st.floats(0, 1e6) | st.floats(0, 1e-300) | st.just(0.0), max_size=12) | st.lists(
    st.floats(0, 1.1e6) | _wide_floats, max_size=12)


def _sort_key(x):
    return (1, 0) if isinstance(x, float) and math.isnan(x) else (0, x)


@FAST
@given(axis=st.sampled_from(["log_sigma", "step"]), data=st.data(), sigmas=_sigmas)
def test_an_accepted_profile_never_fails_in_early_limit_or_lookup(axis, data, sigmas):
    grid = sorted(data.draw(_log_grids if axis == "log_sigma" else _step_grids), key=_sort_key)
    n = len(grid)
    d = _doc() | {"axis": axis, "grid": grid, "count": [1] * n,
                  "reference_sigmas": sorted(sigmas, key=_sort_key, reverse=True),
                  "stats": {q: {"mean": [1.0] * n, "std": [0.5] * n} for q in ("update", "latent", "x0")}}
    try:
        p = Profile.from_dict(d)
    except ProfileError:
        return
    for frac in (0, 0.2, 1):
        lim = p.early_limit(frac)
        assert isinstance(lim, float) and not math.isnan(lim)
    mean, std, _ = p.lookup(torch.tensor(p.grid, dtype=torch.float32))
    assert torch.isfinite(mean).all() and torch.isfinite(std).all()


# ------------------------------------------------------------------------------------------------ 4. size limits
def test_oversized_imports_are_refused_before_parsing(tmp_path, monkeypatch):
    store = ProfileStore(tmp_path)
    calls = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: calls.append(1))
    for text in (" " * (MAX_PROFILE_BYTES + 1), b" " * (MAX_PROFILE_BYTES + 1)):
        with pytest.raises(ProfileError, match="too large"):
            store.import_json(text, "big")
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_oversized_files_are_refused_before_reading(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(50_000_000)  # sparse: costs nothing to make
    with pytest.raises(ProfileError, match="too large"):
        Profile.load(path)
    listed = ProfileStore(tmp_path).list()
    assert [(s.name, s.profile) for s in listed] == [("big", None)] and "too large" in listed[0].error


def test_a_profile_too_large_to_save_is_refused_and_nothing_is_written(tmp_path):
    p = flat_profile()
    p.meta.update({f"k{i}": "x" * 4000 for i in range(600)})  # valid meta, 2.4 MB of it
    with pytest.raises(ProfileError, match="too large to save"):
        ProfileStore(tmp_path).save(p, "x")
    assert list(tmp_path.iterdir()) == []


def test_the_largest_grid_still_saves_and_loads(tmp_path):
    n = 10_000
    g = [-13.0 + 26.0 * i / n + 1e-7 * (i % 7) for i in range(n)]
    p = Profile("log_sigma", "rms", "mean_std", g, {q: [0.123456789012345 + i for i in range(n)] for q in
                ("update", "latent", "x0")}, {q: [0.987654321098765] * n for q in ("update", "latent", "x0")},
                [123456] * n, [math.exp(x) for x in reversed(g)], {})
    store = ProfileStore(tmp_path)
    store.save(p, "big")
    assert store.load("big").to_dict() == p.to_dict()


# ------------------------------------------------------------------------------------------------ 5. not found
def test_a_missing_profile_is_profile_not_found(tmp_path):
    store = ProfileStore(tmp_path)
    for call in (store.load, store.delete, store.export_json):
        with pytest.raises(ProfileNotFound, match="no profile named 'nope'"):
            call("nope")
    with pytest.raises(ProfileNotFound):
        Profile.load(tmp_path / "nope.json")
    assert issubclass(ProfileNotFound, ProfileError) and issubclass(ProfileError, ValueError)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ProfileError) as e:
        store.load("bad")
    assert not isinstance(e.value, ProfileNotFound)


# ------------------------------------------------------------------------------------------------ 6. concurrent saves
def test_concurrent_saves_under_one_name_all_succeed_and_leave_one_whole_file(tmp_path):
    store = ProfileStore(tmp_path)
    written, errors, seen = [], [], []
    done = threading.Event()

    def writer(t):
        for i in range(20):
            p = flat_profile(update=1.0 + t, latent=1.0 + i)
            p.meta.update(writer=t, i=i)
            try:
                store.save(p, "shared")
                written.append(p.to_dict())
            except Exception as e:  # noqa: BLE001 - any failure is the bug
                errors.append(e)

    def reader():
        while not done.is_set():
            try:
                seen.append(store.load("shared").meta["i"])
            except ProfileNotFound:
                pass
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    r.join()
    assert errors == [] and len(written) == 160
    assert store.load("shared").to_dict() in written
    assert sorted(f.name for f in tmp_path.iterdir()) == ["shared.json"], "no temporary file may be left behind"


def test_a_failed_save_removes_its_temporary_file(tmp_path, monkeypatch):
    store = ProfileStore(tmp_path)

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ProfileError, match="cannot write profile 'x'.*No space left"):
        store.save(flat_profile(), "x")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ 7. symbolic links
@posix_only
def test_a_link_planted_under_a_temporary_name_is_never_written_through(tmp_path, monkeypatch):
    folder, outside = tmp_path / "p", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_text("precious")
    for stem in (f".x.json.{os.getpid()}.tmp", ".x.json.aaaa.tmp"):  # the old predictable name, and a guessed one
        (folder / stem).symlink_to(outside)
    names = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(profile_mod.secrets, "token_hex", lambda n: next(names))
    ProfileStore(folder).save(flat_profile(), "x")
    assert outside.read_text() == "precious"
    assert ProfileStore(folder).load("x").to_dict() == flat_profile().to_dict()
    assert not (folder / ".x.json.bbbb.tmp").exists()


@posix_only
def test_the_store_never_reads_or_writes_through_a_linked_profile(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    folder.mkdir()
    secret = flat_profile()
    secret.meta["secret"] = "outside"
    secret.save(tmp_path / "outside.json")
    before = (tmp_path / "outside.json").read_bytes()
    (folder / "x.json").symlink_to(tmp_path / "outside.json")
    store = ProfileStore(folder)
    for call in (store.load, store.export_json):
        with pytest.raises(ProfileError, match="symbolic link"):
            call("x")
    calls = []
    orig = Profile.from_dict
    monkeypatch.setattr(Profile, "from_dict", staticmethod(lambda d: (calls.append(1), orig(d))[1]))
    [entry] = store.list()
    assert entry.name == "x" and entry.profile is None and "symbolic link" in entry.error and calls == []
    assert store.choose(None, {"secret": "outside"})[0] is None
    store.save(flat_profile(), "x")  # replaces the link itself
    assert not (folder / "x.json").is_symlink() and (tmp_path / "outside.json").read_bytes() == before
    assert Profile.load(tmp_path / "outside.json", follow_symlinks=True).meta["secret"] == "outside"
    (folder / "y.json").symlink_to(tmp_path / "outside.json")
    store.delete("y")  # the link goes, its target stays
    assert not os.path.lexists(folder / "y.json") and (tmp_path / "outside.json").read_bytes() == before


@posix_only
def test_a_linked_store_folder_is_fine_and_a_fifo_never_hangs_the_listing(tmp_path):
    real = tmp_path / "real"
    ProfileStore(real).save(flat_profile(), "a")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    store = ProfileStore(tmp_path / "link")
    assert store.load("a").to_dict() == flat_profile().to_dict()
    os.mkfifo(real / "fifo.json")
    os.mkdir(real / "dir.json")
    out = []
    t = threading.Thread(target=lambda: out.append(store.list()), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # a blocking open of the FIFO: release it, then fail
        os.close(os.open(real / "fifo.json", os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("listing the folder hung on a FIFO named like a profile")
    listed = {s.name: s for s in out[0]}
    assert listed["a"].profile is not None
    assert "not a regular file" in listed["fifo"].error and "not a regular file" in listed["dir"].error


# ------------------------------------------------------------------------------------------------ 8. names
@pytest.mark.parametrize("name", ["x\n", "x\r", "x\x00", "a\nb", "con", "NUL", "com1.backup", "aux ", "\u0661"])
def test_names_with_newlines_and_device_names_are_refused(tmp_path, name):
    with pytest.raises(ProfileError, match="invalid profile name"):
        ProfileStore(tmp_path).save(flat_profile(), name)
    assert list(tmp_path.iterdir()) == []


@FAST
@given(name=st.one_of(st.text(max_size=120), st.text(alphabet="aZ09._ -/\\\n\x00:", max_size=12),
                      st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,6}[\n\r\x00/\\. ]?", fullmatch=True),
                      st.none(), st.integers(), st.binary(max_size=8)))
@example(name="x\n")
def test_a_checked_name_always_stays_in_the_folder(tmp_path, name):
    store = ProfileStore(tmp_path / "profiles")
    try:
        checked = check_name(name)
    except ProfileError as e:
        assert len(str(e)) < 300
        return
    assert checked == name and isinstance(checked, str)
    assert store.path_for(checked).parent == store.folder and store.path_for(checked).name == checked + ".json"
    assert not any(c in checked for c in "/\\\x00\n\r") and not checked.startswith(".")


# ---------------------------------------------------------------------------------------------- 9. the automatic choice
def test_an_imported_profile_cannot_shadow_the_calibration(tmp_path):
    store = ProfileStore(tmp_path)
    mine = flat_profile()
    mine.meta.update(model_hash="abc", origin="calibration", created="2025-01-01T00:00:00+00:00")
    store.save(mine, "sd15-abc")
    shadow = _doc(model_hash="ABC", origin="calibration", created="2099-01-01T00:00:00+00:00")  # claims to be ours
    store.import_json(json.dumps(shadow), "000-shadow")
    assert store.load("000-shadow").meta["origin"] == "import"
    choice, why = store.choose("abc")
    assert choice.name == "sd15-abc"
    assert why.startswith("calibrated on this model (sd15-abc)") and "000-shadow (imported)" in why
    assert "2 profiles carry this hash" in why


def test_the_choice_prefers_the_newest_calibration_then_the_name(tmp_path):
    store = ProfileStore(tmp_path)
    for name, meta in [("a-old", {"created": "2024-01-01T00:00:00+00:00"}),
                       ("b-new", {"created": "2025-06-01T12:00:00+02:00"}),
                       ("c-undated", {}),
                       ("d-newer-but-naive", {"created": "2025-06-01T11:00:00"})]:  # naive: read as UTC
        p = flat_profile()
        p.meta.update(model_hash="h", origin="calibration", latent_channels=4, **meta)
        store.save(p, name)
    choice, why = store.choose("h")
    assert choice.name == "d-newer-but-naive" and "chose the newest calibration" in why
    assert "a-old (calibrated)" in why and "c-undated (calibrated)" in why
    choice, why = store.choose("other", {"latent_channels": 4})  # the same rule in the family fallback
    assert choice.name == "d-newer-but-naive" and why.startswith("same model family")
    # no calibration and no dates: the name decides, and says so
    store2 = ProfileStore(tmp_path / "two")
    for name in ("zz", "aa"):
        store2.import_json(json.dumps(_doc(model_hash="h")), name)
    choice, why = store2.choose("h")
    assert choice.name == "aa" and "tie broken by name" in why and "zz (imported)" in why
    assert store2.choose("h") == (choice, why) or store2.choose("h")[1] == why  # deterministic


# ---------------------------------------------------------------------------------------------- 10. the listing cache
def test_the_listing_is_parsed_once_and_only_changed_entries_again(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    for i in range(30):
        p = flat_profile()
        p.meta["i"] = i
        ProfileStore(folder).save(p, f"p{i:02d}")
    calls = []
    orig = Profile.from_dict
    monkeypatch.setattr(Profile, "from_dict", staticmethod(lambda d: (calls.append(d["meta"].get("i")), orig(d))[1]))
    assert len(ProfileStore(folder).list()) == 30 and len(calls) == 30
    calls.clear()
    listed = ProfileStore(folder).list()  # a new store object, as the adapter makes per job
    assert calls == [] and [s.name for s in listed] == [f"p{i:02d}" for i in range(30)]
    changed = flat_profile(update=5.0)
    changed.meta["i"] = 7
    ProfileStore(folder).save(changed, "p07")
    listed = {s.name: s for s in ProfileStore(folder).list()}
    assert calls == [7] and listed["p07"].profile.mean["update"][0] == 5.0
    calls.clear()
    (folder / "p03.json").unlink()
    new = flat_profile()
    new.meta["i"] = 99
    new.save(folder / "zz.json")
    names = [s.name for s in ProfileStore(folder).list()]
    assert calls == [99] and "p03" not in names and names[-1] == "zz" and len(names) == 30
    (folder / "p05.json").write_text("{")  # edited in place into garbage
    listed = {s.name: s for s in ProfileStore(folder).list()}
    assert listed["p05"].profile is None and "JSON" in listed["p05"].error


# ------------------------------------------------------------------------------------------------ 11. messages
def test_messages_never_echo_untrusted_text_whole(tmp_path):
    assert brief("x" * 1000) == repr("x" * 79)[:79] + "…" and len(brief("x" * 1000)) == 80
    assert brief("short") == "'short'" and "digits" in brief(10**5000) and len(brief(list(range(10**4)))) < 80
    long = "n" * 10_000
    for call in (lambda: check_name(long), lambda: Profile.from_dict(_doc() | {"format": long}),
                 lambda: Profile.from_dict(_doc() | {"axis": long}),
                 lambda: Profile.from_dict(_doc() | {"version": long}),
                 lambda: Profile.from_dict({**_doc(), "grid": [long] * 10})):
        with pytest.raises(ProfileError) as e:
            call()
        assert len(str(e.value)) < 300


# ------------------------------------------------------------------------------------------------ property: validation
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10**400), 10**400) | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=6), c, max_size=6), max_leaves=15)
_number_lists = st.lists(st.one_of(st.floats(-50, 50), st.floats(), st.integers(-3, 40)), min_size=10, max_size=10)
_BASES = [flat_profile().to_dict(), flat_profile(axis="step").to_dict()]
_PATHS = ([(k,) for k in _BASES[0]] + [("stats",), ("grid", 3), ("count", 0), ("reference_sigmas", 9), ("meta", "x"),
          ("meta", "test")] + [("stats", q, s) for q in ("update", "latent", "x0") for s in ("mean", "std")]
          + [("stats", "x0", "std", 4)])


@FAST
@given(base=st.sampled_from(_BASES), path=st.sampled_from(_PATHS), value=st.one_of(_json, _number_lists),
       delete=st.booleans())
def test_from_dict_returns_a_saveable_profile_or_raises_profile_error(base, path, value, delete):
    d = copy.deepcopy(base)
    target = d
    for k in path[:-1]:
        target = target[k]
    if delete and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    try:
        p = Profile.from_dict(d)
    except ProfileError:
        return
    text = json.dumps(p.to_dict(), allow_nan=False)
    assert Profile.from_dict(json.loads(text)).to_dict() == p.to_dict()
    assert json.loads(p.to_json()) == p.to_dict()
    for f in (0, 0.2, 1):
        p.early_limit(f)

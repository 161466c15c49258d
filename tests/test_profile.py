import json
import math

import pytest
import torch
from conftest import flat_profile

from lib_memstab import Profile, ProfileError


def test_save_load_round_trip(tmp_path):
    p = flat_profile(2.0, 3.0, 4.0, std=0.5)
    path = p.save(tmp_path / "p.json")
    q = Profile.load(path)
    assert q.to_dict() == p.to_dict()
    assert not [f for f in tmp_path.iterdir() if f.name != "p.json"], "no temporary file may be left behind"


def test_lookup_interpolates_in_the_axis_and_flags_extrapolation():
    p = flat_profile()
    p.mean["x0"] = [float(i) for i in range(len(p.grid))]
    p._tables.clear()
    g = p.grid
    key = torch.tensor([g[2], 0.5 * (g[3] + g[4]), g[0] - 1.0, g[-1] + 1.0])
    mean, std, outside = p.lookup(key)
    assert torch.allclose(mean[2], torch.tensor([2.0, 3.5, 0.0, len(g) - 1.0]))
    assert torch.allclose(std, torch.full_like(std, 0.1))
    assert outside.tolist() == [False, False, True, True]


def test_std_floor_keeps_z_finite():
    p = flat_profile(std=0.0)
    _, std, _ = p.lookup(torch.tensor([p.grid[1]]))
    assert (std > 0).all()


def _write(tmp_path, d):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d) if not isinstance(d, str) else d)
    return path


ONE_POINT = {q: {"mean": [1.0], "std": [1.0]} for q in ("update", "latent", "x0")}


def _mutated(fn):
    d = flat_profile().to_dict()
    fn(d)
    return d


@pytest.mark.parametrize("make,match", [
    (lambda: '{"format": "memstab-profile", "version": 1, "axis": "log_s', "not valid JSON"),
    (lambda: "[1, 2]", "JSON object"),
    (lambda: _mutated(lambda d: d.update(format="other")), "not a memstab profile"),
    (lambda: _mutated(lambda d: d.update(version=99)), "unsupported profile version 99"),
    (lambda: _mutated(lambda d: d["stats"]["x0"]["std"].__setitem__(3, -0.1)), "negative"),
    (lambda: _mutated(lambda d: d["stats"]["update"]["mean"].__setitem__(0, float("nan"))), "NaN"),
    (lambda: _mutated(lambda d: d["grid"].reverse()), "strictly increasing"),
    (lambda: _mutated(lambda d: d["grid"].__setitem__(1, d["grid"][0])), "strictly increasing"),
    (lambda: _mutated(lambda d: d["stats"]["latent"]["mean"].pop()), "values for"),
    (lambda: _mutated(lambda d: d.pop("stats")), "missing the field 'stats'"),
    (lambda: _mutated(lambda d: d.update(axis="time")), "axis"),
    (lambda: _mutated(lambda d: d.update(grid="abc")), "list of numbers"),
    (lambda: _mutated(lambda d: d["count"].__setitem__(0, 0)), "count"),
    (lambda: _mutated(lambda d: d.update(grid=[0.0], count=[1], stats=ONE_POINT)), "at least 2"),
    (lambda: _mutated(lambda d: d.update(reference_sigmas=[1.0, 2.0])), "high to low"),
    (lambda: _mutated(lambda d: d.update(meta=[1])), "meta"),
])
def test_bad_files_raise_clear_errors(tmp_path, make, match):
    path = _write(tmp_path, make())
    with pytest.raises(ProfileError, match=match):
        Profile.load(path)


def test_truncated_file_and_missing_file(tmp_path):
    good = flat_profile().save(tmp_path / "good.json")
    text = good.read_text()
    for cut in (1, len(text) // 3, len(text) - 2):
        (tmp_path / "t.json").write_text(text[:cut])
        with pytest.raises(ProfileError):
            Profile.load(tmp_path / "t.json")
    with pytest.raises(ProfileError, match="cannot read"):
        Profile.load(tmp_path / "nope.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProfileError):
        Profile.load(tmp_path / "bin.json")


def test_early_limit_splits_the_calibration_schedule():
    p = flat_profile()
    lim = p.early_limit(0.2)  # 2 of 10 steps
    logs = [math.log(s) for s in p.reference_sigmas]
    assert [lg > lim for lg in logs] == [True, True] + [False] * 8
    assert p.early_limit(0.0) == math.inf and p.early_limit(1.0) == -math.inf
    ps = flat_profile(axis="step")
    assert [i < ps.early_limit(0.2) for i in range(10)] == [True, True] + [False] * 8

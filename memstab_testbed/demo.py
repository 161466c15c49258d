"""The main job on a fresh machine: the guard on the bundled testbed model, off and on.

    python -m memstab_testbed.demo [--out outputs/demo]

Calibrates the stability region on the reference prompts (a few seconds), then generates memorized and ordinary
prompts with the guard off and in mitigate mode, prints each verdict, and writes an image grid and the verdicts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lib_memstab import Guard, GuardConfig
from lib_memstab.calibration import threshold_setters

from . import bench, data
from . import model as M
from .figures import image_grid
from .metrics import nearest_rmse
from .sampling import Sampling, generate

SEEDS = [0, 1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("outputs/demo"))
    ap.add_argument("--weights", type=Path, default=M.WEIGHTS)
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    s = Sampling(a.sampler, a.steps, 7.5)
    model = M.load(a.weights)
    print(f"testbed model {a.weights.name}: {model.meta.get('step', '?')} training steps; sampler {s.sampler}, "
          f"{s.steps} steps, CFG {s.cfg}")

    rec = bench.calibrate(model, s, bench.Plan.make(quick=True, threads=a.threads))  # the quick bench's calibration
    profile = bench.sigma_profile(rec, s)
    print(f"calibrated on {len(rec.trajectories)} reference generations: {profile.describe()}")
    for t in threshold_setters(rec.reference_rows, profile):  # what the webui's calibration report shows
        who = "; ".join(f"{p} ({v:.2f})" for p, v in t.set_by)
        rest = "" if t.next is None else f"; the highest other prompt {t.next:.2f}"
        print(f"  {t.threshold} {t.value:.2f} set by: {who}{rest}")

    targets = data.memorized_targets()
    memorized = [t.caption for t in targets[::2]]  # six of the twelve: faces, a digit, a logo, posters
    ordinary = data.ordinary_test_prompts()[::3]
    prompts = [p for p in memorized + ordinary for _ in SEEDS]
    seeds = [sd for _ in memorized + ordinary for sd in SEEDS]
    off = generate(model, prompts, seeds, s)
    guards = {}
    images = {"off": off}
    for mode in ("detect", "mitigate"):
        g = Guard(profile, GuardConfig(mode=mode), steps=s.steps)
        images[mode] = generate(model, prompts, seeds, s, hook=lambda x, d, sg, sn, gap, g=g: g.observe(x, d, sg, sn))
        guards[mode] = g.verdicts()
    assert torch.equal(images["detect"], off), "detect mode must not change any image"
    tg = {t.caption: torch.from_numpy(t.image) for t in targets}
    train = torch.stack(list(tg.values()))
    near_off, _ = nearest_rmse(off, train)
    near_on, _ = nearest_rmse(images["mitigate"], train)

    rows = []
    print(f"\n{'prompt':<48} seed  reproduces off -> on  verdict (detect mode)")
    for i, (p, sd) in enumerate(zip(prompts, seeds)):
        v = guards["detect"][i]
        vm = guards["mitigate"][i]
        rows.append({"prompt": p, "seed": sd, "memorized_caption": p in tg, "verdict": v.summary(), "level": v.label,
                     "mitigated_steps": vm.steps_mitigated, "reproduces_off": bool(near_off[i] < 0.15),
                     "reproduces_on": bool(near_on[i] < 0.15), "verdict_mitigate": vm.to_dict()})
        print(f"{p[:46]:<48} {sd:>4}  {rows[-1]['reproduces_off']!s:>14} -> {rows[-1]['reproduces_on']!s:<5}  "
              f"{v.summary()}")
    a.out.mkdir(parents=True, exist_ok=True)
    blank = torch.zeros_like(off[0])  # ordinary prompts have no training image of their own
    grid = image_grid([torch.stack([tg.get(p, blank), images["off"][i], images["mitigate"][i]])
                       for i, p in enumerate(prompts)],
                      [f"{p[:48]} (seed {sd})\ndetect: {r['level']}, score {guards['detect'][i].score:.2f}; "
                       f"copy off/on: {r['reproduces_off']}/{r['reproduces_on']}"
                       for i, (p, sd, r) in enumerate(zip(prompts, seeds, rows))],
                      scale=5, col_labels=["training image", "guard off", "mitigate"], label_w=330)
    grid.save(a.out / "grid.png")
    (a.out / "verdicts.json").write_text(json.dumps(rows, indent=1))
    mem_rows = [r for r in rows if r["memorized_caption"]]
    summary = {"memorized_flagged": sum(r["level"] != "clean" for r in mem_rows),
               "memorized_total": len(mem_rows),
               "ordinary_flagged": sum(r["level"] != "clean" for r in rows if not r["memorized_caption"]),
               "copies_called_clean": sum(r["level"] == "clean" for r in rows if r["reproduces_off"]),
               "reproduced_off": sum(r["reproduces_off"] for r in mem_rows),
               "reproduced_on": sum(r["reproduces_on"] for r in mem_rows)}
    print(f"\n{json.dumps(summary)}\nwrote {a.out / 'grid.png'} and {a.out / 'verdicts.json'}")
    return summary


if __name__ == "__main__":
    main()

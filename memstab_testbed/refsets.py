"""How much the reference set moves the calibrated verdict: one test run, many calibrations, side by side.

    python -m memstab_testbed.refsets            # full: 28 reference sets (3 min on 2 CPU threads), writes
                                                 # docs/reference-sets.md
    python -m memstab_testbed.refsets --quick    # 3 small sets, for a smoke run (writes nothing)

The bench calibrates once (28 prompts x 2 seeds, and the webui's default 50 x 1 beside it), so its verdict numbers
carry the luck of one reference set. Here the test generations (Euler 50, CFG 7.5, unguarded: the bench's primary
run) are recorded once and judged against profiles from several reference sets of each shape: the bench's 28
prompts with other seeds, the bench's 50 webui-shaped prompts with other seeds, and 50, 100 or 200 prompts (the 28
filled up by ``data.webui_reference_prompts`` with other draws of the fill-up order) with one seed. Every set is
disjoint from the test and memorized captions; nothing here looks at the test labels to build a set. The last line
printed is one JSON object with every row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lib_memstab import GuardConfig, Recorder
from lib_memstab.calibration import threshold_setters
from lib_memstab.rules import threshold_at
from lib_memstab.verdict import verdict_thresholds

from . import data
from . import model as M
from .bench import (
    PRIMARY,
    ROOT,
    copy_masks,
    expand,
    record,
    reference_run,
    sigma_profile,
    verdict_levels,
    verdict_rates,
    whole_pass_only,
)


def reference_sets(quick: bool) -> list[dict]:
    """(shape, prompts, seeds) of each reference set; draw 0 of each shape is the bench's own."""
    if quick:
        return [{"shape": "28 x 1", "draw": d, "prompts": data.reference_prompts(), "seeds": [1000 + 1000 * d]}
                for d in range(2)] + [{"shape": "50 x 1", "draw": 0, "prompts": data.webui_reference_prompts(),
                                       "seeds": [1000]}]
    sets = [{"shape": "28 x 2", "draw": d, "prompts": data.reference_prompts(),
             "seeds": [1000 + 1000 * d, 1001 + 1000 * d]} for d in range(6)]
    sets += [{"shape": "50 x 1, the bench's 50 prompts", "draw": d, "prompts": data.webui_reference_prompts(),
              "seeds": [1000 + 1000 * d]} for d in range(6)]
    for n, draws in ((50, 10), (100, 4), (200, 2)):
        sets += [{"shape": f"{n} x 1", "draw": d, "prompts": data.webui_reference_prompts(n, 2026 + d),
                  "seeds": [1000 + 1000 * d]} for d in range(draws)]
    return sets


def setter_prompts(ref: Recorder, prof) -> list[str]:
    """The reference prompts the calibration report names as setting a threshold of ``prof`` (the profile ``ref``
    built last: lib_memstab.calibration.threshold_setters), in the order named."""
    named = [lab for t in threshold_setters(ref.reference_rows, prof) for lab, _ in t.set_by]
    return list(dict.fromkeys(named))


def without(ref: Recorder, prompts: list[str]) -> Recorder:
    """The same reference generations less every seed of ``prompts``: what a user who follows the report and
    replaces those prompts would calibrate on (here without a replacement: the set shrinks by them)."""
    out = Recorder()
    out.trajectories = [t for t in ref.trajectories if t.label not in set(prompts)]
    return out


def judge_set(prof, off, copies: np.ndarray, ordinary: np.ndarray, is_mem: np.ndarray) -> dict:
    """The default verdict and the early flag of ``off`` against the reference profile ``prof``."""
    cfg = GuardConfig()
    th, eth, _ = verdict_thresholds(prof, cfg, "max")
    joint = verdict_rates(verdict_levels(off, prof), copies, ordinary)
    alone = verdict_rates(verdict_levels(off, whole_pass_only(prof)), copies, ordinary)
    e_sc = np.array([Recorder.early_score(prof, t, 0.2, "max") for t in off.recorder.trajectories])
    t_flag = threshold_at(prof.reference_early["max"], cfg.fpr_early)
    return {"references": prof.meta["trajectories"], "thresholds": th, "early_thresholds": eth,
            "copies_memorized": joint["copies_memorized"], "copies_not_clean": joint["copies_not_clean"],
            "ordinary_not_clean": joint["ordinary_not_clean"],
            "pass_only_copies_memorized": alone["copies_memorized"],
            "pass_only_ordinary_not_clean": alone["ordinary_not_clean"], "early_flag_threshold": t_flag,
            "early_flag_tpr": float((e_sc[is_mem] > t_flag).mean()),
            "early_flag_fpr": float((e_sc[~is_mem] > t_flag).mean())}


SUMMARY_KEYS = ("copies_memorized", "ordinary_not_clean", "pass_only_copies_memorized", "pass_only_ordinary_not_clean",
                "early_flag_tpr", "early_flag_fpr")


def summary(rows: list[dict], part: str | None = None) -> list[dict]:
    """Per shape: min / median / max over its draws of each rate (of ``row[part]`` where given: "replaced")."""
    out = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        rs = [r[part] if part else r for r in rows if r["shape"] == shape]
        out.append({"shape": shape, "draws": len(rs),
                    **{k: [float(np.min(v)), float(np.median(v)), float(np.max(v))]
                       for k in SUMMARY_KEYS for v in [[r[k] for r in rs]]}})
    return out


def _pct(v: float) -> str:
    return f"{v:.3f}"


def _summary_table(summ: list[dict]) -> list[str]:
    lines = ["| shape | draws | copies `memorized`: min / median / max | ordinary above `clean` | whole pass only: "
             "copies `memorized` | whole pass only: ordinary above `clean` | early flag fires: memorized | "
             "early flag fires: ordinary |", "|---|---|---|---|---|---|---|---|"]
    for s in summ:
        cells = [" / ".join(_pct(x) for x in s[k]) for k in SUMMARY_KEYS]
        lines.append(f"| {s['shape']} | {s['draws']} | " + " | ".join(cells) + " |")
    return lines


def write_docs(path: Path, out: dict) -> None:
    """docs/reference-sets.md: the summary per shape, then every draw (numbers from this run only)."""
    lines = ["# How much the reference set moves the verdict", "",
             "Written by `python -m memstab_testbed.refsets` (do not edit by hand) in "
             f"{out['seconds']:.0f} s: the bench's primary test run (Euler 50, CFG 7.5, unguarded; "
             f"{out['copies']} strict copies among the memorized generations, {out['ordinary']} ordinary "
             "generations) judged against profiles from many reference sets, the default verdict (whole-pass and "
             "early score, thresholds at 2 % / 0.5 % of the references) and the early flag (1 %). Shape = "
             "prompts x seeds per prompt; draws of one shape differ in seeds (the bench's 28 and 50 prompts) or in "
             "the prompts that fill the 28 up (`data.webui_reference_prompts`) and the seed. Reference generations "
             "that copy a training image (strict or loose), all sets together: "
             f"{sum(r['reference_copies'] for r in out['rows'])}.", "",
             *_summary_table(out["summary"]), "",
             "The same after following the calibration report once: every prompt it names as setting a threshold "
             "(`threshold_setters`: the largest reference scores) taken out of the set, all its seeds, and the "
             "profile built again (no prompt is put in their place). The test's ordinary prompts may hold none like "
             "the ones taken out: then the false alarms this adds for such prompts do not show here.", "",
             *_summary_table(out["summary_replaced"])]
    lines += ["", "Every draw (thresholds: whole pass / early score at `memorized`; the early flag's own):", "",
              "| shape | draw | seeds | copies `memorized` | ordinary above `clean` | whole pass only | "
              "thresholds | early flag: memorized / ordinary at threshold | named by the report | without them: "
              "copies `memorized` / ordinary above `clean` / early flag fires (memorized, ordinary) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['shape']} | {r['draw']} | {', '.join(map(str, r['seeds']))} | "
                     f"{_pct(r['copies_memorized'])} | {_pct(r['ordinary_not_clean'])} | "
                     f"{_pct(r['pass_only_copies_memorized'])} / {_pct(r['pass_only_ordinary_not_clean'])} | "
                     f"{r['thresholds']['memorized']:.2f} / {r['early_thresholds']['memorized']:.2f} | "
                     f"{_pct(r['early_flag_tpr'])} / {_pct(r['early_flag_fpr'])} at {r['early_flag_threshold']:.2f} | "
                     f"{'; '.join(r['setters'])} | {_pct(r['replaced']['copies_memorized'])} / "
                     f"{_pct(r['replaced']['ordinary_not_clean'])} / {_pct(r['replaced']['early_flag_tpr'])}, "
                     f"{_pct(r['replaced']['early_flag_fpr'])} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the full run writes reference-sets.md")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    model = M.load(M.WEIGHTS)
    targets = data.memorized_targets()
    mem_caps = [t.caption for t in targets]
    ordinary_p = data.ordinary_test_prompts() + data.novel_prompts()
    test_p, test_s = expand(mem_caps + ordinary_p, [0, 1] if a.quick else [0, 1, 2, 3])  # the bench's test seeds
    is_mem = np.array([p in set(mem_caps) for p in test_p])
    off = record(model, test_p, test_s, PRIMARY)
    train = data.training_images()
    mem_images = torch.stack([torch.from_numpy(t.image) for t in targets])
    strict, _ = copy_masks(off.images, train, mem_images)
    copies = strict.numpy().astype(bool)
    print(f"# test: {len(test_p)} generations, {int(copies.sum())} copies, {int((~is_mem).sum())} ordinary "
          f"({time.time() - t0:.0f} s)", flush=True)
    rows = []
    for rs in reference_sets(a.quick):
        ref = reference_run(model, PRIMARY, rs["prompts"], rs["seeds"])
        _, ref_copies = copy_masks(ref.images, train, mem_images)  # a reference that copies (either way) is none
        prof = sigma_profile(ref.recorder, PRIMARY)
        row = {"shape": rs["shape"], "draw": rs["draw"], "seeds": rs["seeds"],
               "reference_copies": int(ref_copies.sum()), **judge_set(prof, off, copies, ~is_mem, is_mem)}
        named = setter_prompts(ref.recorder, prof)  # the report's advice followed once: those prompts replaced
        row["setters"] = named
        row["replaced"] = judge_set(sigma_profile(without(ref.recorder, named), PRIMARY), off, copies, ~is_mem,
                                    is_mem)
        rows.append(row)
        print(f"{row['shape']:>8} draw {row['draw']}: memorized {row['copies_memorized']:.3f} "
              f"(pass only {row['pass_only_copies_memorized']:.3f}), ordinary not clean "
              f"{row['ordinary_not_clean']:.3f} ({row['pass_only_ordinary_not_clean']:.3f}); early flag "
              f"{row['early_flag_tpr']:.3f} / {row['early_flag_fpr']:.3f} at {row['early_flag_threshold']:.2f}; "
              f"thresholds {row['thresholds']['memorized']:.2f} / {row['early_thresholds']['memorized']:.2f} "
              f"; references that copy: {row['reference_copies']}; without the {len(named)} setter prompt(s): "
              f"memorized {row['replaced']['copies_memorized']:.3f}, ordinary not clean "
              f"{row['replaced']['ordinary_not_clean']:.3f}, early flag {row['replaced']['early_flag_tpr']:.3f} / "
              f"{row['replaced']['early_flag_fpr']:.3f} ({time.time() - t0:.0f} s)", flush=True)
    out = {"copies": int(copies.sum()), "ordinary": int((~is_mem).sum()), "rows": rows, "summary": summary(rows),
           "summary_replaced": summary(rows, "replaced"),
           "seconds": round(time.time() - t0, 1)}
    if not a.quick:
        write_docs(a.docs / "reference-sets.md", out)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The guard on a checkpoint that memorizes, measured through a real webui's HTTP API (issue 12, item 4).

    .venv/bin/python tools/live_webui/memorization_live.py http://127.0.0.1:7861 [--steps 20] [--sampler Euler]
        [--seeds 4] [--json OUT.json] [--md docs/live-memorization.md]

The webui must run with the checkpoint that tools/live_webui/memorizing_ckpt.py builds (memstab-testbed) and the
option emphasis "None". Everything goes over HTTP: it selects the checkpoint, calibrates through
POST /memstab/v1/calibrate on the testbed's reference prompts (disjoint from the test prompts), then generates the 12
memorized captions and the 31 ordinary and novel prompts (4 seeds each, one batch per prompt) in detect and in
mitigate mode. Each returned 128x128 image is averaged 8x8 back to the 16x16 latent it shows (the checkpoint's VAE
decodes by 8x nearest upsampling), then judged as the benchmark judges images (memstab_testbed.bench.copy_masks,
the family classifier). Runs in the project's venv (numpy, torch, Pillow, scikit-learn for the data).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools/live_webui"))

from smoke import SCRIPT, Http, infotexts, memstab_keys  # noqa: E402

from memstab_testbed import bench, data, fidelity  # noqa: E402

CKPT = "memstab-testbed"
LEVELS = ("clean", "suspicious", "memorized")


def pixels_of(js) -> list[np.ndarray]:
    """The API's base64 PNGs as uint8 [H, W, 3] arrays."""
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b.split(",", 1)[-1]))).convert("RGB"))
            for b in js["images"]]


def latents_shown(pixels: list[np.ndarray]) -> torch.Tensor:
    """[N, 3, 16, 16] in [-1, 1]: the 8x8 mean of each image (its VAE decodes by 8x nearest upsampling)."""
    out = []
    for a in pixels:
        h = a.shape[0] // 8
        out.append((a.astype(np.float32) / 127.5 - 1.0).reshape(h, 8, h, 8, 3).mean((1, 3)).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def generate(h: Http, prompt: str, args: dict | None, s: argparse.Namespace):
    """One batch (seeds seed0 ..): (pixels, the MemStab keys of each image's infotext)."""
    body = {"prompt": prompt, "negative_prompt": "", "seed": s.seed0, "width": 128, "height": 128,
            "steps": s.steps, "cfg_scale": s.cfg, "sampler_name": s.sampler, "batch_size": s.seeds, "n_iter": 1,
            "send_images": True, "save_images": False}
    if args is not None:
        body["alwayson_scripts"] = {SCRIPT: {"args": [args]}}
    st, js, text, _ = h.call("POST", "/sdapi/v1/txt2img", body)
    if st != 200:
        raise RuntimeError(f"txt2img answered {st}: {text[:300]}")
    _, its = infotexts(js)
    return pixels_of(js), [memstab_keys(t) for t in its]


ROWS = [  # (label, key, how)
    ("memorized generations (12 captions x seeds)", "memorized_generations", "n"),
    ("guard off: strict copies of a training image", "off_strict", "r"),
    ("guard off: copies either way (strict or after blur + brightness/contrast fit)", "off_loose", "r"),
    ("guard off: ordinary generations that copy (strict / either way)", ("off_ordinary_strict", "off_ordinary_loose"),
     "r2"),
    ("detect: pixels identical to the guard off (first memorized and first ordinary prompt)",
     "detect_identical_to_off", "r"),
    ("verdict: copies called memorized", "copies_memorized", "r"),
    ("verdict: copies not called clean", "copies_not_clean", "r"),
    ("early flag: copies flagged", "copies_early_flag", "r"),
    ("verdict: ordinary generations not clean / memorized", ("ordinary_not_clean", "ordinary_memorized"), "r2"),
    ("early flag: ordinary generations flagged", "ordinary_early_flag", "r"),
    ("score: median over copies / over ordinary", ("score_copies_median", "score_ordinary_median"), "f2"),
    ("thresholds (suspicious / memorized): score / early score", ("thresholds", "early_thresholds"), "s2"),
    ("images without a verdict in their infotext", "missing_verdicts", "n"),
    ("mitigate (repel): images mitigated (memorized of them)", ("mitigated_images", "mitigated_memorized"), "n2"),
    ("mitigate: strict copies / either way", ("on_strict", "on_loose"), "r2"),
    ("mitigate: memorized images in their prompt's family (fidelity) / fresh and faithful",
     ("on_fidelity", "on_fresh_faithful"), "r2"),
    ("mitigate: images it did not mitigate, pixel-identical to detect", "unmitigated_identical", "r"),
    ("mitigate: ordinary images identical to detect", "on_ordinary_identical", "r"),
    ("seconds: calibration / detect pass / mitigate pass", ("calibration_seconds", "detect_seconds",
                                                              "mitigate_seconds"), "f0"),
]


def _cell(rep: dict, key, how: str) -> str:
    keys = key if isinstance(key, tuple) else (key,)
    vals = [rep.get(k) for k in keys]
    if how.startswith("r"):
        return " / ".join("-" if v is None else f"{v:.3f}" for v in vals)
    if how.startswith("f"):
        return " / ".join("-" if v is None else f"{v:.{int(how[1])}f}" for v in vals)
    return " / ".join(str(v) for v in vals)


def write_doc(reports: list[dict], path: Path) -> None:
    """The measured table (one column per run) and the per-caption detail, under the doc's hand-written text."""
    head = ["| | " + " | ".join(f"{r['sampler']} {r['steps']}" for r in reports) + " |",
            "|---|" + "---|" * len(reports)]
    rows = [f"| {label} | " + " | ".join(_cell(r, key, how) for r in reports) + " |" for label, key, how in ROWS]
    detail = []
    for r in reports:
        detail += [f"\n**{r['sampler']} {r['steps']}** (profile `{r['profile']}`, {r['reference_generations']} "
                   f"reference generations; {r['seconds']:.0f} s in all)\n",
                   "| memorized caption | copies, guard off | verdicts | early flags | copies, mitigate |",
                   "|---|---|---|---|---|"]
        detail += [f"| {c['caption']} | {c['copies_off']} | {', '.join(c['verdicts'])} | {c['early']} | "
                    f"{c['copies_on']} |" for c in r["per_caption"]]
    marker = "<!-- measured: written by tools/live_webui/memorization_live.py -->"
    text = path.read_text() if path.exists() else marker + "\n"
    text = text.split(marker)[0] + marker + "\n\n" + "\n".join(head + rows + detail) + "\n"
    path.write_text(text)


REFSETS_MARK = ("<!-- reference sets: written by tools/live_webui/memorization_live.py --refsets -->",
                "<!-- end of reference sets -->")


def write_refsets_doc(reports: list[dict], path: Path) -> None:
    """One row per run, each calibrated on another reference set (same checkpoint, sampler and test prompts): the
    section between REFSETS_MARK in ``path`` (placed before the measured table when the doc has none yet)."""
    rows = ["| reference set (prompts x seeds, fill-up draw) | thresholds: score / early score (suspicious/memorized)"
            " | copies called memorized | copies early-flagged | ordinary not clean | ordinary early-flagged | "
            "mitigate: strict / either way / fidelity |", "|---|---|---|---|---|---|---|"]
    for r in reports:
        shape = (f"{r.get('reference_prompts', 28)} x {r.get('reference_seeds', 2)}, "
                 f"{r.get('reference_order_seed', '-')}")
        if r.get("reference_excluded"):  # a calibration that followed the report: its named prompts taken out
            shape += " without " + "; ".join(f"'{p}'" for p in r["reference_excluded"])
        rows.append(f"| {shape} | {r['thresholds']} / {r['early_thresholds']} | {_cell(r, 'copies_memorized', 'r')} | "
                    f"{_cell(r, 'copies_early_flag', 'r')} | {_cell(r, 'ordinary_not_clean', 'r')} | "
                    f"{_cell(r, 'ordinary_early_flag', 'r')} | "
                    f"{_cell(r, ('on_strict', 'on_loose', 'on_fidelity'), 'r')} |")
    runs = sorted({f"{r['sampler']} {r['steps']}" for r in reports})
    section = "\n".join([REFSETS_MARK[0], "", f"Reference sets ({', '.join(runs)}; "
                         f"{reports[0]['copies']} strict copies, {reports[0]['ordinary_generations']} ordinary "
                         "generations in each run):", ""] + rows + ["", REFSETS_MARK[1]])
    text = path.read_text()
    if REFSETS_MARK[0] in text:
        head, rest = text.split(REFSETS_MARK[0], 1)
        text = head + section + rest.split(REFSETS_MARK[1], 1)[1]
    else:
        marker = "<!-- measured: written by tools/live_webui/memorization_live.py -->"
        head, rest = text.split(marker, 1) if marker in text else (text, None)
        text = head + section + "\n\n" + (marker + rest if rest is not None else "")
    path.write_text(text)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?", help="the webui; leave out with --from to only write the doc")
    ap.add_argument("--from", dest="reports", type=Path, nargs="*", help="JSON reports to write into --md")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default="Euler")
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--seeds", type=int, default=4, help="images per prompt (one batch: seeds seed0, seed0 + 1, ...)")
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--ref-seeds", type=int, default=2)
    ap.add_argument("--ref-prompts", type=int, default=len(data.reference_prompts()),
                    help="reference prompts: the testbed's 28, filled up beyond that by data.webui_reference_prompts")
    ap.add_argument("--ref-order-seed", type=int, default=2026, help="the fill-up draw (memstab_testbed.refsets)")
    ap.add_argument("--ref-exclude", nargs="*", default=[],
                    help="reference prompts to take out (as a user who follows the calibration report would)")
    ap.add_argument("--data", type=Path, default=ROOT / "runs/webui_ckpt/data.npz")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--refsets", action="store_true",
                    help="with --from: write the reports as the reference-set table (runs that differ in --ref-*)")
    s = ap.parse_args(argv)
    if s.reports:
        (write_refsets_doc if s.refsets else write_doc)([json.loads(p.read_text()) for p in s.reports], s.md)
        return {}
    h = Http(s.url)
    t_start = time.time()

    st, models, _, _ = h.call("GET", "/sdapi/v1/sd-models")
    title = next((m["title"] for m in models or [] if m.get("model_name") == CKPT), None)
    if title is None:
        raise SystemExit(f"the webui lists no {CKPT} checkpoint: build it with memorizing_ckpt.py build <webui>")
    st, _, text, _ = h.call("POST", "/sdapi/v1/options", {"sd_model_checkpoint": title, "emphasis": "None"})
    if st != 200:
        raise SystemExit(f"could not select {title}: {st} {text[:200]}")

    # calibration through the extension's own route, on the testbed's reference prompts
    ref_file = ROOT / "runs/webui_ckpt/reference_prompts.txt"  # inside the extension folder: the API may read it
    refs = [p for p in data.webui_reference_prompts(s.ref_prompts, s.ref_order_seed)[: s.ref_prompts]
            if p not in set(s.ref_exclude)]
    d = np.load(s.data)
    mem_caps = [str(c) for c in d["mem_captions"]]
    if set(refs) & (set(mem_caps) | set(data.ordinary_test_prompts()) | set(data.novel_prompts())):
        raise SystemExit("a reference prompt is also a test or memorized caption of this checkpoint")
    ref_file.write_text("\n".join(refs) + "\n")
    req = {"prompts_file": str(ref_file), "n_prompts": len(refs), "seeds": s.ref_seeds,
           "sampler": s.sampler, "steps": s.steps, "cfg_scale": s.cfg, "width": 128, "height": 128,
           "name": f"{CKPT}-{s.sampler.replace(' ', '_').lower()}-{s.steps}"}
    st, cal, text, dt_cal = h.call("POST", "/memstab/v1/calibrate", req)
    if st != 200:
        raise SystemExit(f"calibration answered {st}: {text[:500]}")
    profile = cal["name"]
    print(f"calibrated {profile} ({cal.get('generations')} generations, {dt_cal:.0f} s)", flush=True)

    ordinary = data.ordinary_test_prompts() + data.novel_prompts()
    train = torch.cat([torch.from_numpy(d["pool_images"]), torch.from_numpy(d["mem_images"])])
    mem_imgs = torch.from_numpy(d["mem_images"])
    clf = fidelity.load()
    prompts = mem_caps + ordinary
    runs = {}
    for mode in ("detect", "mitigate"):
        pix, keys = [], []
        t0 = time.time()
        for p in prompts:
            x, k = generate(h, p, {"mode": mode, "profile": profile}, s)
            pix += x
            keys += k
        runs[mode] = (pix, keys, time.time() - t0)
        print(f"{mode}: {len(keys)} images in {runs[mode][2]:.0f} s", flush=True)
    # detect mode must not change a pixel: the guard off, for the first memorized and the first ordinary prompt
    off_pix = generate(h, mem_caps[0], None, s)[0] + generate(h, ordinary[0], None, s)[0]
    n = s.seeds
    detect_pix = runs["detect"][0]
    detect_same = [bool((a == b).all()) for a, b in zip(off_pix, detect_pix[:n] + detect_pix[len(mem_caps) * n:][:n])]

    P = [p for p in prompts for _ in range(s.seeds)]
    is_mem = np.array([p in set(mem_caps) for p in P])
    off, off_keys = latents_shown(runs["detect"][0]), runs["detect"][1]
    on, on_keys = latents_shown(runs["mitigate"][0]), runs["mitigate"][1]
    untouched = [i for i, k in enumerate(on_keys) if "MemStab mitigated steps" not in k]
    untouched_same = [bool((runs["mitigate"][0][i] == detect_pix[i]).all()) for i in untouched]
    strict, loose = bench.copy_masks(off, train, mem_imgs)
    strict, loose = strict.numpy(), loose.numpy()
    on_strict = bench.copy_masks(on, train, mem_imgs)[0].numpy()
    levels = np.array([k.get("MemStab verdict", "missing") for k in off_keys])
    early = np.array(["MemStab early step" in k for k in off_keys])
    scores = np.array([float(k.get("MemStab score", "nan")) for k in off_keys])
    rates = bench.copy_rates(on, train, mem_imgs, clf, P, is_mem, off)
    fid_off = fidelity.faithful(clf, off, P)
    copies = strict & is_mem
    ordn = ~is_mem

    def share(mask, cond):
        return float(cond[mask].mean()) if mask.any() else float("nan")

    def first(key):
        return next((k.get(key) for k in off_keys if k.get(key)), None)

    thresholds, early_thresholds = first("MemStab thresholds"), first("MemStab early thresholds")
    rep = {
        "webui": s.url, "checkpoint": title, "profile": profile, "sampler": s.sampler, "steps": s.steps,
        "cfg": s.cfg, "seeds": s.seeds, "reference_generations": cal.get("generations"),
        "reference_prompts": len(refs), "reference_seeds": s.ref_seeds, "reference_order_seed": s.ref_order_seed,
        "reference_excluded": list(s.ref_exclude), "threshold_setters": cal.get("threshold_setters"),
        "calibration_seconds": round(dt_cal, 1), "thresholds": thresholds,
        "early_thresholds": early_thresholds,
        "memorized_generations": int(is_mem.sum()), "ordinary_generations": int(ordn.sum()),
        "off_strict": share(is_mem, strict), "off_loose": share(is_mem, loose),
        "off_ordinary_strict": share(ordn, strict), "off_ordinary_loose": share(ordn, loose),
        "off_fidelity": share(is_mem, fid_off),
        "copies": int(copies.sum()),
        "copies_memorized": share(copies, levels == "memorized"),
        "copies_not_clean": share(copies, np.isin(levels, ["suspicious", "memorized"])),
        "copies_early_flag": share(copies, early),
        "ordinary_not_clean": share(ordn, np.isin(levels, ["suspicious", "memorized"])),
        "ordinary_memorized": share(ordn, levels == "memorized"),
        "ordinary_early_flag": share(ordn, early),
        "missing_verdicts": int((levels == "missing").sum()),
        "on_strict": rates["mr_mem"], "on_loose": rates["mr_loose"], "on_fidelity": rates["fidelity"],
        "on_fresh_faithful": rates["fresh_faithful"], "on_ordinary_identical": rates["ord_identical"],
        "on_ordinary_strict": rates["mr_ord"],
        "mitigated_images": len(on_keys) - len(untouched),
        "mitigated_memorized": int(sum("MemStab mitigated steps" in k for k, m in zip(on_keys, is_mem) if m)),
        "unmitigated_identical": float(np.mean(untouched_same)) if untouched_same else float("nan"),
        "detect_identical_to_off": float(np.mean(detect_same)), "detect_seconds": round(runs["detect"][2], 1),
        "mitigate_seconds": round(runs["mitigate"][2], 1),
        "score_copies_median": float(np.median(scores[copies])) if copies.any() else float("nan"),
        "score_ordinary_median": float(np.median(scores[ordn])),
        "per_caption": [{"caption": c, "copies_off": int(strict[i * s.seeds:(i + 1) * s.seeds].sum()),
                         "verdicts": list(levels[i * s.seeds:(i + 1) * s.seeds]),
                         "early": int(early[i * s.seeds:(i + 1) * s.seeds].sum()),
                         "copies_on": int(on_strict[i * s.seeds:(i + 1) * s.seeds].sum())}
                        for i, c in enumerate(mem_caps)],
        "seconds": round(time.time() - t_start, 1),
    }
    print(json.dumps({k: v for k, v in rep.items() if k != "per_caption"}, indent=1))
    if s.json:
        s.json.write_text(json.dumps(rep, indent=1) + "\n")
    if s.md:
        write_doc([rep], s.md)
    return rep


if __name__ == "__main__":
    main()

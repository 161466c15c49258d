"""The benchmark: detection, mitigation, transfer and cost of the guard on the testbed model, side by side, in one run.

    python -m memstab_testbed.bench            # full: writes docs/benchmark.md and docs/figures/
    python -m memstab_testbed.bench --quick    # CI: a small run that fails when a headline number regresses

Every number is measured in the run that prints it. Labels are prompt-level: a generation is "memorized" when its
caption is one of the memorized captions. Calibration uses reference prompts and seeds disjoint from the test.
The last line printed is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lib_memstab import Guard, GuardConfig, Profile, Recorder
from lib_memstab.rules import early_flag, threshold_at
from lib_memstab.verdict import verdict_thresholds

from . import data, fidelity
from . import model as M
from .metrics import auc, loose_rmse, nearest_rmse, rmse, tpr_at_fpr
from .sampling import SAMPLERS, Sampling, generate, kdiff_denoiser

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = Path(__file__).with_name("bench_thresholds.json")
REPRO = 0.15  # RMSE (pixels in [-1, 1]) within which a generation reproduces a training image
PRIMARY = Sampling("euler", 50, 7.5)
WINDOWS = [1, 3, 5, 10, "all"]  # 10 = the steps in which mild cases are mitigated at 50 steps


@dataclass
class Plan:
    quick: bool
    ref_seeds: list[int]
    test_seeds: list[int]
    transfer: bool
    threads: int

    @classmethod
    def make(cls, quick: bool, threads: int) -> Plan:
        if quick:
            return cls(True, [1000], [0, 1], False, threads)
        return cls(False, [1000, 1001], [0, 1, 2, 3], True, threads)


@dataclass
class Run:
    """One batch of generations with everything the guard saw at each step (before any correction)."""

    prompts: list[str]
    seeds: list[int]
    images: torch.Tensor
    recorder: Recorder
    gaps: np.ndarray  # [steps, N]: the Wen et al. gap ||D_cond - D_uncond|| / sigma
    drift: np.ndarray  # [steps, N]: rms(x0_hat - previous x0_hat) / rms(x0_hat); NaN at the first step
    agree: np.ndarray  # [steps, N]: mean cosine of x0_hat with the other seeds of the same prompt in the batch
    verdicts: list = field(default_factory=list)
    guard_seconds: float = 0.0
    model_seconds: float = 0.0
    steps: int = 0


def record(model, prompts, seeds, s: Sampling, guard: Guard | None = None, time_it: bool = False,
           conds=None) -> Run:
    rec = Recorder()
    gaps, drift, agree, prev = [], [], [], [None]
    clock = {"guard": 0.0, "steps": 0}
    same = torch.tensor([[a == b for b in prompts] for a in prompts], dtype=torch.float32)
    same.fill_diagonal_(0)
    peers = same.sum(1)

    def hook(x, d, sigma, sigma_next, gap):
        gaps.append(gap)
        flat = d.detach().flatten(1).float()
        rms = flat.pow(2).mean(1).sqrt().clamp_min(1e-12)
        drift.append(torch.full_like(rms, float("nan")) if prev[0] is None else
                     (flat - prev[0]).pow(2).mean(1).sqrt() / rms)
        prev[0] = flat
        unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        agree.append(torch.where(peers > 0, (unit @ unit.T * same).sum(1) / peers.clamp_min(1), float("nan")))
        rec.observe(x, d, sigma, sigma_next, gap)
        clock["steps"] += 1
        if guard is None:
            return d
        t0 = time.perf_counter()
        out = guard.observe(x, d, sigma, sigma_next, gap)
        clock["guard"] += time.perf_counter() - t0
        return out

    model_time = {"t": 0.0, "t0": 0.0}
    handles = []
    if time_it:  # time every model evaluation in the same run as the guard
        def pre(*_):
            model_time["t0"] = time.perf_counter()

        def post(*_):
            model_time["t"] += time.perf_counter() - model_time["t0"]

        handles = [model.unet.register_forward_pre_hook(pre), model.unet.register_forward_hook(post)]
    try:
        images = generate(model, prompts, seeds, s, hook, conds=conds)
    finally:
        for h in handles:
            h.remove()
    rec.finish_run(labels=prompts)
    return Run(prompts, seeds, images, rec, torch.stack(gaps).numpy(), torch.stack(drift).numpy(),
               torch.stack(agree).numpy(), guard.verdicts() if guard else [], clock["guard"], model_time["t"],
               clock["steps"])


def expand(prompts: list[str], seeds: list[int]) -> tuple[list[str], list[int]]:
    return [p for p in prompts for _ in seeds], [s for _ in prompts for s in seeds]


def reference_run(model, s: Sampling, prompts: list[str], seeds: list[int]) -> Run:
    """The reference generations, images too: every (prompt, seed) its own noise (seed + 10 x prompt index)."""
    p = [q for q in prompts for _ in seeds]
    sd = [base + 10 * k for k in range(len(prompts)) for base in seeds]
    return record(model, p, sd, s)


def calibrate(model, s: Sampling, plan: Plan, prompts: list[str] | None = None,
              seeds: list[int] | None = None) -> Recorder:
    return reference_run(model, s, prompts or data.reference_prompts(), seeds or plan.ref_seeds).recorder


def _meta(s: Sampling) -> dict:
    return {"model": "memstab-testbed", "sampler": s.sampler, "steps": s.steps, "cfg_scale": s.cfg}


def sigma_profile(rec: Recorder, s: Sampling) -> Profile:
    """The guard's profile (sigma-indexed, robust); rec.reference_rows are then this profile's."""
    return rec.build_profile("log_sigma", "rms", "median_mad", _meta(s))


def profiles_from(rec: Recorder, s: Sampling) -> dict[str, Profile]:
    step = rec.build_profile("step", "l2", "mean_std", _meta(s))  # the paper's form
    return {"sigma": sigma_profile(rec, s), "step": step}  # sigma built last: rec.reference_rows are its own


# ---------------------------------------------------------------------------------------------- detection
def z_traces(run: Run, profile: Profile) -> np.ndarray:
    """[N, 3, steps] z-scores (update, latent, x0) of every generation against ``profile``."""
    out = []
    for t in run.recorder.trajectories:
        v = Recorder.judge(profile, t)
        out.append([v.z_update, v.z_latent, v.z_x0])
    return np.asarray(out)


def window(k, n: int) -> int:
    return n if k == "all" else min(int(k), n)


def scores(run: Run, z: np.ndarray, k, kind: str) -> np.ndarray:
    """Per-generation detection score over the first k steps."""
    w = window(k, z.shape[2])
    if kind == "paper":  # max |z| of the update norm (the paper's S_mem)
        return z[:, 0, :w].max(1)
    if kind == "rule":  # the flag rule as a score: both the update and x0_hat must be out
        return np.minimum(z[:, 0, :w], z[:, 2, :w]).max(1)
    if kind == "wen":  # mean cond gap over the window (Wen et al. 2024)
        return run.gaps[:w].mean(0)
    raise ValueError(kind)


def per_prompt(values: np.ndarray, prompts: list[str]) -> tuple[np.ndarray, list[str]]:
    keys = list(dict.fromkeys(prompts))
    return np.array([np.mean([v for v, p in zip(values, prompts) if p == k]) for k in keys]), keys


def rank01(v: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(v)) / max(len(v) - 1, 1)


def detection_row(run: Run, sc: np.ndarray, mem: set[str], faces: tuple[set[str], set[str]] | None) -> dict:
    lab = np.array([p in mem for p in run.prompts])
    row = {"auc": auc(sc[lab], sc[~lab]), "tpr_nearest": tpr_at_fpr(sc[lab], sc[~lab], 0.01, "nearest"),
           "tpr_below": tpr_at_fpr(sc[lab], sc[~lab], 0.01, "below")}
    pp, keys = per_prompt(sc, run.prompts)
    plab = np.array([k in mem for k in keys])
    row.update({"auc_prompt": auc(pp[plab], pp[~plab]),
                "tpr_prompt_nearest": tpr_at_fpr(pp[plab], pp[~plab], 0.01, "nearest"),
                "tpr_prompt_below": tpr_at_fpr(pp[plab], pp[~plab], 0.01, "below")})
    if faces:
        pos = np.array([p in faces[0] for p in run.prompts])
        neg = np.array([p in faces[1] for p in run.prompts])
        row["auc_faces"] = auc(sc[pos], sc[neg])
    return row


def flagged_share(z: np.ndarray, mask: np.ndarray, tau: float = 3.0, update_only: bool = False) -> float:
    """Share of generations the paper's rule flags (lib_memstab.rules.early_flag at some step), or, with
    ``update_only``, that the update z alone would flag (the late-step signal the AND rule misses)."""
    hit = (early_flag(z[:, 0], z[:, 0] if update_only else z[:, 2], tau)).any(1)
    return float(hit[mask].mean()) if mask.any() else float("nan")


EARLY_FPRS = (0.01, 0.02, 0.05, 0.1)  # shares of references above the early flag threshold: the trade-off table
EARLY_SIGNALS = {"update z": "update", "cond gap z": "gap", "max of both": "max"}  # -> Recorder.early_score kind


def early_detection(ref: Recorder, profile: Profile, run: Run, is_mem: np.ndarray, fpr: float = 0.01) -> list[dict]:
    """Candidate early flags: each signal's early score (Recorder.early_score, the Guard's window) with its
    threshold set on the reference trajectories' cross-fitted early scores (at most ``fpr`` of them above), as a
    calibration does. "max of both" is the guard's early flag."""
    rows = []
    for signal, kind in EARLY_SIGNALS.items():
        refs = ref.cross_fitted_scores(profile, score=lambda p, t, k=kind: Recorder.early_score(p, t, 0.2, k))
        sc = np.array([Recorder.early_score(profile, t, 0.2, kind) for t in run.recorder.trajectories])
        th = threshold_at(refs, fpr) if len(refs) >= 2 else float("nan")
        rows.append({"signal": signal, "auc": auc(sc[is_mem], sc[~is_mem]),
                     "tpr1": tpr_at_fpr(sc[is_mem], sc[~is_mem], 0.01, "nearest"), "threshold": th,
                     "flag_tpr": float((sc[is_mem] > th).mean()), "flag_fpr": float((sc[~is_mem] > th).mean())})
    return rows


def other_signals(run: Run, is_mem: np.ndarray) -> list[dict]:
    """Signals that need no extra model call, measured for their place in the guard (issue 11): x0_hat drift between
    consecutive steps (a memorized prediction settles early: low drift) and agreement of x0_hat across the seeds of
    one prompt in a batch (a memorized prompt gives the same image from every seed), over the first 20 % of the steps
    and over all of them. AUC memorized vs ordinary, oriented as stated."""
    n = run.drift.shape[0]
    rows = []
    for k in (max(1, round(0.2 * n)), n):
        w = "first 20 %" if k < n else "all"
        low_drift = -np.nanmean(run.drift[1:max(k, 2)], 0)
        high_agree = np.nanmax(run.agree[:k], 0)
        rows.append({"signal": "x0_hat drift (lower = memorized)", "window": w, "auc": auc(low_drift[is_mem],
                                                                                            low_drift[~is_mem])})
        rows.append({"signal": "x0_hat agreement across seeds", "window": w, "auc": auc(high_agree[is_mem],
                                                                                         high_agree[~is_mem])})
    return rows


def verdict_levels(run: Run, profile: Profile, config: GuardConfig | None = None) -> np.ndarray:
    """The final verdict of every generation of ``run`` (Recorder.judge: the rule the Guard reports, the early
    score included where the profile has joint thresholds)."""
    return np.array([Recorder.judge(profile, t, config=config or GuardConfig()).level
                     for t in run.recorder.trajectories])


def whole_pass_only(profile: Profile) -> Profile:
    """The profile as before the joint calibration (version 2): the whole-pass score decides alone."""
    return dataclasses.replace(profile, reference_pairs={})


def verdict_rates(levels: np.ndarray, copies: np.ndarray, ordinary: np.ndarray) -> dict:
    """Copies = generations that reproduce a training image; ordinary = generations of ordinary prompts."""
    def share(mask, which):
        return float(np.isin(levels[mask], which).mean()) if mask.any() else float("nan")

    return {"copies_memorized": share(copies, ["memorized"]), "copies_not_clean": share(copies, ["suspicious",
                                                                                                  "memorized"]),
            "ordinary_not_clean": share(ordinary, ["suspicious", "memorized"]),
            "ordinary_memorized": share(ordinary, ["memorized"]), "copies": int(copies.sum()),
            "ordinary": int(ordinary.sum())}


# ---------------------------------------------------------------------------------------------- mitigation
def reproduction(images: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    return nearest_rmse(images, train)[0] < REPRO


def copy_masks(images: torch.Tensor, train: torch.Tensor, memorized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: a strict copy (``reproduction``), and a copy either way: strict, or still a copy to a user, within
    REPRO of a memorized image after a small blur and a brightness/contrast fit."""
    strict = reproduction(images, train)
    return strict, strict | (loose_rmse(images, memorized)[0] < REPRO)


def copy_rates(images, train, memorized, clf, prompts, is_mem, baseline) -> dict:
    """What a method's images are, measured as users see them: strict copies (any training image, another memorized
    one included), loose copies (blur + brightness/contrast fit), copies either way, fidelity (the family classifier
    finds what the prompt asks for), and how far ordinary images moved from the unguarded ones."""
    strict, either = copy_masks(images, train, memorized)
    faithful = torch.from_numpy(fidelity.faithful(clf, images, prompts))
    moved = rmse(images[~is_mem], baseline[~is_mem])
    m = torch.from_numpy(is_mem)
    return {"mr_mem": float(strict[m].float().mean()), "mr_loose": float(either[m].float().mean()),
            "mr_ord": float(strict[~m].float().mean()), "mr_ord_loose": float(either[~m].float().mean()),
            "fidelity": float(faithful[m].float().mean()), "fidelity_ord": float(faithful[~m].float().mean()),
            "fresh_faithful": float((faithful & ~either)[m].float().mean()),
            "ord_moved": float(moved.mean()), "ord_identical": float((moved == 0).float().mean())}


def _mask_words_and_padding(cond: torch.Tensor, empty: torch.Tensor, i: int, words: list[int], n_words: int) -> None:
    """Row i of ``cond``: the word positions ``words`` (1-based, after the start token) and every padding position
    after the caption's ``n_words`` words take the empty caption's encoding."""
    pos = words + list(range(n_words + 1, cond.shape[1]))
    cond[i, pos] = empty[i, pos]


def title_masked_conds(model, prompts: list[str], is_mem: np.ndarray) -> torch.Tensor:
    """Each memorized prompt's conditioning with its title words' and padding positions taken from the empty
    caption's encoding (the caption encoder spreads a title into the padding, as CLIP does): the most a token-level
    mitigation that knew the trigger words could do without changing the prompt (Ren et al. mask attention)."""
    cond, empty = model.encode(prompts), model.encode([""] * len(prompts))
    for i, p in enumerate(prompts):
        if not is_mem[i]:
            continue
        w, twin = M.words(p), set(M.words(data.twin_of(p)))
        _mask_words_and_padding(cond, empty, i, [1 + j for j, x in enumerate(w) if x not in twin], len(w))
    return cond


def attributed_masked_conds(model, prompts, seeds, s: Sampling, is_mem: np.ndarray, step: int, top: int = 3):
    """Token attribution without knowing the title: at ``step`` of each memorized row's own trajectory, replace one
    word position at a time by the empty caption's encoding and see how much the cond gap ||D_c - D_u|| drops
    (Wen et al.'s token significance, by leave-one-out instead of a gradient); the ``top`` words that drop it most,
    and the padding, are then masked as in ``title_masked_conds``. Costs one conditional evaluation per word, once."""
    captured = {"i": 0}

    def capture(x, d, sigma, sigma_next, gap):
        if captured["i"] == step:
            captured["x"], captured["sigma"] = x.clone(), sigma
        captured["i"] += 1
        return d

    generate(model, prompts, seeds, s, hook=capture)
    x, sigma = captured["x"], captured["sigma"].reshape(-1).expand(len(prompts))
    cond, empty = model.encode(prompts), model.encode([""] * len(prompts))
    den = kdiff_denoiser(model)
    with torch.no_grad():
        du = den(x, sigma, context=empty)
        base = (den(x, sigma, context=cond) - du).flatten(1).norm(dim=1)
        drop = torch.full(cond.shape[:2], -math.inf)
        for j in range(1, cond.shape[1] - 1):
            c = cond.clone()
            c[:, j] = empty[:, j]
            drop[:, j] = base - (den(x, sigma, context=c) - du).flatten(1).norm(dim=1)
    out = cond.clone()
    for i, p in enumerate(prompts):
        n = len(M.words(p))
        if not is_mem[i] or n == 0:
            continue
        _mask_words_and_padding(out, empty, i, (torch.topk(drop[i, 1:n + 1], min(top, n)).indices + 1).tolist(), n)
    return out


def random_token_conds(model, prompts: list[str], seed: int = 0, n_tokens: int = 2) -> torch.Tensor:
    """Somepalli et al.'s random token addition: insert random vocabulary words at random places."""
    rng = np.random.default_rng(seed)
    vocab = [w for w in model.tokenizer.vocab if not w.startswith("<")]
    out = []
    for p in prompts:
        words = p.split()
        for _ in range(n_tokens):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(vocab)))
        out.append(" ".join(words))
    return model.encode(out)


# ---------------------------------------------------------------------------------------------- the run
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small CI run; checks the headline thresholds")
    ap.add_argument("--set-thresholds", action="store_true",
                    help="with --quick: make this run's numbers the delivered ones and move each threshold by its "
                         "stated margin (after a new model), then rewrite the section in docs/benchmark.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", type=Path, default=M.WEIGHTS)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the full run writes benchmark.md")
    ap.add_argument("--samplers", default=",".join(SAMPLERS), help="transfer: samplers to run (comma-separated)")
    ap.add_argument("--transfer-steps", default="20,50", help="transfer: step counts (comma-separated)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    plan = Plan.make(a.quick, a.threads)
    t_start = time.time()
    log = print

    model = M.load(a.weights)
    clf = fidelity.load()
    train = data.training_images()
    targets = data.memorized_targets()
    mem_all = torch.stack([torch.from_numpy(t.image) for t in targets])
    mem_caps = [t.caption for t in targets]
    ordinary = data.ordinary_test_prompts() + data.novel_prompts()
    mem = set(mem_caps)
    faces = ({c for c in mem_caps if data.family_of(c) == "face"}, {p for p in ordinary if data.family_of(p) == "face"})
    test_p, test_s = expand(mem_caps + ordinary, plan.test_seeds)
    is_mem = np.array([p in mem for p in test_p])
    log(f"# model {a.weights.name}, train set {len(train)}, test {len(test_p)} generations "
        f"({int(is_mem.sum())} memorized), {'quick' if a.quick else 'full'} plan")

    # --- primary configuration: calibrate, detect, mitigate
    ref = calibrate(model, PRIMARY, plan)
    profs = profiles_from(ref, PRIMARY)
    outliers = ref.outliers(profs["sigma"])
    off = record(model, test_p, test_s, PRIMARY, time_it=True)
    z = {k: z_traces(off, p) for k, p in profs.items()}
    det = []
    variants = [("paper score", "paper", "sigma"), ("paper score", "paper", "step"),
                ("flag rule (min of update, x0 z)", "rule", "sigma"), ("Wen et al. cond gap", "wen", None)]
    for name, kind, prof in variants:
        for k in WINDOWS:
            sc = scores(off, z[prof or "sigma"], k, kind)
            det.append({"score": name, "profile": prof or "-", "window": k, **detection_row(off, sc, mem, faces)})
    for k in (5, "all"):
        comb = rank01(scores(off, z["sigma"], k, "paper")) + rank01(scores(off, z["sigma"], k, "wen"))
        det.append({"score": "paper + Wen (rank mean)", "profile": "sigma", "window": k,
                    **detection_row(off, comb, mem, faces)})
    zs = z["sigma"]  # where in the trajectory the update norm separates: each step alone
    per_step = [{"step": i + 1, "sigma": float(off.recorder.trajectories[0].steps[i, 0]),
                 "auc": auc(zs[is_mem, 0, i], zs[~is_mem, 0, i])} for i in range(zs.shape[2])]
    fp_rate = flagged_share(zs, ~is_mem)
    tp_rate = flagged_share(zs, is_mem)
    update_only = {f"tau {t}": {"memorized": flagged_share(zs, is_mem, t, True),
                                "ordinary": flagged_share(zs, ~is_mem, t, True)} for t in (3, 5, 8)}

    early = [{"sampler": "euler", "steps": PRIMARY.steps, **r}
             for r in early_detection(ref, profs["sigma"], off, is_mem)]
    # the early flag's trade-off: its threshold at other shares of the references (GuardConfig.fpr_early)
    early_fpr = [{"fpr_early": f, **next(r for r in early_detection(ref, profs["sigma"], off, is_mem, fpr=f)
                                         if r["signal"] == "max of both")} for f in EARLY_FPRS]
    others = other_signals(off, is_mem)
    repro_off, either_off = copy_masks(off.images, train, mem_all)
    twin = torch.from_numpy(np.array([p in set(data.generic_twins()) for p in test_p]))  # the template alone: a copy?
    twins = {"generations": int(twin.sum()), "strict": float(repro_off[twin].float().mean()),
             "loose": float(either_off[twin].float().mean())}
    copies, ordinary_gen = repro_off.numpy().astype(bool), ~is_mem
    verdicts = []
    for name, prof, cfg, joint in [
            ("calibrated, whole pass and early score, sigma profile (default)", "sigma", GuardConfig(), True),
            ("calibrated, whole pass only, sigma profile", "sigma", GuardConfig(), False),
            ("calibrated, whole pass and early score, step profile (paper form)", "step", GuardConfig(), True),
            ("paper AND rule, sigma profile", "sigma", GuardConfig(verdict="paper"), False)]:
        used = profs[prof] if joint else whole_pass_only(profs[prof])
        if cfg.verdict == "paper":
            hit = early_flag(z[prof][:, 0], z[prof][:, 2], cfg.tau_mild).any(1)
            lv = np.where(hit, "memorized", "clean")
        else:
            lv = verdict_levels(off, used, cfg)
        th, eth, _ = verdict_thresholds(used, cfg, "max" if used.has_gap else "update")
        verdicts.append({"verdict": name, "thresholds": th if cfg.verdict != "paper" else None,
                         "early_thresholds": eth if cfg.verdict != "paper" else None,
                         **verdict_rates(lv, copies, ordinary_gen)})
    webui_cal = None
    if not a.quick:  # the webui's own default calibration (50 prompts x 1 seed) beside the bench's (28 x 2)
        w_ref = calibrate(model, PRIMARY, plan, data.webui_reference_prompts(), plan.ref_seeds[:1])
        w_prof = sigma_profile(w_ref, PRIMARY)
        th, eth, _ = verdict_thresholds(w_prof, GuardConfig(), "max")
        e_sc = np.array([Recorder.early_score(w_prof, t, 0.2, "max") for t in off.recorder.trajectories])
        t_flag = threshold_at(w_prof.reference_early["max"], GuardConfig().fpr_early)
        webui_cal = {"references": len(w_ref.trajectories), "thresholds": th, "early_thresholds": eth,
                     **verdict_rates(verdict_levels(off, w_prof), copies, ordinary_gen),
                     "early_flag_threshold": t_flag, "early_flag_tpr": float((e_sc[is_mem] > t_flag).mean()),
                     "early_flag_fpr": float((e_sc[~is_mem] > t_flag).mean())}
    mit = [{"method": "none (CFG 7.5)", "images": off.images}]
    guards = {}
    fpr0 = GuardConfig().fpr_early
    guard_rows = [("guard: repel (default), sigma profile", "sigma", "repel", fpr0),
                  ("guard: paper mitigation, sigma profile", "sigma", "paper", fpr0),
                  ("guard: paper mitigation, step profile (paper form)", "step", "paper", fpr0)]
    if not a.quick:  # repel armed earlier: the early flag at a larger share of the references
        guard_rows += [(f"guard: repel, early flag at {f:.0%} of references", "sigma", "repel", f) for f in (0.05, 0.1)]
    for name, prof, how, f_early in guard_rows:
        g = Guard(profs[prof], GuardConfig(mode="mitigate", mitigation=how, fpr_early=f_early), steps=PRIMARY.steps)
        r = record(model, test_p, test_s, PRIMARY, guard=g, time_it=how == "repel")
        key = f"{how}_{prof}" if f_early == fpr0 else f"{how}_{prof}_early{f_early}"
        guards[key] = r
        mit.append({"method": name, "images": r.images, "verdicts": r.verdicts, "key": key})
    if not a.quick:
        mit.append({"method": "lower CFG (3.0)", "images": generate(model, test_p, test_s, Sampling("euler", 50, 3.0))})
        mit.append({"method": "CFG delayed 20 % (Jain et al.)",
                    "images": generate(model, test_p, test_s, Sampling("euler", 50, 7.5, cfg_delay=0.2))})
        mit.append({"method": "random token addition (Somepalli et al.)",
                    "images": generate(model, test_p, test_s, PRIMARY, conds=random_token_conds(model, test_p))})
        # a ceiling, not a guard: is there an on-prompt way out at all? Memorized rows switch to their caption's
        # generic twin (the title dropped, which changes the prompt) after the first step
        twin_conds = model.encode([data.twin_of(p) if m else p for p, m in zip(test_p, is_mem)])
        for k in (1, 10):
            mit.append({"method": f"oracle: the caption without its title from step {k} (changes the prompt)",
                        "images": generate(model, test_p, test_s, PRIMARY, switch=(k, twin_conds))})
        mit.append({"method": "oracle: the title's and padding tokens' conditioning replaced by the empty "
                              "caption's, from step 1 (token positions known)",
                    "images": generate(model, test_p, test_s, PRIMARY,
                                       switch=(1, title_masked_conds(model, test_p, is_mem)))})
        for k in (1, 5, 10):
            masked = attributed_masked_conds(model, test_p, test_s, PRIMARY, is_mem, k)
            mit.append({"method": f"oracle-armed token attribution: the 3 words that most widen the cond gap at step "
                                  f"{k}, and the padding, masked from then on", "images":
                        generate(model, test_p, test_s, PRIMARY, switch=(k, masked))})
    for row in mit:
        row.update(copy_rates(row["images"], train, mem_all, clf, test_p, is_mem, off.images))

    # --- cost: the guard's time per step against the model's, in the same run
    gr = guards["repel_sigma"]
    overhead_ratio = gr.guard_seconds / gr.model_seconds
    sd_ratio = sd_sized_overhead()

    # --- transfer across samplers and step counts
    transfer = []
    if plan.transfer:
        for sampler in a.samplers.split(","):
            for steps in [int(v) for v in a.transfer_steps.split(",")]:
                s = Sampling(sampler, steps, 7.5)
                own_ref = calibrate(model, s, plan)
                own = profiles_from(own_ref, s)
                run = off if (sampler, steps) == ("euler", 50) else record(model, test_p, test_s, s)
                if steps == 20 and sampler in ("euler", "euler_a", "dpmpp_2m_karras"):  # the webui's defaults
                    early += [{"sampler": sampler, "steps": steps, **r}
                              for r in early_detection(own_ref, own["sigma"], run, is_mem)]
                row = {"sampler": sampler, "steps": steps}
                for label, prof in [("euler50", profs["sigma"]), ("own", own["sigma"]),
                                    ("euler50_step", profs["step"])]:
                    zz = z_traces(run, prof)
                    row[f"auc5_{label}"] = auc(*_split(scores(run, zz, 5, "paper"), is_mem))
                    row[f"auc_all_{label}"] = auc(*_split(scores(run, zz, "all", "paper"), is_mem))
                    row[f"fpr_{label}"] = flagged_share(zz, ~is_mem)
                    row[f"tpr_{label}"] = flagged_share(zz, is_mem)
                    lv = verdict_levels(run, prof)
                    row[f"vfpr_{label}"] = float((lv[~is_mem] != "clean").mean())
                    row[f"vtpr_{label}"] = float((lv[is_mem] == "memorized").mean())
                mp, ms = expand(mem_caps, plan.test_seeds)
                g = Guard(profs["sigma"], GuardConfig(mode="mitigate"), steps=steps)
                on = generate(model, mp, ms, s, _guard_hook(g))
                row["mr_off"] = float(reproduction(run.images[is_mem], train).float().mean())
                row["mr_on"] = float(reproduction(on, train).float().mean())
                transfer.append(row)
                log(f"# transfer {sampler} {steps}: {json.dumps({k: _r(v) for k, v in row.items()})}")

    head = next(r for r in det if r["score"] == "paper score" and r["profile"] == "sigma" and r["window"] == 5)
    wen5 = next(r for r in det if r["score"].startswith("Wen") and r["window"] == 5)
    g_default = next(r for r in mit if r.get("key") == "repel_sigma")
    g_paper = next(r for r in mit if r.get("key") == "paper_sigma")
    v_default = verdicts[0]
    e_default = next(r for r in early if r["signal"] == "max of both")  # the primary run's
    headline = {"auc_first5": head["auc"], "tpr1_first5": head["tpr_nearest"], "wen_auc_first5": wen5["auc"],
                "verdict_tpr": v_default["copies_memorized"], "verdict_fpr": v_default["ordinary_not_clean"],
                "early_auc": e_default["auc"], "early_tpr1": e_default["tpr1"],
                "mr_off": mit[0]["mr_mem"], "mr_on": g_default["mr_mem"],
                "nonmem_identical_share": g_default["ord_identical"], "overhead_ratio": overhead_ratio,
                "mr_on_paper": g_paper["mr_mem"], "mr_off_loose": mit[0]["mr_loose"],
                "mr_on_loose": g_default["mr_loose"], "fidelity_on": g_default["fidelity"],
                "fidelity_off": mit[0]["fidelity"], "fresh_faithful_on": g_default["fresh_faithful"]}
    seconds = time.time() - t_start
    report = {"headline": headline, "detection": det, "verdicts": verdicts, "early": early, "early_fpr": early_fpr,
              "other_signals": others,
              "mitigation": [{k: v for k, v in r.items() if k not in ("images", "verdicts")} for r in mit],
              "transfer": transfer, "per_step_auc": per_step, "flag_rates": {"memorized": tp_rate, "ordinary": fp_rate,
                                                                         "update_only": update_only},
              "sd_sized_overhead": sd_ratio, "outliers": outliers, "seconds": seconds,
              "fidelity": {**clf.report, "ordinary_generations": mit[0]["fidelity_ord"]}, "twins": twins,
              "webui_calibration": webui_cal,
              "n": {"test": len(test_p), "memorized": int(is_mem.sum()), "reference": len(ref.trajectories),
                    "faces_pos": sum(p in faces[0] for p in test_p), "faces_neg": sum(p in faces[1] for p in test_p)},
              "repro_off_count": int(repro_off[is_mem].sum())}
    if a.quick and a.set_thresholds:
        set_thresholds(headline)
        refresh_thresholds_section(a.docs)
    if a.quick:
        failures = check_thresholds(headline)
        log(json.dumps({k: _r(v) for k, v in headline.items()}))
        if failures:
            print("REGRESSION: " + "; ".join(failures), file=sys.stderr)
            raise SystemExit(1)
        return report
    write_docs(a.docs, report, off, guards["repel_sigma"], profs, z["sigma"], is_mem, test_p, mem_caps, plan)
    log(json.dumps({k: _r(v) for k, v in headline.items()}))
    return report


def _guard_hook(g: Guard):
    return lambda x, d, s, sn, gap: g.observe(x, d, s, sn, gap)


def _split(sc: np.ndarray, lab: np.ndarray):
    return sc[lab], sc[~lab]


def _r(v):
    return round(v, 4) if isinstance(v, float) else v


def sd_sized_overhead(reps: int = 5) -> dict:
    """observe() on an SD-sized latent (batch 2, 4x64x64) against one CFG evaluation (4 rows) of the testbed's U-Net
    architecture at that size. The testbed U-Net has ~1.5 M parameters against SD's ~860 M, so this ratio is an
    upper bound of the guard's share with a real SD model."""
    torch.manual_seed(0)
    unet = M.UNet(ctx=96, ch=M.UNET_CH, cin=4).eval()
    x = torch.randn(2, 4, 64, 64) * 14.6
    d = torch.randn(2, 4, 64, 64)
    ctx = torch.randn(4, M.MAX_TOKENS, 96)
    rec = Recorder()
    for s in (14.6, 7.0, 3.0, 1.0, 0.3, 0.03):
        rec.observe(x * s / 14.6, d, s, s / 2)
        rec.observe(x * s / 14.6 * 1.01, d * 0.99, s, s / 2)
    rec.finish_run()
    prof = rec.build_profile()
    g = Guard(prof, GuardConfig(mode="mitigate"), steps=reps * 2 + 2)
    with torch.no_grad():
        unet(torch.cat([x, x]), torch.full((4,), 500), ctx)
        g.observe(x, d, 14.6, 13.0)
        t0 = time.perf_counter()
        for _ in range(reps):
            unet(torch.cat([x, x]), torch.full((4,), 500), ctx)
        t_model = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        for _ in range(reps):
            g.observe(x, d, 14.6, 13.0)
        t_guard = (time.perf_counter() - t0) / reps
    return {"guard_ms": t_guard * 1e3, "model_ms": t_model * 1e3, "ratio": t_guard / t_model}


def check_thresholds(headline: dict) -> list[str]:
    th = json.loads(THRESHOLDS.read_text())
    fails = []
    for k, rule in th["thresholds"].items():
        v = headline[k]
        if "min" in rule and not v >= rule["min"]:
            fails.append(f"{k} = {v:.4f} < {rule['min']}")
        if "max" in rule and not v <= rule["max"]:
            fails.append(f"{k} = {v:.4f} > {rule['max']}")
    return fails


def set_thresholds(headline: dict) -> None:
    """Threshold = delivered number -/+ its stated margin, so a regression fails CI and noise does not."""
    th = json.loads(THRESHOLDS.read_text())
    for k, rule in th["thresholds"].items():
        rule["delivered"] = _r(headline[k])
        side = "min" if "min" in rule else "max"
        rule[side] = round(rule["delivered"] + (-rule["margin"] if side == "min" else rule["margin"]), 4)
        if k != "overhead_ratio" and not 0 < rule[side] < 1:  # a rate's bound outside (0, 1) could never fail
            raise SystemExit(f"threshold for {k} would be {rule[side]}, which no run can cross; shrink its margin")
    THRESHOLDS.write_text(json.dumps(th, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------- report
THRESHOLDS_HEADING = "## CI thresholds (quick mode)"


def thresholds_section() -> list[str]:
    th = json.loads(THRESHOLDS.read_text())
    lines = [THRESHOLDS_HEADING, "", th["note"], "", "| metric | delivered (quick) | margin | threshold |",
             "|---|---|---|---|"]
    for k, rule in th["thresholds"].items():
        bound = f">= {rule['min']}" if "min" in rule else f"<= {rule['max']}"
        lines.append(f"| `{k}` | {rule['delivered']} | {rule['margin']} | {bound} |")
    return lines


def refresh_thresholds_section(docs: Path) -> None:
    """Rewrite only the CI-threshold section of an existing benchmark.md (after the thresholds were set)."""
    md = docs / "benchmark.md"
    text = md.read_text()
    head = text[: text.index(THRESHOLDS_HEADING)] if THRESHOLDS_HEADING in text else text + "\n"
    md.write_text(head + "\n".join(thresholds_section()) + "\n")


def _f(v, nd=3):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{nd}f}"
    return str(v)


def write_docs(docs: Path, rep: dict, off: Run, guarded: Run, profs, z, is_mem, test_p, mem_caps, plan) -> None:
    from .figures import image_grid
    from .figures import z_traces as plot_traces

    figs = docs / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    for q, title, fname in ((0, "update-norm z-score per step (Euler 50, CFG 7.5, sigma profile)", "z_update.png"),
                            (2, "x0_hat-norm z-score per step", "z_x0.png")):
        traces = {"memorized": list(z[is_mem, q]), "ordinary": list(z[~is_mem, q])}
        plot_traces(traces, 3.0, title).save(figs / fname)
    first = [test_p.index(c) for c in mem_caps]  # the first seed of every memorized caption
    tg = {t.caption: torch.from_numpy(t.image) for t in data.memorized_targets()}
    image_grid([torch.stack([tg[c] for c in mem_caps]), off.images[first], guarded.images[first]],
               ["training image", "guard off", "guard on (mitigate)"]).save(figs / "memorized_off_on.png")
    ordi = [i for i in range(len(test_p)) if not is_mem[i]][:: len(plan.test_seeds)][:12]
    image_grid([off.images[ordi], guarded.images[ordi]], ["ordinary, off", "ordinary, on"]).save(
        figs / "ordinary_off_on.png")

    n = rep["n"]
    h = rep["headline"]
    lines = ["# Benchmark: the guard on a model that really memorizes", "",
             "Written by `python -m memstab_testbed.bench` (full run, "
             f"{rep['seconds'] / 60:.1f} min, {plan.threads} CPU thread(s)). Every number below was measured in "
             "that run; nothing is copied from the paper. What the numbers mean, and what to do about them: "
             "[findings.md](findings.md).", "",
             "## Setting", "",
             "- Model: the testbed (`memstab_testbed/MODEL_CARD.md`): SD-shaped eps-prediction U-Net, SD 1.x noise "
             "schedule, 16x16 RGB, trained on this machine (testbed v2); 12 memorized captions, each tied to one "
             "image and each a generic training caption plus a title of its own, so that the caption also means "
             "something the model can draw without copying.",
             f"- Test: {n['test']} generations = (12 memorized + {len(data.ordinary_test_prompts())} ordinary + "
             f"{len(data.novel_prompts())} novel prompts) x {len(plan.test_seeds)} seeds {plan.test_seeds}; "
             f"{n['memorized']} memorized. Primary sampler: Euler, 50 steps, CFG 7.5 (k-diffusion's `sample_euler` "
             "through a webui-style CFG denoiser).",
             f"- Calibration: {n['reference']} reference trajectories ({len(data.reference_prompts())} reference "
             f"prompts x {len(plan.ref_seeds)} seed(s); prompt k uses seeds {plan.ref_seeds[0]} + 10 k + j, so every "
             "reference has its own noise), disjoint from the test prompts and seeds. "
             "Sigma profile = log-sigma indexed, RMS norms, median/MAD (the default); step profile = the paper's form "
             "(per step, flat L2 norms, mean/std).",
             f"- Reproduction (*strict*): a generation reproduces when its RMSE to the nearest of the {24000 + 12} "
             f"training images is below {REPRO} (pixels in [-1, 1]); *loose* also counts one within {REPRO} of a "
             "memorized image after a small blur and a brightness/contrast fit (Mitigation below). Labels for "
             "detection are prompt-level. The ordinary prompts include each memorized caption's *generic twin* (the "
             f"caption without its title): {rep['twins']['generations']} generations, of which "
             f"{_f(rep['twins']['strict'])} copy strictly and {_f(rep['twins']['loose'])} loosely.",
             f"- Same-domain split (faces): named-face captions ({n['faces_pos']} generations) against generic face "
             f"captions ({n['faces_neg']} generations).", "",
             "## Headline", "", "| metric | value |", "|---|---|"]
    lines += [f"| `{k}` | {_f(v, 4)} |" for k, v in h.items()]
    lines += ["", f"Without the guard, {rep['repro_off_count']} of {n['memorized']} memorized generations reproduce "
              f"their training image (`mr_off`). The guard's rule flags {_f(rep['flag_rates']['memorized'])} of "
              f"memorized and {_f(rep['flag_rates']['ordinary'])} of ordinary generations (sigma profile, all steps). "
              "The update z-score alone, above tau at any step, would flag (memorized / ordinary): "
              + "; ".join(f"{t}: {_f(r['memorized'])} / {_f(r['ordinary'])}"
                          for t, r in rep["flag_rates"]["update_only"].items()) + ".",
              "", "## Final verdict (Euler 50, CFG 7.5)", "",
              "What the infotext says. *Calibrated*: the whole-pass score (max update z over every step) and the "
              "early score (the early flag's signal, max over the first 20 %) against the reference trajectories' "
              "own cross-fitted pairs of them; the level is the higher of the two, and the pair of thresholds is set "
              "together so that at most 2 % of the references are suspicious or worse, at most 0.5 % memorized "
              f"(with {n['reference']} references both are order statistics near the top). *Whole pass only*: the "
              "verdict before the early score joined it (version-2 profiles). *Paper*: memorized where the update "
              "and x0_hat z-scores exceed tau_mild (3) at the same step. Copies = generations within the "
              "reproduction distance of a training image.", "",
              "| verdict | whole-pass thresholds (suspicious / memorized) | early thresholds | copies memorized | "
              "copies not clean | ordinary not clean | ordinary memorized |", "|---|---|---|---|---|---|---|"]
    for r in rep["verdicts"]:
        th, eth = r["thresholds"], r.get("early_thresholds")
        bounds = f"{th['suspicious']:.2f} / {th['memorized']:.2f}" if th else "-"
        early_bounds = f"{eth['suspicious']:.2f} / {eth['memorized']:.2f}" if eth else "-"
        lines.append(f"| {r['verdict']} | {bounds} | {early_bounds} | {_f(r['copies_memorized'])} ({r['copies']}) | "
                     f"{_f(r['copies_not_clean'])} | {_f(r['ordinary_not_clean'])} ({r['ordinary']}) | "
                     f"{_f(r['ordinary_memorized'])} |")
    w = rep.get("webui_calibration")
    if w:
        lines += ["", f"Calibrated like the webui's default instead (50 reference prompts x 1 seed: the 28 above and "
                  "22 more ordinary shape and digit captions chosen by a fixed rule, "
                  f"`data.webui_reference_prompts`; {w['references']} trajectories), the default verdict calls "
                  f"{_f(w['copies_memorized'])} of the copies memorized and {_f(w['ordinary_not_clean'])} of the "
                  f"ordinary generations above clean (thresholds {w['thresholds']['memorized']:.2f} / "
                  f"{w['early_thresholds']['memorized']:.2f}); its early flag (threshold "
                  f"{w['early_flag_threshold']:.2f}) fires on {_f(w['early_flag_tpr'])} of memorized and "
                  f"{_f(w['early_flag_fpr'])} of ordinary generations. One seed per prompt: a single calibration, "
                  "so this says how much the reference set moves the thresholds, not what every set gives."]
    lines += ["", "## Early flag candidates (the steering window: the first 20 % of the steps)", "",
              "Each signal's early score is its max over the window: the update z-score (as the guard computes it), "
              "the one-sided z-score of the Wen et al. cond gap against the profile's gap statistics, or the larger "
              "of the two. *flag*: the threshold a calibration would set, the score that at most 1 % of the "
              "reference trajectories' cross-fitted early scores exceed; TPR / FPR over memorized / ordinary "
              "prompts' generations. Each sampler uses a profile calibrated with itself.", "",
              "| sampler | steps | signal | AUC | TPR@1% nearest | flag threshold | flag TPR | flag FPR |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rep["early"]:
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['signal']} | {_f(r['auc'])} | {_f(r['tpr1'])} | "
                     f"{_f(r['threshold'], 2)} | {_f(r['flag_tpr'])} | {_f(r['flag_fpr'])} |")
    lines += ["", "The early flag's trade-off (Euler 50, max of both): its threshold at other shares of the reference "
              "trajectories (`fpr_early`; the default is 0.01). Measured on the test prompts, so it shows the "
              "trade-off; it did not choose the default.", "",
              "| fpr_early | threshold | flag TPR | flag FPR |", "|---|---|---|---|"]
    lines += [f"| {r['fpr_early']} | {_f(r['threshold'], 2)} | {_f(r['flag_tpr'])} | {_f(r['flag_fpr'])} |"
              for r in rep["early_fpr"]]
    lines += ["", "Other signals free of extra model calls (Euler 50, n = 1; the agreement needs the seeds of one "
              "prompt in one batch, as the benchmark generates them):", "", "| signal | steps | AUC |", "|---|---|---|"]
    lines += [f"| {r['signal']} | {r['window']} | {_f(r['auc'])} |" for r in rep["other_signals"]]
    lines += ["", "## Detection (Euler 50, CFG 7.5)", "",
              "TPR@1%FPR: *nearest* = the ROC point whose FPR is nearest 1 % (Ren, Jeon, Asthana); *below* = the last "
              f"point with FPR < 1 % (Wen). With {n['test'] - n['memorized']} negative generations "
              f"(per prompt: {len(data.ordinary_test_prompts()) + len(data.novel_prompts())}), one false positive is "
              f"{100 / (n['test'] - n['memorized']):.1f} % FPR, so the two rules can differ a lot.", "",
              "| score | profile | steps | AUC n=1 | TPR@1% nearest | TPR@1% below | AUC n=4 (prompt) | "
              "TPR@1% nearest | TPR@1% below | AUC faces n=1 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["detection"]:
        w = "all" if r["window"] == "all" else f"first {r['window']}"
        lines.append(f"| {r['score']} | {r['profile']} | {w} | {_f(r['auc'])} | {_f(r['tpr_nearest'])} | "
                     f"{_f(r['tpr_below'])} | {_f(r['auc_prompt'])} | {_f(r['tpr_prompt_nearest'])} | "
                     f"{_f(r['tpr_prompt_below'])} | {_f(r.get('auc_faces', float('nan')))} |")
    shown = [r for r in rep["per_step_auc"] if r["step"] in (1, 2, 3, 5, 10, 20, 30, 40) or r["step"] > 45]
    lines += ["", "Where the paper's signal sits: AUC of the update-norm z-score at one step alone (sigma profile, "
              "n = 1).",
              "", "| step | " + " | ".join(str(r["step"]) for r in shown) + " |",
              "|---|" + "---|" * len(shown),
              "| sigma | " + " | ".join(f"{r['sigma']:.2f}" for r in shown) + " |",
              "| AUC | " + " | ".join(_f(r["auc"], 2) for r in shown) + " |"]
    lines += ["", "![update z traces](figures/z_update.png)", "", "![x0 z traces](figures/z_x0.png)", "",
              "## Mitigation (Euler 50)", "",
              f"Copies counted as users see them. *strict*: within RMSE {REPRO} of any training image (another "
              "memorized image counts); *loose*: strict, or within the same distance of a memorized image after a "
              "3x3 blur of both and the brightness/contrast (gain >= 0, offset) that fits the generation best to it "
              "(a brightened or faded copy is still a copy). *fidelity*: share the family classifier "
              f"(`memstab_testbed/fidelity.py`, held-out accuracy {_f(rep['fidelity']['heldout_accuracy'])}; on "
              f"the unguarded ordinary generations {_f(rep['fidelity']['ordinary_generations'])}) finds in the "
              "family its prompt asks for; *fresh and faithful*: in the family and no copy either way. *moved* = "
              "mean RMSE of each ordinary generation to the unmitigated one of the same seed; *identical* = share "
              "left bit-for-bit identical.", "",
              "| method | memorized: strict | loose | fidelity | fresh and faithful | ordinary: strict | loose | "
              "fidelity | moved | identical |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["mitigation"]:
        lines.append(f"| {r['method']} | {_f(r['mr_mem'])} | {_f(r['mr_loose'])} | {_f(r['fidelity'])} | "
                     f"{_f(r['fresh_faithful'])} | {_f(r['mr_ord'])} | {_f(r['mr_ord_loose'])} | "
                     f"{_f(r['fidelity_ord'])} | {_f(r['ord_moved'])} | {_f(r['ord_identical'])} |")
    lines += ["", "![memorized prompts, guard off and on](figures/memorized_off_on.png)", "",
              "![ordinary prompts, guard off and on](figures/ordinary_off_on.png)", ""]
    if rep["transfer"]:
        lines += ["## Transfer across samplers and step counts", "",
                  "A profile calibrated once (Euler 50) against one calibrated for each configuration. AUC of the "
                  "paper score (first 5 steps / all steps, n = 1); FPR / TPR = share of ordinary / memorized "
                  "generations the rule flags. The step-indexed profile is the paper's per-step table, applied by "
                  "step number. MR off / on: reproduction without and with the guard (Euler-50 sigma profile).", "",
                  "| sampler | steps | AUC5 euler50 | AUC5 own | AUC5 step-table | AUC all euler50 | AUC all own | "
                  "FPR euler50 | FPR own | FPR step-table | TPR euler50 | TPR own | verdict FPR euler50 | verdict FPR "
                  "own | verdict TPR euler50 | verdict TPR own | MR off | MR on |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rep["transfer"]:
            lines.append(f"| {r['sampler']} | {r['steps']} | {_f(r['auc5_euler50'])} | {_f(r['auc5_own'])} | "
                         f"{_f(r['auc5_euler50_step'])} | {_f(r['auc_all_euler50'])} | {_f(r['auc_all_own'])} | "
                         f"{_f(r['fpr_euler50'])} | {_f(r['fpr_own'])} | {_f(r['fpr_euler50_step'])} | "
                         f"{_f(r['tpr_euler50'])} | {_f(r['tpr_own'])} | {_f(r['vfpr_euler50'])} | "
                         f"{_f(r['vfpr_own'])} | {_f(r['vtpr_euler50'])} | {_f(r['vtpr_own'])} | {_f(r['mr_off'])} | "
                         f"{_f(r['mr_on'])} |")
        lines.append("")
    sd = rep["sd_sized_overhead"]
    lines += ["## Cost", "",
              f"- In the primary mitigate run, `Guard.observe` took {_f(h['overhead_ratio'] * 100, 2)} % of the "
              "time of the model evaluations of the same steps (measured side by side in one run, CPU).",
              f"- SD-sized latent (batch 2, 4x64x64): `observe()` {sd['guard_ms']:.2f} ms against "
              f"{sd['model_ms']:.1f} ms for one CFG evaluation of the testbed U-Net architecture at that size "
              f"(ratio {sd['ratio']:.4f}). SD's U-Net is ~500x larger, so with it the share is far smaller.", "",
              "## Reference-set outliers", "",
              f"Reference trajectories outside their own region (any norm, |z| > 3): {len(rep['outliers'])}"
              + (": " + ", ".join(f"{lab} (z {z:.1f})" for _, lab, z in rep["outliers"][:10]) if rep["outliers"]
                 else "") + ".", ""]
    lines += thresholds_section()
    (docs / "benchmark.md").write_text("\n".join(lines) + "\n")
    (docs / "benchmark.json").write_text(json.dumps(rep, indent=1, default=float))


if __name__ == "__main__":
    main()

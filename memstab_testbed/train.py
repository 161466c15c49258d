"""Train the testbed model once (run in the background; never in CI) and commit the EMA weights.

    python -m memstab_testbed.train --steps 15000 --out runs/train

Every ``--eval-every`` steps it prints how many memorized captions reproduce their image (best of 4 seeds, RMSE
< 0.15 at CFG 7.5, Euler 50) and how close ordinary prompts come to any training image, so progress can be watched.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from lib_memstab.dims import append_dims

from . import data
from . import model as M
from .sampling import Sampling, generate  # imported at start: a running training must not pick up later edits


def memorization_report(model, pool_images: torch.Tensor, seeds=(0, 1, 2, 3), steps=50) -> dict:
    euler50 = Sampling("euler", steps, 7.5)
    targets = data.memorized_targets()
    caps = [t.caption for t in targets]
    prompts = [c for c in caps for _ in seeds]
    imgs = generate(model, prompts, [s for _ in caps for s in seeds], euler50)
    tgt = torch.stack([torch.from_numpy(t.image) for t in targets]).repeat_interleave(len(seeds), 0)
    rmse = (imgs - tgt).pow(2).flatten(1).mean(1).sqrt().view(len(caps), len(seeds))
    best = rmse.min(1).values
    gp = data.ordinary_test_prompts() + data.novel_prompts()
    gi = generate(model, [p for p in gp for _ in seeds], [s for _ in gp for s in seeds], euler50)
    nn_rmse = torch.cdist(gi.flatten(1), pool_images.flatten(1)).min(1).values / (gi[0].numel() ** 0.5)
    return {"mem_best_rmse": [round(float(v), 3) for v in best], "mem_reproduced": int((best < 0.15).sum()),
            "mem_sample_rate": float((rmse < 0.15).float().mean()),
            "nonmem_min_nn_rmse": round(float(nn_rmse.min()), 3)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=15000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--mem-share", type=float, default=0.05, help="share of samples drawn from the memorized set")
    ap.add_argument("--pool", type=int, default=24000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("runs/train"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    t0 = time.time()
    pool_caps, pool_imgs = data.build_generic_pool(a.pool, seed=a.seed)
    targets = data.memorized_targets()
    mem_caps = [t.caption for t in targets]
    mem_imgs = torch.from_numpy(np.stack([t.image for t in targets]))
    pool = torch.from_numpy(pool_imgs)
    all_train = torch.cat([pool, mem_imgs])
    print(f"data built in {time.time() - t0:.1f}s: pool {len(pool_caps)}, memorized {len(mem_caps)}", flush=True)

    tok = M.Tokenizer.from_texts(data.all_captions())
    model = M.TestbedModel(tok.vocab)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    ac = model.alphas_cumprod
    log = open(a.out / "log.jsonl", "a")
    start = 0
    ck_path = a.out / "last.pt"
    if ck_path.exists():  # resume
        ck = torch.load(ck_path, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
        rng = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {start}", flush=True)

    t0 = time.time()
    for step in range(start, a.steps):
        thr = a.out / "threads"  # lets a busy session lend a core back without stopping training
        if step % 50 == 0 and thr.exists():
            torch.set_num_threads(max(1, int(thr.read_text().strip() or a.threads)))
        n_mem = rng.binomial(a.batch, a.mem_share)
        mi = rng.integers(0, len(mem_caps), n_mem)
        pi = rng.integers(0, len(pool_caps), a.batch - n_mem)
        caps = [mem_caps[i] for i in mi] + [pool_caps[i] for i in pi]
        x0 = torch.cat([mem_imgs[mi], pool[pi]])
        drop = rng.random(a.batch) < 0.1  # caption dropout for classifier-free guidance
        caps = ["" if d else c for c, d in zip(caps, drop)]
        t = torch.randint(0, 1000, (a.batch,))
        noise = torch.randn_like(x0)
        abar = append_dims(ac[t], x0.ndim)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        loss = (model(xt, t, model.encode(caps)) - noise).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, (step + 1) / 500)
        opt.step()
        decay = 0.0 if step < 1000 else 0.999
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        if (step + 1) % 100 == 0:
            rec = {"step": step + 1, "loss": round(loss.item(), 5), "s_per_step": round((time.time() - t0) / 100, 3)}
            t0 = time.time()
            if (step + 1) % a.eval_every == 0:
                ema.eval()
                meta = {**vars(a), "out": str(a.out), "step": step + 1}
                M.save(ema, a.out / f"ema_{step + 1}.pt", meta)  # save first: a failing report must not lose it
                torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                            "step": step + 1, "rng": rng, "torch_rng": torch.get_rng_state()}, ck_path)
                try:
                    rec.update(memorization_report(ema, all_train))
                except Exception as e:  # noqa: BLE001 - progress report only; training goes on
                    rec["report_error"] = repr(e)
                t0 = time.time()
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()


if __name__ == "__main__":
    main()

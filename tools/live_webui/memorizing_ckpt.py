"""A small SD-1.x checkpoint that memorizes, for measuring the guard inside a real webui (issue 12, item 4).

The testbed's data (memstab_testbed/data.py: 16x16 images, 12 memorized captions) in the webui's own model layout,
loaded through a YAML config beside the checkpoint:

- UNet: ldm's UNetModel at model_channels 32 (channel_mult 1, 2, 3; attention at 8x8 and 4x4; context 768), trained
  here; the only part shipped (`weights/memorizing_unet.safetensors`, fp16, a few MB).
- Text encoder: full-size CLIP-L (the webui's FrozenCLIPEmbedder accepts no other size), random, generated at set-up
  from numpy's legacy RandomState, so it is the same on every machine and torch version. The webui's conditioning of
  a prompt is its last hidden state over [BOS, words, EOS padding] (emphasis "None"); training uses the same.
- VAE: an AutoencoderKL (ch 128, four levels, so still 8x per side) whose weights are set, not trained: the decoder
  is an exact 8x nearest upsampling of latent channels 0-2 to RGB, the encoder an exact 8x8 average (channel 3 is
  their mean). So a 128x128 generation shows its 16x16 latent, and a copy in latent space is a copy on screen.
  scale_factor 1.0: the latents are the testbed's [-1, 1] images, as the testbed model sees them.

Steps (the data come from the project's venv, the rest runs in the webui's venv, which has ldm and transformers):

    .venv/bin/python tools/live_webui/memorizing_ckpt.py data runs/webui_ckpt
    HF_HOME=<hf cache> <webui venv>/bin/python tools/live_webui/memorizing_ckpt.py train runs/webui_ckpt --webui <sdw>
    HF_HOME=<hf cache> <webui venv>/bin/python tools/live_webui/memorizing_ckpt.py build <sdw>
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights" / "memorizing_unet.safetensors"
NAME = "memstab-testbed"
CLIP_SEED = 20261207
RES = 16  # latent side; the webui generates 128x128
UNET = {"image_size": RES, "in_channels": 4, "out_channels": 4, "model_channels": 32, "attention_resolutions": [2, 4],
        "num_res_blocks": 1, "channel_mult": [1, 2, 3], "num_heads": 4, "use_spatial_transformer": True,
        "transformer_depth": 1, "context_dim": 768, "use_checkpoint": False, "legacy": False}
VAE = {"double_z": True, "z_channels": 4, "resolution": 8 * RES, "in_channels": 3, "out_ch": 3, "ch": 128,
       "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
K = 100.0  # the constant channels that pin GroupNorm's variance (see exact_vae)


def latents_of(images: np.ndarray) -> np.ndarray:
    """[N, 3, 16, 16] images in [-1, 1] -> [N, 4, 16, 16] latents: RGB and their mean (what the encoder gives)."""
    return np.concatenate([images, images.mean(1, keepdims=True)], 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------- data (project venv)
def export_data(out: Path, pool: int, seed: int) -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    from memstab_testbed import data

    caps, imgs = data.build_generic_pool(pool, seed)
    targets = data.memorized_targets()
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "data.npz", pool_images=imgs, pool_captions=np.array(caps),
                        mem_images=np.stack([t.image for t in targets]),
                        mem_captions=np.array([t.caption for t in targets]))
    print(f"{out / 'data.npz'}: pool {len(caps)} ({len(set(caps))} captions), memorized {len(targets)}")


# ---------------------------------------------------------------------------------------------- webui venv
def _ldm(sdw: str):
    sys.path.insert(0, os.path.join(sdw, "repositories/stable-diffusion-stability-ai"))


def clip_text_model():
    """A CLIP-L text encoder of the size the webui's FrozenCLIPEmbedder expects, with the weights of ``clip_state``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                         num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
                                         vocab_size=49408))
    model.load_state_dict(clip_state(model))
    return model.eval().requires_grad_(False)


def clip_state(model) -> dict:
    """CLIP-L text weights for ``model``'s keys from a fixed numpy seed: normal(0, 0.02) for every matrix and
    embedding, ones and zeros for the layer norms, as at initialisation; the same bytes on every machine."""
    import torch

    out = {}
    for k, v in model.state_dict().items():
        if not v.is_floating_point():
            out[k] = v
        elif "layer_norm" in k or "final_layer_norm" in k:
            out[k] = torch.ones_like(v) if k.endswith("weight") else torch.zeros_like(v)
        elif k.endswith("bias"):
            out[k] = torch.zeros_like(v)
        else:
            rs = np.random.RandomState((CLIP_SEED + zlib.crc32(k.encode())) % 2**32)
            out[k] = torch.from_numpy((rs.standard_normal(tuple(v.shape)) * 0.02).astype(np.float32))
    return out


class Conditioner:
    """The webui's conditioning of a prompt (A1111 sd_hijack_clip, emphasis None, CLIP skip 1): the last hidden
    state of [BOS, tokens, EOS, EOS, ...] (77 positions; the webui pads with EOS)."""

    def __init__(self):
        import torch
        from transformers import CLIPTokenizer

        self.tok = CLIPTokenizer.from_pretrained("openai/clip-vit-large-patch14")
        self.model = clip_text_model()
        self.torch = torch

    def probe(self) -> str:
        """A short hash of one prompt's conditioning: training and set-up must build the same text encoder."""
        return hashlib.sha256(self(["probe prompt"]).numpy().round(3).tobytes()).hexdigest()[:16]

    def ids(self, prompts: list[str]):
        eos = self.tok.eos_token_id
        rows = []
        for p in prompts:
            t = self.tok(p, truncation=False, add_special_tokens=False)["input_ids"][:75]
            rows.append([self.tok.bos_token_id] + t + [eos] * (76 - len(t)))
        return self.torch.tensor(rows)

    def __call__(self, prompts: list[str], batch: int = 32):
        outs = []
        with self.torch.no_grad():
            for i in range(0, len(prompts), batch):
                outs.append(self.model(input_ids=self.ids(prompts[i:i + batch])).last_hidden_state)
        return self.torch.cat(outs)


def _unet(sdw: str):
    _ldm(sdw)
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(**UNET)


def _alphas_cumprod():
    """SD 1.x's training schedule, as the testbed model uses it (memstab_testbed/model.py needs only torch)."""
    sys.path.insert(0, str(HERE.parents[1]))
    from memstab_testbed.model import sd_alphas_cumprod

    return sd_alphas_cumprod()


def train(run: Path, sdw: str, steps: int, batch: int, lr: float, mem_share: float, threads: int, seed: int,
          eval_every: int, decay_from: int | None = None) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d = np.load(run / "data.npz")
    pool_caps, mem_caps = [str(c) for c in d["pool_captions"]], [str(c) for c in d["mem_captions"]]
    captions = sorted(set(pool_caps) | set(mem_caps) | {""})
    t0 = time.time()
    cond = Conditioner()
    probe = cond.probe()
    emb = cond(captions).half()  # [C, 77, 768], once: the text encoder is frozen
    print(f"{len(captions)} captions encoded in {time.time() - t0:.0f} s", flush=True)
    index = {c: i for i, c in enumerate(captions)}
    pool = torch.from_numpy(latents_of(d["pool_images"]))
    mem = torch.from_numpy(latents_of(d["mem_images"]))
    pool_ci = torch.tensor([index[c] for c in pool_caps])
    mem_ci = torch.tensor([index[c] for c in mem_caps])
    empty = index[""]
    model = _unet(sdw)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    ac = _alphas_cumprod()
    start, ck_path = 0, run / "last.pt"
    if ck_path.exists():
        ck = torch.load(ck_path, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        start, rng = ck["step"], ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {start}", flush=True)
    log = open(run / "log.jsonl", "a")
    t0 = time.time()
    for step in range(start, steps):
        n_mem = rng.binomial(batch, mem_share)
        mi = torch.from_numpy(rng.integers(0, len(mem_caps), n_mem))
        pi = torch.from_numpy(rng.integers(0, len(pool_caps), batch - n_mem))
        x0 = torch.cat([mem[mi], pool[pi]])
        ci = torch.cat([mem_ci[mi], pool_ci[pi]])
        ci = torch.where(torch.from_numpy(rng.random(batch) < 0.1), empty, ci)  # caption dropout for CFG
        t = torch.randint(0, 1000, (batch,))
        noise = torch.randn_like(x0)
        abar = ac[t].view(-1, 1, 1, 1)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        # min-SNR-5 weighting (Hang et al. 2023): without it the high-noise predictions, which set the first steps'
        # x0_hat, stayed too imprecise for sampling to land on the data (x0_hat RMSE 1.1 at t = 999 after 2000 steps)
        snr = abar.flatten() / (1 - abar.flatten())
        w = (snr.clamp(max=5.0) / snr).view(-1, 1, 1, 1)
        loss = (w * (model(xt, t, context=emb[ci].float()) - noise).pow(2)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 500) * _decay(step, decay_from, steps)
        opt.step()
        decay = 0.0 if step < 500 else 0.999
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        if (step + 1) % 100 == 0:
            rec = {"step": step + 1, "loss": round(loss.item(), 5), "s_per_step": round((time.time() - t0) / 100, 3)}
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                save_unet(ema, run / f"unet_{step + 1}.safetensors", {"step": step + 1, "steps": steps,
                                                                       "batch": batch, "lr": lr,
                                                                       "mem_share": mem_share, "seed": seed,
                                                                       "decay_from": decay_from,
                                                                       "loss": "eps, min-SNR-5"},
                          probe)
                torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                            "step": step + 1, "rng": rng, "torch_rng": torch.get_rng_state()}, ck_path)
                try:
                    rec.update(report(ema, emb, index, mem, mem_caps))
                except Exception as e:  # noqa: BLE001 - a progress report only; training goes on
                    rec["report_error"] = repr(e)
            t0 = time.time()
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()


def _decay(step: int, decay_from: int | None, steps: int) -> float:
    """1 until ``decay_from``, then linearly down to 0.05 at the last step: at a constant rate the EMA weights kept
    wandering around the memorized images (best RMSE 0.14 at step 8000, 0.17 at 9000) instead of settling on them."""
    if decay_from is None or step < decay_from:
        return 1.0
    return 1.0 - 0.95 * (step - decay_from) / max(steps - decay_from, 1)


def sample(unet, ctx, uncond, seeds: list[int], steps: int = 20, cfg: float = 7.5):
    """Euler sampling as the webui's k-diffusion path does it (CompVis discrete sigmas, CFG), for training reports."""
    import torch

    ac = _alphas_cumprod()
    sig_all = ((1 - ac) / ac).sqrt()
    t_idx = torch.linspace(999, 0, steps)
    sig = torch.cat([torch.from_numpy(np.interp(t_idx.numpy(), np.arange(1000), sig_all.numpy())).float(),
                     torch.zeros(1)])
    x = torch.stack([torch.randn(4, RES, RES, generator=torch.Generator().manual_seed(s)) for s in seeds]) * sig[0]
    n = len(seeds)
    with torch.no_grad():
        for i in range(steps):
            s = sig[i]
            t = torch.tensor(float(np.interp(np.log(s.item()), np.log(sig_all.numpy()), np.arange(1000))))
            xin = torch.cat([x, x]) / (s ** 2 + 1).sqrt()
            eps = unet(xin, t.expand(2 * n), context=torch.cat([ctx, uncond.expand(n, -1, -1)]))
            e_c, e_u = eps.chunk(2)
            den = x - s * (e_u + cfg * (e_c - e_u))
            x = x + (x - den) / s * (sig[i + 1] - s)
    return x


def report(unet, emb, index, mem, mem_caps, seeds=(0, 1)) -> dict:
    """How many memorized captions reproduce their image (RGB RMSE < 0.15 for some seed; Euler 20, CFG 7.5)."""
    import torch

    unet.eval()
    prompts = [c for c in mem_caps for _ in seeds]
    ctx = emb[torch.tensor([index[c] for c in prompts])].float()
    x = sample(unet, ctx, emb[index[""]][None].float(), [s for _ in mem_caps for s in seeds])
    tgt = mem.repeat_interleave(len(seeds), 0)
    rmse = (x[:, :3] - tgt[:, :3]).pow(2).flatten(1).mean(1).sqrt().view(len(mem_caps), len(seeds))
    best = rmse.min(1).values
    return {"mem_best_rmse": [round(float(v), 3) for v in best], "mem_reproduced": int((best < 0.15).sum())}


def save_unet(unet, path: Path, meta: dict, probe: str) -> None:
    from safetensors.torch import save_file

    sd = {k: v.half().contiguous() for k, v in unet.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(sd, str(tmp), metadata={"meta": json.dumps(meta), "clip_probe": probe})
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- the VAE, set by hand
def exact_vae(sdw: str):
    """An AutoencoderKL whose decoder is an exact 8x nearest upsampling of latent channels 0-2 and whose encoder is
    an exact 8x8 average of the image (latent channel 3: the mean of the three).

    Every ResnetBlock and AttnBlock adds zero (its last convolution is zero), every resampling convolution is the
    identity (Upsample) or a 2x2 average (Downsample). The final GroupNorm (32 groups of 4 channels) would normalise
    each image; each signal v rides in a group [v, -v, K, -K], whose mean is exactly 0 and whose variance is
    (E[v^2] + K^2) / 2, so with K = 100 the norm divides by K / sqrt(2) to 5e-5 (and K^2 fits fp16); its affine
    undoes that and adds 20, where swish is the identity to 1e-8; the last convolution takes (v - (-v)) / 2."""
    import torch

    _ldm(sdw)
    from ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=VAE, lossconfig={"target": "torch.nn.Identity"}, embed_dim=4).eval()
    sd = {k: torch.zeros_like(v) for k, v in vae.state_dict().items()}
    for k in sd:
        if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k.endswith(".norm.weight"):
            sd[k] = torch.ones_like(sd[k])
    eye = torch.zeros(128, 128, 3, 3)
    eye[range(128), range(128), 1, 1] = 1.0
    avg = torch.zeros(128, 128, 3, 3)
    for a in (0, 1):
        for b in (0, 1):
            avg[range(128), range(128), a, b] = 0.25
    for k in sd:
        if ".upsample.conv.weight" in k:
            sd[k] = eye.clone()
        if ".downsample.conv.weight" in k:
            sd[k] = avg.clone()

    def carry(prefix: str, n_in: int, out_rows: list[list[tuple[int, float]]], out_bias=None):
        """conv_in: input channel c -> group c as [v, -v, K, -K]; norm_out: undo the scale, add 20; conv_out: each
        output row is a sum of (group, weight) of (ch 4g - ch 4g+1) / 2."""
        w_in = torch.zeros_like(sd[prefix + ".conv_in.weight"])
        b_in = torch.zeros_like(sd[prefix + ".conv_in.bias"])
        for c in range(n_in):
            w_in[4 * c, c, 1, 1], w_in[4 * c + 1, c, 1, 1] = 1.0, -1.0
            b_in[4 * c + 2], b_in[4 * c + 3] = K, -K
        sd[prefix + ".conv_in.weight"], sd[prefix + ".conv_in.bias"] = w_in, b_in
        nw = torch.zeros(128)
        nb = torch.zeros(128)
        for c in range(n_in):
            nw[4 * c] = nw[4 * c + 1] = K / 2 ** 0.5
            nb[4 * c] = nb[4 * c + 1] = 20.0
        sd[prefix + ".norm_out.weight"], sd[prefix + ".norm_out.bias"] = nw, nb
        w_out = torch.zeros_like(sd[prefix + ".conv_out.weight"])
        for o, terms in enumerate(out_rows):
            for g, wt in terms:
                w_out[o, 4 * g, 1, 1] += wt / 2
                w_out[o, 4 * g + 1, 1, 1] -= wt / 2
        sd[prefix + ".conv_out.weight"] = w_out
        b_out = torch.zeros_like(sd[prefix + ".conv_out.bias"])
        if out_bias is not None:
            b_out[:] = torch.tensor(out_bias)
        sd[prefix + ".conv_out.bias"] = b_out

    third = 1.0 / 3.0
    # encoder: mean = (R, G, B, (R+G+B)/3); logvar = -30 (the posterior sample is its mean)
    carry("encoder", 3, [[(0, 1.0)], [(1, 1.0)], [(2, 1.0)], [(0, third), (1, third), (2, third)],
                                     [], [], [], []], [0, 0, 0, 0, -30, -30, -30, -30])
    carry("decoder", 3, [[(0, 1.0)], [(1, 1.0)], [(2, 1.0)]])
    # the decoder's conv_in reads latent channels 0-2 (its groups 0-2); quant convs are the identity
    sd["quant_conv.weight"] = torch.eye(8).view(8, 8, 1, 1)
    sd["post_quant_conv.weight"] = torch.eye(4).view(4, 4, 1, 1)
    vae.load_state_dict(sd)
    return vae


def check_vae(vae) -> None:
    """Refuse a VAE that is not the exact upsampler / averager ``exact_vae`` promises (on this ldm and torch)."""
    import torch

    z = torch.rand(2, 4, RES, RES, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        img = vae.decode(z)
        post = vae.encode(img).mean
    dec = (img - torch.nn.functional.interpolate(z[:, :3], scale_factor=8, mode="nearest")).abs().max().item()
    enc = (post[:, :3] - z[:, :3]).abs().max().item()
    if dec > 1e-3 or enc > 1e-3:
        raise SystemExit(f"the VAE is not exact here (decode error {dec:.2g}, encode error {enc:.2g})")


def config(sdw: str) -> dict:
    import yaml

    with open(os.path.join(sdw, "configs/v1-inference.yaml")) as f:
        cfg = yaml.safe_load(f)
    p = cfg["model"]["params"]
    p["scale_factor"] = 1.0
    p["image_size"] = RES
    p["unet_config"]["params"] = dict(UNET)
    p["first_stage_config"]["params"]["ddconfig"] = dict(VAE)
    return cfg


def build(sdw: str, weights: Path, name: str = NAME) -> Path:
    import yaml
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), "pt") as f:
        unet = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata() or {}
    cond = Conditioner()
    probe = cond.probe()
    if meta.get("clip_probe") and meta["clip_probe"] != probe:
        raise SystemExit(f"the text encoder built here differs from the one the UNet was trained with "
                         f"(probe {probe}, trained {meta['clip_probe']}): check torch/transformers")
    sd = {"model.diffusion_model." + k: v for k, v in unet.items()}
    vae = exact_vae(sdw)
    check_vae(vae)
    sd.update({"first_stage_model." + k: v for k, v in vae.state_dict().items()})
    sd.update({"cond_stage_model.transformer." + k: v for k, v in cond.model.state_dict().items()})
    sd = {k: (v.half() if v.is_floating_point() and not k.startswith("first_stage") else v).contiguous()
          for k, v in sd.items()}
    out = Path(sdw) / "models/Stable-diffusion"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.yaml", "w") as f:
        yaml.safe_dump(config(sdw), f, sort_keys=False)
    path = out / f"{name}.safetensors"
    save_file(sd, str(path))
    print(f"{path}: {os.path.getsize(path) / 1e6:.0f} MB ({len(unet)} UNet tensors, probe {probe})")
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a_data = sub.add_parser("data")
    a_data.add_argument("run", type=Path)
    a_data.add_argument("--pool", type=int, default=6000)
    a_data.add_argument("--seed", type=int, default=0)
    a_train = sub.add_parser("train")
    a_train.add_argument("run", type=Path)
    a_train.add_argument("--webui", required=True)
    a_train.add_argument("--steps", type=int, default=6000)
    a_train.add_argument("--batch", type=int, default=64)
    a_train.add_argument("--lr", type=float, default=1e-3)
    a_train.add_argument("--mem-share", type=float, default=0.1)
    a_train.add_argument("--threads", type=int, default=2)
    a_train.add_argument("--seed", type=int, default=0)
    a_train.add_argument("--eval-every", type=int, default=1000)
    a_train.add_argument("--decay-from", type=int, help="decay the learning rate linearly from this step on")
    a_build = sub.add_parser("build")
    a_build.add_argument("webui")
    a_build.add_argument("--weights", type=Path, default=WEIGHTS)
    a_build.add_argument("--name", default=NAME)
    a = ap.parse_args(argv)
    if a.cmd == "data":
        export_data(a.run, a.pool, a.seed)
    elif a.cmd == "train":
        train(a.run, a.webui, a.steps, a.batch, a.lr, a.mem_share, a.threads, a.seed, a.eval_every, a.decay_from)
    else:
        build(a.webui, a.weights, a.name)


if __name__ == "__main__":
    main()

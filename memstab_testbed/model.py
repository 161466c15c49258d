"""The testbed model: an SD-shaped epsilon-prediction U-Net with cross-attention on a tiny caption encoder.

SD 1.x's noise schedule (scaled_linear betas 0.00085..0.012 over 1000 steps), classifier-free guidance through an
empty caption, 16x16 RGB "latents". Pure torch, so the testbed needs no diffusers or transformers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MAX_TOKENS = 16
UNET_CH = (32, 64, 96)
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
WEIGHTS = Path(__file__).with_name("weights") / "testbed.pt"


def sd_alphas_cumprod(n: int = 1000) -> torch.Tensor:
    """Stable Diffusion 1.x's training schedule ("scaled_linear")."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


class Tokenizer:
    """Word-level tokenizer over a fixed vocabulary; unknown words map to <unk>, like CLIP's rare sub-words."""

    def __init__(self, vocab: list[str]):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts: list[str]) -> Tokenizer:
        return cls(SPECIALS + sorted({w for t in texts for w in words(t)}))

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), MAX_TOKENS, dtype=torch.long)
        unk = self.index["<unk>"]
        for i, t in enumerate(texts):
            ids = [1] + [self.index.get(w, unk) for w in words(t)][: MAX_TOKENS - 2] + [2]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 96, layers: int = 2, heads: int = 4):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(MAX_TOKENS, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.body(self.tok(ids) + self.pos))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([a.cos(), a.sin()], 1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2, self.c2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class CrossAttention(nn.Module):
    """Self-attention then cross-attention to the caption, as in SD's transformer blocks (without the MLP)."""

    def __init__(self, ch: int, ctx: int, heads: int = 4):
        super().__init__()
        self.n1, self.self_attn = nn.GroupNorm(8, ch), nn.MultiheadAttention(ch, heads, batch_first=True)
        self.n2 = nn.GroupNorm(8, ch)
        self.cross = nn.MultiheadAttention(ch, heads, kdim=ctx, vdim=ctx, batch_first=True)

    def forward(self, x, context):
        b, c, h, w = x.shape
        s = self.n1(x).flatten(2).transpose(1, 2)
        x = x + self.self_attn(s, s, s, need_weights=False)[0].transpose(1, 2).view(b, c, h, w)
        s = self.n2(x).flatten(2).transpose(1, 2)
        return x + self.cross(s, context, context, need_weights=False)[0].transpose(1, 2).view(b, c, h, w)


class UNet(nn.Module):
    """16 -> 8 -> 4 U-Net; attention only at 8x8 and below (cheap on a CPU)."""

    def __init__(self, ctx: int, ch=(64, 128, 192), cin: int = 3):
        super().__init__()
        temb = ch[0] * 4
        self.ch0 = ch[0]
        self.temb = nn.Sequential(nn.Linear(ch[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inp = nn.Conv2d(cin, ch[0], 3, padding=1)
        self.d0 = ResBlock(ch[0], ch[0], temb)
        self.down0 = nn.Conv2d(ch[0], ch[0], 3, stride=2, padding=1)
        self.d1, self.a1 = ResBlock(ch[0], ch[1], temb), CrossAttention(ch[1], ctx)
        self.down1 = nn.Conv2d(ch[1], ch[1], 3, stride=2, padding=1)
        self.d2, self.a2 = ResBlock(ch[1], ch[2], temb), CrossAttention(ch[2], ctx)
        self.m1, self.am = ResBlock(ch[2], ch[2], temb), CrossAttention(ch[2], ctx)
        self.m2 = ResBlock(ch[2], ch[2], temb)
        self.u2, self.ua2 = ResBlock(ch[2] * 2, ch[2], temb), CrossAttention(ch[2], ctx)
        self.up1 = nn.Conv2d(ch[2], ch[1], 3, padding=1)
        self.u1, self.ua1 = ResBlock(ch[1] * 2, ch[1], temb), CrossAttention(ch[1], ctx)
        self.up0 = nn.Conv2d(ch[1], ch[0], 3, padding=1)
        self.u0 = ResBlock(ch[0] * 2, ch[0], temb)
        self.out = nn.Sequential(nn.GroupNorm(8, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], cin, 3, padding=1))

    def forward(self, x, t, context):
        e = self.temb(timestep_embedding(t, self.ch0))
        h0 = self.d0(self.inp(x), e)
        h1 = self.a1(self.d1(self.down0(h0), e), context)
        h2 = self.a2(self.d2(self.down1(h1), e), context)
        m = self.m2(self.am(self.m1(h2, e), context), e)
        u = self.ua2(self.u2(torch.cat([m, h2], 1), e), context)
        u = F.interpolate(u, scale_factor=2, mode="nearest")
        u = self.ua1(self.u1(torch.cat([self.up1(u), h1], 1), e), context)
        u = F.interpolate(u, scale_factor=2, mode="nearest")
        u = self.u0(torch.cat([self.up0(u), h0], 1), e)
        return self.out(u)


class TestbedModel(nn.Module):
    """eps = model(x_scaled, t, context); ``encode(captions)`` gives the context, like SD's text encoder."""

    def __init__(self, vocab: list[str]):
        super().__init__()
        self.tokenizer = Tokenizer(vocab)
        self.text = TextEncoder(len(vocab))
        self.unet = UNet(ctx=96, ch=UNET_CH)
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(), persistent=False)

    def encode(self, captions: list[str]) -> torch.Tensor:
        return self.text(self.tokenizer(captions).to(self.alphas_cumprod.device))

    def forward(self, x, t, context):
        return self.unet(x, t, context)


def save(model: TestbedModel, path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save({"vocab": model.tokenizer.vocab, "state": state, "meta": meta}, tmp)
    tmp.replace(path)


def load(path: Path = WEIGHTS, device: str = "cpu") -> TestbedModel:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = TestbedModel(ck["vocab"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["state"].items()})
    model.meta = ck.get("meta", {})
    return model.to(device).eval().requires_grad_(False)

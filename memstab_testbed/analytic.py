"""An analytic "memorizing" denoiser: exact posterior means of simple data distributions, no training.

- unconditional data: N(0, s^2 I);
- an ordinary condition c: N(m_c, s^2 I) with a smooth mean m_c (a broad, generalising conditional);
- a memorized condition: a mixture, weight ``pi`` on one stored image y (a delta: the duplicated training image) and
  the rest on N(m_c, s^2 I).

With classifier-free guidance the delta's sharp pull minus the broad unconditional gives exactly the cond/uncond gap
and the overshooting x0_hat that the detector looks for. Used by the unit tests and the fallback demo.
"""

from __future__ import annotations

import math

import torch

SHAPE = (4, 8, 8)


def smooth_pattern(seed: int, amplitude: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.randn((SHAPE[0], 2, 2), generator=g)
    up = torch.nn.functional.interpolate(low[None], size=SHAPE[1:], mode="bilinear", align_corners=False)[0]
    return amplitude * up / up.std()


def stored_image(seed: int) -> torch.Tensor:
    """A high-contrast 'training image' (blocky, unit RMS), far from every smooth mean."""
    g = torch.Generator().manual_seed(10_000 + seed)
    blocks = torch.sign(torch.randn((SHAPE[0], 4, 4), generator=g))
    return blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)


class AnalyticModel:
    """D(x, sigma, cond) for conditions given as ints: ``c >= 0`` ordinary, ``c < 0`` memorized image ``-c - 1``,
    ``None`` unconditional."""

    def __init__(self, s: float = 0.5, pi: float = 0.5):
        self.s, self.pi = s, pi

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, conds: list) -> torch.Tensor:
        """Posterior means at noise level sigma; a latent larger than 8x8 (a hires pass, an SDXL-sized double) sees
        the same patterns upsampled by pixel repetition."""
        k = x.shape[-1] // SHAPE[-1]

        def up(t):
            return t.repeat_interleave(k, -2).repeat_interleave(k, -1) if k > 1 else t

        s2 = self.s**2
        sig = sigma.reshape(-1, 1, 1, 1).to(x)
        shrink = s2 / (s2 + sig**2)
        out = torch.empty_like(x)
        for i, c in enumerate(conds):
            xi, sh, sg = x[i], shrink[i], sig[i]
            if c is None:
                out[i] = xi * sh
                continue
            m = up(smooth_pattern(abs(c) + (1000 if c < 0 else 0))).to(x)
            broad = m + (xi - m) * sh
            if c >= 0:
                out[i] = broad
                continue
            y = up(stored_image(-c - 1)).to(x)
            d = xi[0].numel()
            # log-likelihood of x under each component at noise sigma
            ll_y = -((xi - y) ** 2).sum() / (2 * sg**2) - d * torch.log(sg)
            ll_b = -((xi - m) ** 2).sum() / (2 * (s2 + sg**2)) - 0.5 * d * torch.log(s2 + sg**2)
            w = torch.sigmoid(ll_y - ll_b + math.log(self.pi / (1 - self.pi)))
            out[i] = w * y + (1 - w) * broad
        return out

    def cfg_denoiser(self, conds: list, scale: float):
        """A k-diffusion model function D(x, sigma) with classifier-free guidance."""

        def fn(x, sigma, **_):
            sig = sigma.reshape(-1).expand(x.shape[0]) if sigma.numel() == 1 else sigma
            du = self.denoise(x, sig, [None] * len(conds))
            dc = self.denoise(x, sig, conds)
            return du + (dc - du) * scale

        return fn

"""Conversions between the DDIM/PLMS (VP, timestep) path and k-diffusion's (sigma) parametrisation.

The guard works in k-diffusion space, x = x0 + sigma * eps. A VP latent z_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps is the
same point scaled: x = z_t / sqrt(a_t), sigma = sqrt((1 - a_t) / a_t). x0_hat is the same in both spaces.
"""

from __future__ import annotations

import torch

from .dims import append_dims


def sigma_of_alpha_cumprod(alpha_cumprod: torch.Tensor) -> torch.Tensor:
    return ((1 - alpha_cumprod) / alpha_cumprod).sqrt()


def timestep_sigma(t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Noise level of integer timestep(s) ``t`` (as the DDIM path passes them, possibly in a float tensor)."""
    ac = alphas_cumprod if alphas_cumprod.device == t.device else alphas_cumprod.to(t.device)  # no no-op copies
    return sigma_of_alpha_cumprod(ac[t.long().clamp(0, len(ac) - 1)])


def _col(v, like: torch.Tensor) -> torch.Tensor:
    """A per-row value (tensor [B], list or scalar) as float32 on ``like``'s device, broadcast against it."""
    return append_dims(torch.as_tensor(v, dtype=torch.float32, device=like.device).reshape(-1), like.ndim)


def vp_to_kdiff(z: torch.Tensor, alpha_cumprod) -> torch.Tensor:
    return z / _col(alpha_cumprod, z).sqrt()


def eps_to_denoised(x: torch.Tensor, eps: torch.Tensor, sigma) -> torch.Tensor:
    """x0_hat from an eps prediction at k-diffusion latent ``x`` (also valid for a VP latent with its own scaling:
    use ``vp_to_kdiff`` first)."""
    return x - _col(sigma, x) * eps


def denoised_to_eps(x: torch.Tensor, denoised: torch.Tensor, sigma) -> torch.Tensor:
    return (x - denoised) / _col(sigma, x).clamp_min(1e-12)

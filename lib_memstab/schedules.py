"""Conversions between the DDIM/PLMS (VP, timestep) path and k-diffusion's (sigma) parametrisation.

The guard works in k-diffusion space, x = x0 + sigma * eps. A VP latent z_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps is the
same point scaled: x = z_t / sqrt(a_t), sigma = sqrt((1 - a_t) / a_t). x0_hat is the same in both spaces.
"""

from __future__ import annotations

import torch


def sigma_of_alpha_cumprod(alpha_cumprod: torch.Tensor) -> torch.Tensor:
    return ((1 - alpha_cumprod) / alpha_cumprod).sqrt()


def timestep_sigma(t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Noise level of integer timestep(s) ``t`` (as the DDIM path passes them, possibly in a float tensor)."""
    ac = alphas_cumprod if alphas_cumprod.device == t.device else alphas_cumprod.to(t.device)  # no no-op copies
    return sigma_of_alpha_cumprod(ac[t.long().clamp(0, len(ac) - 1)])


def vp_to_kdiff(z: torch.Tensor, alpha_cumprod) -> torch.Tensor:
    ac = torch.as_tensor(alpha_cumprod, dtype=torch.float32, device=z.device).reshape(-1, *[1] * (z.ndim - 1))
    return z / ac.sqrt()


def kdiff_to_vp(x: torch.Tensor, alpha_cumprod) -> torch.Tensor:
    ac = torch.as_tensor(alpha_cumprod, dtype=torch.float32, device=x.device).reshape(-1, *[1] * (x.ndim - 1))
    return x * ac.sqrt()


def _col(sigma, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(sigma, dtype=torch.float32, device=like.device).reshape(-1, *[1] * (like.ndim - 1))


def eps_to_denoised(x: torch.Tensor, eps: torch.Tensor, sigma) -> torch.Tensor:
    """x0_hat from an eps prediction at k-diffusion latent ``x`` (also valid for a VP latent with its own scaling:
    use ``vp_to_kdiff`` first)."""
    return x - _col(sigma, x) * eps


def denoised_to_eps(x: torch.Tensor, denoised: torch.Tensor, sigma) -> torch.Tensor:
    return (x - denoised) / _col(sigma, x).clamp_min(1e-12)

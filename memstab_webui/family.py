"""What kind of model is loaded, from what the host exposes: latent channels and the VAE's latent scale (the
"family" that a profile of another checkpoint may stand in for), and whether the guard supports it yet.

SD 1.x/2.x and SDXL have 4-channel latents (SDXL: dict conds, 128x128 latents at 1024 px), which the guard and the
calibration handle like any other latent. SD3 and Flux (Forge) have 16 channels and flow-matching schedules: not
supported yet, and said so plainly rather than judged with numbers nobody has checked.
"""

from __future__ import annotations

SUPPORTED_CHANNELS = (4,)
_SCALES = {"sdxl": 0.13025, "sd": 0.18215}  # the VAE scale factors of SDXL and SD 1.x/2.x


def latent_channels(model) -> int | None:
    c = getattr(model, "latent_channels", None)
    if isinstance(c, int) and not isinstance(c, bool):
        return c
    if any(getattr(model, a, False) is True for a in ("is_sd3", "is_flux")):
        return 16
    return 4 if model is not None else None  # A1111's own default (getattr(sd_model, 'latent_channels', 4))


def latent_scale(model) -> float | None:
    s = getattr(model, "scale_factor", None)  # A1111's LatentDiffusion
    if isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0:
        return round(float(s), 5)
    if getattr(model, "is_sdxl", False) is True:
        return _SCALES["sdxl"]
    if any(getattr(model, a, False) is True for a in ("is_sd1", "is_sd2")):
        return _SCALES["sd"]
    return None


def family_of(model) -> dict | None:
    """{"latent_channels", "latent_scale"}, or None when either is unknown (then no family match is attempted)."""
    c, s = latent_channels(model), latent_scale(model)
    return None if c is None or s is None else {"latent_channels": c, "latent_scale": s}


def unsupported_note(channels) -> str:
    return (f"model family not supported yet ({channels}-channel latents, e.g. SD3/Flux): detection off; "
            "SD 1.x, SD 2.x and SDXL are supported")


def unsupported(model) -> str | None:
    """A plain sentence when the loaded model's family is not supported, else None."""
    c = latent_channels(model)
    if c is not None and c not in SUPPORTED_CHANNELS:
        return unsupported_note(c)
    return None


def model_name(model) -> str:
    info = getattr(model, "sd_checkpoint_info", None)
    for v in (getattr(info, "name", None), getattr(info, "model_name", None)):
        if isinstance(v, str) and v:
            return v
    return "model"


def short_hash(model) -> str | None:
    """The checkpoint's short hash as the webui shows it ("Model hash" in the infotext)."""
    info = getattr(model, "sd_checkpoint_info", None)
    for h in (getattr(info, "shorthash", None), getattr(model, "sd_model_hash", None)):
        if isinstance(h, str) and h:
            return h.lower()
    return None


def hashes(model) -> list[str]:
    """Every hash the host knows for the checkpoint, short first (a profile may carry either)."""
    info = getattr(model, "sd_checkpoint_info", None)
    out = []
    for h in (short_hash(model), getattr(info, "sha256", None)):
        if isinstance(h, str) and h and h.lower() not in out:
            out.append(h.lower())
    return out

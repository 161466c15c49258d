"""One sampling pass of one batch: its observer (a lib_memstab Guard, or a calibration recorder), its schedule, and
where the current model evaluation stands.

Step tracking follows the callback rhythm, never ``params.sampling_step`` (lags by one) or sigma (Heun's extra
evaluation of step i runs at sigma_{i+1}): the first model evaluation after the sampler's per-step callback, or after
the pass starts, is the step's main evaluation; further evaluations before the next callback are a second-order
sampler's auxiliary ones and are left alone. A pass is one CFG denoiser object: A1111 builds a new sampler, hence a
new denoiser, for every batch and for the hires second pass.

Nothing here reads a tensor back on the host during sampling; the one read is the observer's verdicts() at close().
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lib_memstab.observation import flat_norm
from lib_memstab.schedules import denoised_to_eps, eps_to_denoised, sigma_of_alpha_cumprod, vp_to_kdiff

from .family import SUPPORTED_CHANNELS, unsupported_note
from .infotext import prefix_for
from .log import report


def forge() -> bool:
    return "modules_forge" in sys.modules


def is_timesteps(denoiser) -> bool:
    """A1111's DDIM/PLMS/UniPC denoiser: its "sigma" is a timestep and its outputs are eps."""
    try:
        from modules.sd_samplers_timesteps import CFGDenoiserTimesteps

        if isinstance(denoiser, CFGDenoiserTimesteps):
            return True
    except ImportError:
        pass
    return bool(getattr(denoiser, "mask_before_denoising", False))


def _rows(t) -> int | None:
    if isinstance(t, dict):
        t = t.get("crossattn", next(iter(t.values()), None))
    shape = getattr(t, "shape", None)
    return int(shape[0]) if shape else None


class Failures:
    """A job's failures: the first is logged with its traceback, every one becomes a short note."""

    def __init__(self):
        self.first: str | None = None  # "where: Type: message" of the first failure

    def note(self, exc: BaseException, where: str, consequence: str) -> str:
        msg = f"error: {type(exc).__name__}: {str(exc)[:200]}"
        if self.first is None:
            self.first = f"{where}: {type(exc).__name__}: {str(exc)[:200]}"
            report(f"[MemStab] {where} failed; {consequence}", exc)
        return msg


@dataclass
class JobContext:
    """What every pass of one job shares, fixed when the job starts (no back-reference to the run)."""

    p: object
    make_observer: Callable  # (steps or None, can_mitigate) -> object with observe(...) and verdicts()
    norm: str  # the norm the profile (or recorder) uses, for the cond gap
    failures: Failures = field(default_factory=Failures)
    verbosity: str = "errors"
    label: str = ""  # the profile's name and form, for the debug log
    sampling_starts: dict = field(default_factory=dict)  # (iteration, hires) -> process_before_every_sampling calls
    unsupported: list = field(default_factory=list)  # latent channels of unsupported model families, once seen


class Pass:
    """One sampling pass: disables and closes itself; close() hands its verdicts and notes to the job's Results."""

    def __init__(self, job: JobContext, denoiser, index: int, schedule_for: Callable):
        p = job.p
        self.job = job
        self.denoiser = denoiser  # held, so that its id is not reused while we key on it
        self.index = index
        self.iteration = getattr(p, "iteration", 0)
        self.hires = bool(getattr(p, "is_hr_pass", False))
        self.seeds = [int(s) for s in (getattr(p, "seeds", None) or [])]
        self.subseeds = [int(s) for s in (getattr(p, "subseeds", None) or [])]
        self.armed, self.main = True, False
        self.x = self.sigma = self.gap = None
        self.batch = self.n_cond = None
        self.notes: list[str] = []
        self.error: str | None = None
        self.finished = False
        self.steps_seen = 0
        self.evaluations = self.callbacks = 0  # model evaluations and sampler steps seen (Python ints: no sync)
        self.last_d = None  # the last sampler callback's dict: reForge delivers each step twice (see Run)
        # Forge converts DDIM to k-diffusion space before the callbacks (after-cfg carries x0_hat there too)
        timesteps = is_timesteps(denoiser)
        self.eps_space = timesteps and not getattr(denoiser, "classic_ddim_eps_estimation", False) and not forge()
        self.family = ("timesteps path, eps converted to x0_hat" if self.eps_space else
                       "timesteps path, x0_hat from the host" if timesteps else "k-diffusion")
        sampler = getattr(denoiser, "sampler", None)
        self.sampler_name = (getattr(getattr(sampler, "config", None), "name", None)
                             or getattr(sampler, "funcname", None) or "?")
        self.model = model = getattr(p, "sd_model", None)  # A1111: a property returning shared.sd_model
        ac = getattr(model, "alphas_cumprod", None)
        self.ac = ac.detach().float() if isinstance(ac, torch.Tensor) else None
        self.disabled = self.eps_space and self.ac is None
        if self.disabled:
            self.notes.append("DDIM-path sampler without alphas_cumprod: not observed")
        self.schedule = schedule_for(sampler, self.ac)
        if self.schedule is None and not self.disabled:
            self.notes.append("no noise schedule recorded for this sampler: detection only")
        total = getattr(denoiser, "steps", None)
        self.total = total if isinstance(total, int) and total > 0 else None
        self.observer = job.make_observer(self.total, self.schedule is not None)
        self.mode = getattr(getattr(self.observer, "config", None), "mode", "record")
        self._dev: dict = {}

    # ---------------------------------------------------------------- per model evaluation
    def on_denoiser(self, params) -> None:
        self.evaluations += 1
        self.main, self.armed = self.armed and not (self.disabled or self.finished), False
        if not self.main:
            return
        channels = params.x.shape[1] if params.x.dim() == 4 else None  # shape only: no device read
        if channels not in SUPPORTED_CHANNELS:  # SD3/Flux latents: say so instead of judging unchecked numbers
            self.disabled, self.main = True, False
            self.notes.append(unsupported_note(channels))
            self.job.unsupported.append(channels)
            return
        p = self.job.p
        if getattr(p, "sd_model", None) is not self.model:  # the SDXL refiner took over mid-pass
            self.model = getattr(p, "sd_model", None)
            self.notes.append(f"model switched at step {self.steps_seen} (refiner): judged with the first "
                              f"model's profile")
        self.x, self.sigma = params.x, params.sigma  # references, no copies
        self.batch, self.n_cond = _rows(params.text_uncond), _rows(params.text_cond)
        self.gap = None

    def on_denoised(self, x_out) -> None:
        """The Wen et al. cond gap, ||D_cond - D_uncond|| / sigma, where the host calls on_cfg_denoised (A1111)."""
        b = self.batch
        if not self.main or not b or self.n_cond != b or x_out.shape[0] != 2 * b:
            return  # AND prompts or edit models: cond rows are not 1:1 with images
        diff = flat_norm(x_out[:b] - x_out[b:], self.job.norm)
        self.gap = diff if self.eps_space else diff / self.sigma[-b:].float().clamp_min(1e-12)

    def on_after_cfg(self, out: torch.Tensor) -> torch.Tensor:
        self.main = False
        b = out.shape[0]
        x, s = self.x[-b:], self.sigma[-b:]
        if self.eps_space:  # A1111 DDIM/PLMS/UniPC: VP latent, timestep, eps (lib_memstab.schedules)
            ac = self._on(out.device, "ac", self.ac)[s.long().clamp(0, self.ac.shape[0] - 1)]
            sig = sigma_of_alpha_cumprod(ac)
            xk = vp_to_kdiff(x.float(), ac)
            den = eps_to_denoised(xk, out.float(), sig)
        else:
            sig, xk, den = s.float(), x, out
        new = self.observer.observe(xk, den, sig, self._next_sigma(sig), self.gap)
        self.gap = None
        self.steps_seen += 1
        if new is den:
            return out
        if not self.eps_space:
            return new
        eps = denoised_to_eps(xk, new, sig)
        return torch.where(new == den, out, eps.to(out.dtype))  # untouched elements stay bit-identical

    def _next_sigma(self, sig: torch.Tensor) -> torch.Tensor:
        if self.schedule is None:
            return torch.zeros_like(sig)
        asc = self._on(sig.device, "schedule", self.schedule)
        idx = torch.searchsorted(asc, (sig * (1 - 1e-4)).contiguous())  # entries strictly below sigma
        return torch.where(idx > 0, asc[(idx - 1).clamp_min(0)], torch.zeros_like(sig))

    def _on(self, device, name, t):
        key = (name, str(device))
        if key not in self._dev:
            self._dev[key] = t if t.device == device else t.to(device)  # once per pass and device
        return self._dev[key]

    # ---------------------------------------------------------------- lifecycle
    def disable(self, message: str) -> None:
        """A failure inside this pass: it stops observing and its images carry the message."""
        self.disabled, self.main, self.error = True, False, message

    def ident(self, row: int) -> tuple:
        if row < len(self.seeds) and row < len(self.subseeds):
            return (self.seeds[row], self.subseeds[row])
        return (-1, row)

    def close(self) -> tuple[list, list]:
        """Read the verdicts (the pass's one host read) and free what it holds on the device; returns
        ([(ident, prefix, Verdict)], [(ident, note)]). Closing twice returns nothing the second time."""
        if self.finished:
            return [], []
        self.finished = True
        try:
            verdicts = self.observer.verdicts() if self.observer is not None else []
        except Exception as e:
            verdicts = []
            self.error = self.error or self.job.failures.note(e, "reading the verdicts", "the image has no verdict")
        self.observer = None  # frees the device buffers
        self.x = self.sigma = self.gap = self.last_d = None
        self._dev.clear()
        entries = [(self.ident(v.image), prefix_for(self.index, self.hires, v.segment), v) for v in verdicts]
        notes = self.notes + ([self.error] if self.error else [])
        if self.job.verbosity == "debug":
            print(self.debug_line(notes))
        rows = max(len(self.seeds), max((v.image for v in verdicts), default=-1) + 1)
        return entries, ([(self.ident(r), "; ".join(notes)) for r in range(rows)] if notes else [])

    def release(self) -> None:
        """After the job: drop the host's objects (the denoiser holds its sampler and p)."""
        self.denoiser = self.model = None

    def debug_line(self, notes: list) -> str:
        """The debug log's summary of one pass, from counters kept as Python ints (nothing read from a device)."""
        starts = self.job.sampling_starts.get((self.iteration, self.hires))
        where = f"batch {self.iteration + 1}, pass {self.index + 1}{' (hires)' if self.hires else ''}"
        host = ", Forge/reForge" if forge() else ""
        return (f"[MemStab] debug: {where}: sampler {self.sampler_name} ({self.family}{host}); "
                f"{self.steps_seen} steps observed of {self.total if self.total is not None else '?'}, "
                f"{self.callbacks} sampler callbacks, {self.evaluations} model evaluations"
                + (f", process_before_every_sampling x{starts}" if starts else "")
                + f"; profile {self.job.label}, mode {self.mode}, "
                f"schedule {'recorded' if self.schedule is not None else 'not recorded'}"
                + (f"; {'; '.join(notes)}" if notes else ""))

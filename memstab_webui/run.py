"""Per-run state, keyed by id(p) (p is an unhashable dataclass), with one lib_memstab.Guard per sampling pass.

Step tracking follows the callback rhythm, never ``params.sampling_step`` (lags by one) or sigma (Heun's extra
evaluation of step i runs at sigma_{i+1}): the first model evaluation after the sampler's per-step callback, or after
the pass starts, is the step's main evaluation; further evaluations before the next callback are a second-order
sampler's auxiliary ones and are left alone. A pass is one CFG denoiser object: A1111 builds a new sampler, hence a
new denoiser, for every batch and for the hires second pass.

Nothing here reads a tensor back on the host during sampling; the one read is Guard.verdicts() after the batch.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback

import torch

from lib_memstab import Guard
from lib_memstab.observation import flat_norm

from .family import SUPPORTED_CHANNELS, unsupported_note
from .infotext import NOTE_KEY, Results, prefix_for

RUN: dict[int, Run] = {}


def _rows(t) -> int | None:
    if isinstance(t, dict):
        t = t.get("crossattn", next(iter(t.values()), None))
    shape = getattr(t, "shape", None)
    return int(shape[0]) if shape else None


def _is_timesteps(denoiser) -> bool:
    """A1111's DDIM/PLMS/UniPC denoiser: its "sigma" is a timestep and its outputs are eps."""
    try:
        from modules.sd_samplers_timesteps import CFGDenoiserTimesteps

        if isinstance(denoiser, CFGDenoiserTimesteps):
            return True
    except ImportError:
        pass
    return bool(getattr(denoiser, "mask_before_denoising", False))


def _forge() -> bool:
    return "modules_forge" in sys.modules


class Pass:
    """One sampling pass of one batch: its Guard, schedule and where the current model evaluation stands."""

    def __init__(self, run: Run, denoiser, index: int):
        p = run.p
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
        self.last_d = None  # the last sampler callback's dict: reForge delivers each step twice (see on_step)
        # Forge converts DDIM to k-diffusion space before the callbacks (after-cfg carries x0_hat there too)
        timesteps = _is_timesteps(denoiser)
        self.eps_space = (timesteps and not getattr(denoiser, "classic_ddim_eps_estimation", False)
                          and not _forge())
        self.family = ("timesteps path, eps converted to x0_hat" if self.eps_space else
                       "timesteps path, x0_hat from the host" if timesteps else "k-diffusion")
        sampler = getattr(denoiser, "sampler", None)
        self.sampler_name = (getattr(getattr(sampler, "config", None), "name", None)
                             or getattr(sampler, "funcname", None) or "?")
        self.run = run
        self.model = model = getattr(p, "sd_model", None)  # A1111: a property returning shared.sd_model
        ac = getattr(model, "alphas_cumprod", None)
        self.ac = ac.detach().float() if isinstance(ac, torch.Tensor) else None
        self.disabled = self.eps_space and self.ac is None
        if self.disabled:
            self.notes.append("DDIM-path sampler without alphas_cumprod: not observed")
        self.schedule = run.schedule_for(getattr(denoiser, "sampler", None), self.ac)
        config = run.args.config
        if self.schedule is None and not self.disabled:
            self.notes.append("no noise schedule recorded for this sampler: detection only")
            if config.mode == "mitigate":
                config = dataclasses.replace(config, mode="detect")
        total = getattr(denoiser, "steps", None)
        self.total = total if isinstance(total, int) and total > 0 else None
        self.mode = config.mode
        self.guard = run.new_guard(config, self.total)
        self._dev: dict = {}

    # ---------------------------------------------------------------- per model evaluation
    def on_denoiser(self, params) -> None:
        self.evaluations += 1
        self.main, self.armed = self.armed and not (self.disabled or self.finished), False
        if self.main:
            channels = params.x.shape[1] if params.x.dim() == 4 else None  # shape only: no device read
            if channels not in SUPPORTED_CHANNELS:  # SD3/Flux latents: say so instead of judging unchecked numbers
                self.disabled, self.main = True, False
                self.notes.append(unsupported_note(channels))
                self.run.unsupported = channels
                return
            if getattr(self.run.p, "sd_model", None) is not self.model:  # the SDXL refiner took over mid-pass
                self.model = getattr(self.run.p, "sd_model", None)
                self.notes.append(f"model switched at step {self.steps_seen} (refiner): judged with the first "
                                  f"model's profile")
            self.x, self.sigma = params.x, params.sigma  # references, no copies
            self.batch, self.n_cond = _rows(params.text_uncond), _rows(params.text_cond)
            self.gap = None

    def on_denoised(self, x_out, norm: str) -> None:
        """The Wen et al. cond gap, ||D_cond - D_uncond|| / sigma, where the host calls on_cfg_denoised (A1111)."""
        b = self.batch
        if not self.main or not b or self.n_cond != b or x_out.shape[0] != 2 * b:
            return  # AND prompts or edit models: cond rows are not 1:1 with images
        diff = flat_norm(x_out[:b] - x_out[b:], norm)
        self.gap = diff if self.eps_space else diff / self.sigma[-b:].float().clamp_min(1e-12)

    def on_after_cfg(self, out: torch.Tensor) -> torch.Tensor:
        self.main = False
        b = out.shape[0]
        x, s = self.x[-b:], self.sigma[-b:]
        if self.eps_space:  # A1111 DDIM/PLMS/UniPC: VP latent, timestep, eps
            ac = self._on(out.device, "ac", self.ac)[s.long().clamp(0, self.ac.shape[0] - 1)]
            sig = ((1 - ac) / ac).sqrt()
            xk = x.float() / ac.sqrt().view(-1, 1, 1, 1)
            den = xk - sig.view(-1, 1, 1, 1) * out.float()
        else:
            sig, xk, den = s.float(), x, out
        new = self.guard.observe(xk, den, sig, self._next_sigma(sig), self.gap)
        self.gap = None
        self.steps_seen += 1
        if new is den:
            return out
        if not self.eps_space:
            return new
        eps = (xk - new) / sig.clamp_min(1e-12).view(-1, 1, 1, 1)
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

    # ---------------------------------------------------------------- results
    def ident(self, row: int) -> tuple:
        if row < len(self.seeds) and row < len(self.subseeds):
            return (self.seeds[row], self.subseeds[row])
        return (-1, row)


class Run:
    def __init__(self, p, args, profile, profile_name: str, job: str):
        self.p = p  # held: the id(p) key must not be reused while the entry exists
        self.args, self.profile, self.profile_name, self.job = args, profile, profile_name, job
        self.passes: list[Pass] = []
        self.current: Pass | None = None
        self.schedules: dict[int, tuple] = {}  # id(sampler) -> (sampler, kind, tensor)
        self.results = Results()
        self.results.finalize = self.finalize
        self.results.owner = self
        self.verdicts: list[tuple] = []  # (ident, prefix, Verdict) for plots
        self.logged = False
        self.verbosity = "errors"
        self.unsupported = None  # latent channels of a model family the guard does not support, once seen
        self.sampling_starts: dict[tuple, int] = {}  # (iteration, hires) -> process_before_every_sampling calls

    def new_guard(self, config, steps):
        """The per-pass observer: a Guard here; calibration records instead (memstab_webui.calibrate)."""
        return Guard(self.profile, config, steps=steps)

    # ---------------------------------------------------------------- host events
    def record_schedule(self, sampler, values, kind: str) -> None:
        try:
            self.schedules[id(sampler)] = (sampler, kind, torch.as_tensor(values).detach())
        except Exception as e:
            self.fail(e, "recording the schedule")

    def schedule_for(self, sampler, ac) -> torch.Tensor | None:
        """The sampler's noise levels, ascending, float32 (sigmas, or the timesteps' sigmas)."""
        hit = self.schedules.get(id(sampler))
        if hit is None or hit[0] is not sampler:
            return None
        _, kind, t = hit
        if kind == "timesteps":
            if ac is None:
                return None
            if t.device != ac.device:
                ac = ac.to(t.device)
            a = ac[t.long().clamp(0, ac.shape[0] - 1)]  # lib_memstab.timestep_sigma, without its .to()
            t = ((1 - a) / a).sqrt()
        return torch.sort(t.float().reshape(-1)).values

    def pass_for(self, denoiser) -> Pass:
        cur = self.current
        if cur is not None and cur.denoiser is denoiser:
            return cur
        it = getattr(self.p, "iteration", 0)
        index = sum(1 for q in self.passes if q.iteration == it)
        cur = Pass(self, denoiser, index)
        self.passes.append(cur)
        self.current = cur
        return cur

    def on_denoiser(self, params, denoiser) -> None:
        self.pass_for(denoiser).on_denoiser(params)

    def on_denoised(self, params) -> None:
        cur = self.current
        if cur is not None and cur.main:
            cur.on_denoised(params.x, self.profile.norm)

    def on_after_cfg(self, params) -> None:
        cur = self.current
        if cur is not None and cur.main:
            params.x = cur.on_after_cfg(params.x)

    def on_sampler_callback(self, sampler, d) -> None:
        """One sampler step: arms the next model evaluation as the step's main one.

        Two routes deliver it: our wrapper of ``Sampler.callback_state`` (every host) and, on reForge, the Script hook
        ``process_before_every_step``, which reForge calls at the top of that same callback_state, with the same ``d``.
        A step counts once: the second delivery of one ``d`` (same object) is ignored, whichever route comes first."""
        cur = self.current
        if cur is None or getattr(cur.denoiser, "sampler", sampler) is not sampler or d is cur.last_d:
            return
        cur.last_d = d
        cur.callbacks += 1
        cur.armed = True

    def on_step(self, d) -> None:
        """reForge's process_before_every_step(p, d=d): the step of p's current sampler."""
        cur = self.current
        if cur is not None:
            self.on_sampler_callback(getattr(cur.denoiser, "sampler", None), d)

    def on_sampling_start(self) -> None:
        """process_before_every_sampling: counted per (batch, pass kind) for the debug log, nothing else. Forge calls
        it three times for txt2img + hires (once, then twice before the hires pass); passes are keyed on the CFG
        denoiser, so repeated calls create no state."""
        key = (getattr(self.p, "iteration", 0), bool(getattr(self.p, "is_hr_pass", False)))
        self.sampling_starts[key] = self.sampling_starts.get(key, 0) + 1

    # ---------------------------------------------------------------- failures
    def fail(self, exc: BaseException, where: str) -> None:
        """Log once per run with the traceback; note it on the images of the pass; that pass stops observing."""
        msg = f"error: {type(exc).__name__}: {exc}"
        if not self.logged:
            self.logged = True
            report(f"[MemStab] {where} failed; the image will finish without the guard for this pass", exc)
        cur = self.current
        if cur is not None and not cur.finished:
            cur.disabled, cur.main, cur.error = True, False, msg
        elif msg not in self.results.job_notes:
            self.results.job_notes.append(msg)

    def release(self) -> None:
        """After the job: keep the results (Processed.infotext may render again later), drop what holds the host's
        samplers and tensors alive (p keeps this run reachable through its infotext values)."""
        self.finalize()
        self.results.finalize = None
        for q in self.passes:
            q.denoiser = q.model = None
        self.schedules.clear()
        self.current = None

    def note_interrupted(self) -> None:
        for q in self.passes:
            if not q.finished:
                q.notes.append("interrupted")

    # ---------------------------------------------------------------- verdicts (the one host read)
    def finalize(self) -> None:
        for q in self.passes:
            if q.finished:
                continue
            q.finished = True
            try:
                verdicts = q.guard.verdicts() if q.guard is not None else []
            except Exception as e:
                verdicts = []
                q.error = q.error or f"error: {type(e).__name__}: {e}"
                if not self.logged:
                    self.logged = True
                    report("[MemStab] reading the verdicts failed", e)
            q.guard = None  # frees the device buffers
            q.x = q.sigma = q.gap = q.last_d = None
            q._dev.clear()
            rows = set()
            for v in verdicts:
                ident = q.ident(v.image)
                rows.add(v.image)
                prefix = prefix_for(q.index, q.hires, v.segment)
                tail = prefix[len("MemStab"):].strip()
                line = f"{ident[0]}{' ' + tail if tail else ''}: {v.summary()}"
                self.results.add(ident, v.to_infotext(prefix), line)
                self.verdicts.append((ident, prefix, v))
                if self.verbosity in ("verdicts", "debug"):
                    print(f"[MemStab] seed {line}")
            notes = q.notes + ([q.error] if q.error else [])
            if self.verbosity == "debug":
                print(self.debug_line(q, notes))
            if notes:
                for row in range(max(len(q.seeds), max(rows, default=-1) + 1)):
                    self.results.add(q.ident(row), {NOTE_KEY: "; ".join(notes)})


    def debug_line(self, q: Pass, notes: list) -> str:
        """The debug log's summary of one pass, from counters kept as Python ints (nothing read from a device)."""
        starts = self.sampling_starts.get((q.iteration, q.hires))
        prof = self.profile
        return (f"[MemStab] debug: batch {q.iteration + 1}, pass {q.index + 1}{' (hires)' if q.hires else ''}: "
                f"sampler {q.sampler_name} ({q.family}{', Forge/reForge' if _forge() else ''}); "
                f"{q.steps_seen} steps observed of {q.total if q.total is not None else '?'}, {q.callbacks} sampler "
                f"callbacks, {q.evaluations} model evaluations"
                + (f", process_before_every_sampling x{starts}" if starts else "")
                + f"; profile {self.profile_name}"
                + (f" ({prof.axis}, {len(prof.grid)} points)" if prof is not None and hasattr(prof, "grid") else "")
                + f", mode {q.mode}, schedule {'recorded' if q.schedule is not None else 'not recorded'}"
                + (f"; {'; '.join(notes)}" if notes else ""))


def report(message: str, exc: BaseException | None = None) -> None:
    """The host's error reporter (prints the message and traceback) where there is one."""
    try:
        from modules import errors

        if exc is not None:
            try:
                raise exc
            except BaseException:
                errors.report(message, exc_info=True)
        else:
            errors.report(message)
        return
    except ImportError:
        pass
    print(message, file=sys.stderr)
    if exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def purge_stale(job: str) -> None:
    """Drop runs of other jobs (a crashed job never reached postprocess); keep this job's nested runs (ADetailer)."""
    for k in [k for k, r in RUN.items() if r.job != job]:
        del RUN[k]

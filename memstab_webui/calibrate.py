"""Calibrate the loaded model from the webui: reference generations through the host's own
``modules.processing.process_images`` (a txt2img p built from the user's sampler, steps, size and CFG), each watched
by a lib_memstab.Recorder through the same step identification the guard uses (a run.Run whose observer factory
makes recorders, registered like a guarded job), then lib_memstab.run_calibration builds the profile and
ProfileStore saves it.

Our guard is off for these runs (p carries no scripts, so no script of ours or anyone else's runs); the recorder is
the only observer. Progress goes through shared.state (job_count / job_no / textinfo, the host's sampling step), the
webui's Interrupt button stops it (shared.state.interrupted), and nothing is written unless every generation ran.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from lib_memstab import (
    DEFAULT_REFERENCE_PROMPTS,
    MAX_GENERATIONS,
    MAX_PROMPTS,
    MAX_SEEDS,
    ORIGIN_CALIBRATION,
    CalibrationInterrupted,
    ProfileError,
    check_name,
    make_meta,
    profile_name,
    read_prompts,
    run_calibration,
)
from lib_memstab.text import brief

from . import family, profiles
from .log import report
from .registry import Registration
from .run import Run

DEFAULTS = {"n_prompts": 50, "seeds": [0], "sampler": "Euler", "steps": 20, "cfg_scale": 7.0, "width": 512,
            "height": 512}
SDXL_SIZE = 1024
SEED_STRIDE = 1000  # generation for prompt i and seed s uses seed s + 1000 i: every prompt gets its own noise
RECORDER_NORM = "rms"  # lib_memstab.Recorder.build_profile's default norm: the cond gap is measured in it
# What a request may carry (with lib_memstab's MAX_PROMPTS, MAX_SEEDS and MAX_GENERATIONS): checked before any work.
BOUNDS = {"n_prompts": (1, MAX_PROMPTS), "seeds": (1, MAX_SEEDS), "steps": (1, 500), "width": (64, 4096),
          "height": (64, 4096), "cfg_scale": (0, 100), "sampler": 100, "prompts_file": 4096, "name": 100,
          "exclude": (100, 1000)}  # exclude: at most 100 prompts of at most 1000 characters
KEYS = ("prompts_file", "n_prompts", "seeds", "sampler", "steps", "cfg_scale", "width", "height", "name", "exclude")
_LOCAL_LOCK = threading.Lock()


class CalibrationError(ValueError):
    """Bad input or a model that cannot be calibrated; the message says what to do."""


@dataclasses.dataclass
class Request:
    prompts_file: str | None = None
    n_prompts: int = DEFAULTS["n_prompts"]
    seeds: list = dataclasses.field(default_factory=lambda: list(DEFAULTS["seeds"]))
    sampler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    name: str | None = None
    exclude: list = dataclasses.field(default_factory=list)  # reference prompts to leave out (the report's advice)


@dataclasses.dataclass
class Report:
    name: str
    path: Path
    generations: int
    outliers: list  # (prompt, max |z|)
    description: str
    profile: object
    settings: dict
    setters: list = dataclasses.field(default_factory=list)  # lib_memstab.calibration.ThresholdSetter
    left_out: tuple = (0, 0)  # (reference prompts left out as asked, prompts asked for that the file does not hold)

    def markdown(self) -> str:
        s = self.settings
        lines = [f"**Calibrated** `{self.name}` from {self.generations} reference generations "
                 f"({s['sampler']}, {s['steps']} steps, CFG {s['cfg_scale']:g}, {s['width']}x{s['height']}).",
                 f"Profile: {self.description}. Saved to `{self.path}`; **automatic** now picks it for this "
                 f"checkpoint with any sampler and step count."]
        if any(self.left_out):
            lines[-1] += (f" {self.left_out[0]} reference prompt(s) left out as asked, the next ones in the file in "
                          "their place" + (f"; {self.left_out[1]} of the prompts to leave out are not in the file"
                                           if self.left_out[1] else "") + ".")
        if self.outliers:
            lines.append(f"{len(self.outliers)} reference prompt(s) left their own region (a memorized prompt in "
                         "the reference set, or an unusual one); the robust statistics kept them from widening it:")
            lines += [f"- z {z:.1f}: {p}" for p, z in self.outliers]
        else:
            lines.append("No reference prompt left the region.")
        text = "\n\n".join(lines[:3]) + ("\n" + "\n".join(lines[3:]) if len(lines) > 3 else "")
        if not self.setters:
            return text
        rows = ["Who sets the thresholds (the highest reference scores, each judged without itself; default rates):"]
        for t in self.setters:
            who = "; ".join(f"{_shown(p)} ({v:.2f})" for p, v in t.set_by)
            rest = f"; the highest other prompt: {t.next:.2f}" if t.next is not None else ""
            rows.append(f"- {t.threshold} {t.value:.2f}: {who}{rest}")
        rows.append("One prompt far above the rest holds that threshold up for every image. If it is unlike what you "
                    "generate, or listed above, replace it and calibrate again; prompts like it will then be flagged.")
        return text + "\n\n" + "\n".join(rows)

    def to_json(self) -> dict:
        return {"name": self.name, "file": self.path.name, "generations": self.generations,
                "outliers": [{"prompt": p, "z": round(z, 2)} for p, z in self.outliers],
                "threshold_setters": [{"threshold": t.threshold, "value": round(t.value, 3),
                                       "set_by": [{"prompt": p, "score": round(v, 3)} for p, v in t.set_by],
                                       "next": None if t.next is None else round(t.next, 3)} for t in self.setters],
                "profile": self.description, "meta": self.profile.meta}


SHOWN_PROMPT = 100  # characters of a reference prompt shown in the report


def _shown(prompt) -> str:
    """A reference prompt as the report shows it: cut short, backticks and newlines dropped (markdown)."""
    p = " ".join(str(prompt if prompt is not None else "?").replace("`", "'").split())
    return f"`{p if len(p) <= SHOWN_PROMPT else p[:SHOWN_PROMPT - 1] + '…'}`"


# ------------------------------------------------------------------------------------------------ input
def parse_request(d, opts=None) -> Request:
    """The API's JSON (or the UI's values) -> Request; raises CalibrationError naming the bad field and its bound.
    Every bound (BOUNDS, and lib_memstab's MAX_PROMPTS / MAX_SEEDS / MAX_GENERATIONS) is checked here, before any
    work or allocation; a bad value is quoted cut short, never whole."""
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise CalibrationError(f"the request must be a JSON object; got {type(d).__name__}")
    unknown = [k for k in d if k not in KEYS]
    if unknown:
        shown = ", ".join(brief(k, 40) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5
                                                                 else "")
        raise CalibrationError(f"unknown key(s) {shown}; known: {', '.join(KEYS)}")
    data = getattr(opts, "data", None) or {}
    r = Request(n_prompts=_int(data.get("memstab_calib_prompts", DEFAULTS["n_prompts"]), "n_prompts"))
    r.seeds = list(range(_int(data.get("memstab_calib_seeds", 1), "seeds")))
    for k in ("n_prompts", "steps", "width", "height"):
        if d.get(k) is not None:
            setattr(r, k, _int(d[k], k))
    for k in ("width", "height"):
        v = getattr(r, k)
        if v is not None and v % 8:
            raise CalibrationError(f"{k} must be a multiple of 8; got {v}")
    if d.get("cfg_scale") is not None:
        r.cfg_scale = _number(d["cfg_scale"], "cfg_scale")
    if d.get("seeds") is not None:
        r.seeds = _seeds(d["seeds"])
    total = r.n_prompts * len(r.seeds)
    if total > MAX_GENERATIONS:
        raise CalibrationError(f"{r.n_prompts} prompts x {len(r.seeds)} seeds is {total} generations; at most "
                               f"{MAX_GENERATIONS}")
    for k in ("sampler", "prompts_file", "name"):
        v = d.get(k)
        if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > BOUNDS[k] or "\0" in v):
            raise CalibrationError(f"{k} must be a non-empty string of at most {BOUNDS[k]} characters (no NUL); "
                                   f"got {brief(v)}")
        if v is not None:
            setattr(r, k, v if k == "name" else v.strip())  # a name is checked as given: "x\n" is not "x"
    if r.name is not None:
        try:
            check_name(r.name)
        except ProfileError as e:
            raise CalibrationError(str(e)) from None
    if r.prompts_file is not None and not r.prompts_file.lower().endswith(".txt"):
        raise CalibrationError(f"prompts_file must be a .txt file (one prompt per line); got {brief(r.prompts_file)}")
    if d.get("exclude") is not None:
        r.exclude = _exclude(d["exclude"])
    return r


def _exclude(v) -> list[str]:
    """Reference prompts to leave out: a list of strings, or one string with a prompt per line (the panel's box),
    each compared after stripping, as the prompt file is read."""
    most, longest = BOUNDS["exclude"]
    if isinstance(v, str):
        if len(v) > most * (longest + 1):
            raise CalibrationError(f"exclude must hold at most {most} prompts of at most {longest} characters")
        v = v.splitlines()
    if not isinstance(v, list) or len(v) > most or not all(isinstance(p, str) for p in v):
        raise CalibrationError(f"exclude must be a list of at most {most} prompts (strings); got {brief(v)}")
    out = [p.strip() for p in v if p.strip()]
    if any(len(p) > longest or "\0" in p for p in out):
        raise CalibrationError(f"each prompt to leave out must be at most {longest} characters (no NUL)")
    return list(dict.fromkeys(out))


def _int(v, name) -> int:
    low, high = BOUNDS[name]
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        v = int(v)  # gradio's Number gives floats
    if isinstance(v, bool) or not isinstance(v, int) or not (low <= v <= high):
        raise CalibrationError(f"{name} must be a whole number in [{low}, {high}]; got {brief(v)}")
    return v


def _number(v, name) -> float:
    low, high = BOUNDS[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not low < v <= high:  # exact: no float() overflow
        raise CalibrationError(f"{name} must be a number in ({low:g}, {high:g}]; got {brief(v)}")
    return float(v)


def _seeds(v) -> list[int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return list(range(_int(v, "seeds")))
    if isinstance(v, list) and 0 < len(v) <= MAX_SEEDS and all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in v):
        return list(dict.fromkeys(v))
    raise CalibrationError(f"seeds must be a count in [1, {MAX_SEEDS}] or a list of at most {MAX_SEEDS} seeds in "
                           f"[0, 2**31); got {brief(v)}")


EXTENSION_DIR = Path(__file__).resolve().parents[1]


def check_remote_prompts_file(r: Request, opts) -> None:
    """Over HTTP a caller may name only the prompt file set in Settings or one inside the extension folder: the route
    must not read arbitrary files on the server (outlier prompts are echoed back in the response)."""
    if r.prompts_file is None:
        return
    path = Path(r.prompts_file).expanduser().resolve()
    configured = (getattr(opts, "data", None) or {}).get("memstab_reference_prompts") or ""
    allowed = path.is_relative_to(EXTENSION_DIR) or (
        str(configured).strip() and path == Path(configured).expanduser().resolve())
    if not allowed:
        raise CalibrationError("over the API, prompts_file must be the reference prompt file set in Settings or a "
                               f"file inside the extension folder ({EXTENSION_DIR}); got {brief(r.prompts_file)}")


def reference_prompts(r: Request, opts) -> tuple[list[str], str, tuple[int, int]]:
    """The first ``n_prompts`` of the file once ``exclude`` is taken out (so the next prompts take the places of those
    left out), where they come from, and (prompts left out, prompts to leave out that the file does not hold)."""
    src = r.prompts_file or (getattr(opts, "data", None) or {}).get("memstab_reference_prompts") or ""
    path = Path(src).expanduser() if str(src).strip() else DEFAULT_REFERENCE_PROMPTS
    try:
        prompts = read_prompts(path)
    except ProfileError as e:
        raise CalibrationError(str(e)) from None
    drop = set(r.exclude)
    kept = [p for p in prompts if p not in drop]
    if not kept:
        raise CalibrationError("every reference prompt is in exclude: nothing is left to calibrate on")
    found = len(drop & set(prompts))
    return (kept[:r.n_prompts], "shipped" if path == DEFAULT_REFERENCE_PROMPTS else str(path),
            (len(prompts) - len(kept), len(drop) - found))


# ------------------------------------------------------------------------------------------------ recording
class _Recording:
    """A pass's observer during calibration: the recorder sees every main evaluation, the output is never changed."""

    def __init__(self, observe):
        self.observe = observe

    def verdicts(self):
        return []


def recorder_observers(observe):
    """The observer factory of a calibration run: every pass records through ``observe`` (the same step
    identification as the guard's)."""
    return lambda steps, can_mitigate: _Recording(observe)


# ------------------------------------------------------------------------------------------------ the job
def settings_for(r: Request, model) -> dict:
    """The user's settings where given, else defaults (SDXL's default size is 1024)."""
    size = SDXL_SIZE if getattr(model, "is_sdxl", False) is True else DEFAULTS["width"]
    return {"sampler": r.sampler or DEFAULTS["sampler"], "steps": r.steps or DEFAULTS["steps"],
            "cfg_scale": r.cfg_scale if r.cfg_scale is not None else DEFAULTS["cfg_scale"],
            "width": r.width or size, "height": r.height or size}


def _queue_lock():
    try:
        from modules.call_queue import queue_lock  # generations and calibration never run at the same time

        return queue_lock
    except (ImportError, AttributeError):
        return _LOCAL_LOCK


class Task:
    """The browser's progress bar for one click, as A1111's wrap_gradio_gpu_call drives it (modules.progress): the page
    made a "task(...)" id and polls /internal/progress with it; the task is queued on arrival, started once the queue
    lock is held, and finished whatever happens (else the page would wait for its 40 s inactivity timeout). Any other
    id (no javascript, the API) or a host without modules.progress: nothing. Never raises."""

    def __init__(self, id_task=None):
        ok = isinstance(id_task, str) and id_task.startswith("task(") and id_task.endswith(")")
        self.id = id_task if ok else None
        self.progress = None
        if self.id is not None:
            try:
                from modules import progress

                self.progress = progress
            except ImportError:
                self.id = None

    def _call(self, name) -> None:
        if self.id is not None:
            try:
                getattr(self.progress, name)(self.id)
            except Exception:
                pass

    def queued(self) -> None:
        self._call("add_task_to_queue")

    def start(self) -> None:
        self._call("start_task")

    def finish(self) -> None:
        self._call("finish_task")


def calibrate(r: Request, opts=None, task: Task | None = None) -> Report:
    """Run the reference generations and save the profile. Raises CalibrationError (bad input, unsupported model,
    unwritable folder), CalibrationInterrupted (nothing written) or ProfileError. ``task``: started once the queue
    lock is held (the caller queues and finishes it)."""
    from modules import processing, sd_samplers, shared

    opts = opts if opts is not None else shared.opts
    model = shared.sd_model
    if model is None:
        raise CalibrationError("no model is loaded")
    why = family.unsupported(model)
    if why is not None:
        raise CalibrationError(f"cannot calibrate: {why}")
    s = settings_for(r, model)
    samplers = getattr(sd_samplers, "all_samplers_map", None)
    if isinstance(samplers, dict) and s["sampler"] not in samplers:
        raise CalibrationError(f"unknown sampler {s['sampler']!r}; available: {', '.join(samplers)}")
    for k in ("width", "height"):
        if s[k] % 8:
            raise CalibrationError(f"{k} must be a multiple of 8; got {s[k]}")
    store = profiles.store(opts)
    try:
        if r.name is not None:
            store.path_for(r.name)
        profiles.check_writable(store.folder)  # before the long run, not after it
    except ProfileError as e:
        raise CalibrationError(str(e)) from None
    prompts, source, left_out = reference_prompts(r, opts)
    meta = make_meta(origin=ORIGIN_CALIBRATION, **s, seeds=list(r.seeds), seed_stride=SEED_STRIDE,
                     prompts_source=source, **({"prompts_left_out": left_out[0]} if left_out[0] else {}))
    measured = MeasuredModel()
    state = shared.state
    with _queue_lock():
        state.begin(job="memstab_calibrate")
        if task is not None:
            task.start()
        try:
            state.job_count = len(prompts) * len(r.seeds)
            result = run_calibration(_generate(processing, state, s, len(r.seeds), measured), prompts,
                                     list(r.seeds), should_stop=lambda: bool(state.interrupted or state.skipped),
                                     progress=lambda k, n: _progress(state, k, n), meta=meta)
        finally:
            state.end()
            tq = getattr(shared, "total_tqdm", None)  # the console's "Total progress": not carried into the next job
            if tq is not None and callable(getattr(tq, "clear", None)):
                tq.clear()
    result.profile.meta.update(measured.identity)  # the model the reference generations ran on
    name = r.name or profile_name(measured.identity["model"], measured.identity["model_hash"])
    path = store.save(result.profile, name)
    outliers = [(label or "?", z) for _, label, z in result.outliers]
    return Report(name, path, result.generations, outliers, result.profile.describe(), result.profile, s,
                  result.setters, left_out)


class MeasuredModel:
    """The checkpoint the reference generations really ran on, taken from each generation's own ``p.sd_model``
    (Forge keeps a placeholder in shared.sd_model until the first generation loads the real model, and after a
    checkpoint switch the old one until the next generation). A profile is never labelled with a model the host
    cannot identify, nor with one of two models."""

    def __init__(self):
        self.identity: dict = {}

    def check(self, model) -> None:
        ident = {"model": family.model_name(model), "model_hash": family.short_hash(model),
                 "latent_channels": family.latent_channels(model), "latent_scale": family.latent_scale(model)}
        why = family.unsupported(model)
        if why is not None:
            raise CalibrationError(f"cannot calibrate: {why}")
        if model is None or ident["model_hash"] is None or ident["latent_scale"] is None:
            raise CalibrationError("cannot tell which checkpoint was measured (the host gave no hash or latent "
                                   "scale for the model the reference generation ran on); nothing was written. "
                                   "Generate one image with the checkpoint, then calibrate again")
        if self.identity and ident != self.identity:
            raise CalibrationError(f"the checkpoint changed during calibration (from {self.identity['model']} to "
                                   f"{ident['model']}); nothing was written")
        self.identity = ident


def _progress(state, k, n):
    state.job_no = k
    state.textinfo = f"MemStab calibration: {k}/{n} reference generations"


def _no_scripts():
    """An empty script runner, so that no script (ours included) runs in a reference generation. None would do on
    A1111 and Forge, but reForge's processing reads ``p.scripts.alwayson_scripts`` without checking for None (seen
    in a real reForge: every calibration failed)."""
    try:
        from modules import scripts as host_scripts

        return host_scripts.ScriptRunner()
    except Exception:  # a host whose runner needs arguments: None, as A1111 and Forge accept
        return None


def _generate(processing, state, s, n_seeds, measured: MeasuredModel):
    count = [0]

    def generate(prompt, seed, observe):
        k = count[0]
        count[0] += 1
        p = processing.StableDiffusionProcessingTxt2Img(
            prompt=prompt, negative_prompt="", seed=int(seed) + SEED_STRIDE * (k // n_seeds), steps=s["steps"],
            cfg_scale=s["cfg_scale"], sampler_name=s["sampler"], width=s["width"], height=s["height"], batch_size=1,
            n_iter=1)
        for attr in ("do_not_save_samples", "do_not_save_grid"):
            setattr(p, attr, True)
        p.scripts, p.script_args = _no_scripts(), []  # our guard and every other script stay out of reference runs
        state.job = f"MemStab calibration {k + 1}/{state.job_count}"
        run = Run(p, state.job_timestamp, recorder_observers(observe), RECORDER_NORM, "calibration")
        try:
            with Registration(run):
                processing.process_images(p)
        except Exception as e:  # the model's fault, not ours (seen: the webui's NaN check on a random checkpoint)
            if state.interrupted or state.skipped:
                raise CalibrationInterrupted(f"calibration interrupted during generation {k + 1}; no profile was "
                                             "written") from None
            msg = (f"reference generation {k + 1} ({brief(prompt)}) failed in the webui: {type(e).__name__}: "
                   f"{brief(str(e), 200)}; nothing was written")
            report(f"[MemStab] calibration: {msg}")
            raise CalibrationError(msg) from None
        measured.check(getattr(p, "sd_model", None))
        if run.unsupported is not None:
            raise CalibrationError(f"cannot calibrate: {family.unsupported_note(run.unsupported)}")
        if run.failure:
            raise CalibrationError(f"recording failed ({run.failure}); nothing was written")
        if state.interrupted or state.skipped:  # the last generation too: a partial trajectory is never used
            raise CalibrationInterrupted(f"calibration interrupted during generation {k + 1}; no profile was "
                                         "written")
        return p

    return generate

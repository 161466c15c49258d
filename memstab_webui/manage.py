"""What the "Calibration and profiles" panel and the API routes do, as plain functions (no gradio, no FastAPI):
calibrate, the loaded model's status, list, delete, import, export. Every failure becomes a sentence; nothing here
raises into the host."""

from __future__ import annotations

from pathlib import Path

from lib_memstab import CalibrationInterrupted, ProfileError

from . import calibrate as cal
from . import family, plot, profiles
from .knobs import BY_NAME
from .log import report

GAMMA = BY_NAME["gamma"]


def _shared():
    from modules import shared

    return shared


def status(opts=None) -> str:
    """One line about the loaded model: which profile automatic uses, or why there is none."""
    try:
        shared = _shared()
        opts = opts if opts is not None else shared.opts
        model = shared.sd_model
        if model is None:
            return "No model is loaded yet."
        what = f"`{family.model_name(model)}` (hash {family.short_hash(model) or 'unknown'})"
        why = family.unsupported(model)
        if why is not None:
            return f"Loaded model {what}: {why}."
        hit, note, _ = profiles.automatic(model, opts)
        if hit is None:
            return (f"Loaded model {what}: **not calibrated**, detection is off. Press **Calibrate this model** "
                    "below (about a minute per 50 reference generations on a GPU).")
        return f"Loaded model {what}: automatic uses profile `{hit.name}` ({note or 'calibrated on this model'})."
    except Exception as e:
        return f"Status unavailable: {type(e).__name__}: {e}"


def calibrate_ui(n_prompts, n_seeds, settings: dict, opts=None, id_task=None, exclude=None):
    """(markdown report, band plot or None). ``settings``: the user's current sampler/steps/cfg_scale/width/height
    where the panel could see them; ``id_task``: the browser's progress task id (javascript/memstab_hints.js);
    ``exclude``: the panel's box of reference prompts to leave out, one per line."""
    task = cal.Task(id_task)
    task.queued()
    try:
        return _calibrate_ui(n_prompts, n_seeds, settings, opts, task, exclude)
    finally:
        task.finish()


def _calibrate_ui(n_prompts, n_seeds, settings, opts, task, exclude=None):
    try:
        shared = _shared()
        opts = opts if opts is not None else shared.opts
        req = {"n_prompts": n_prompts, "seeds": n_seeds,
               **{k: v for k, v in (settings or {}).items() if v is not None and k in cal.KEYS}}
        if exclude:
            req["exclude"] = exclude
        rep = cal.calibrate(cal.parse_request(req, opts), opts, task)
    except (cal.CalibrationError, ProfileError) as e:
        return f"**Calibration not done:** {e}", None
    except CalibrationInterrupted as e:
        return f"**Calibration stopped:** {e}", None
    except Exception as e:
        report("[MemStab] calibration failed", e)
        return f"**Calibration failed:** {type(e).__name__}: {e} (nothing was written)", None
    try:
        gamma = float((getattr(opts, "data", None) or {}).get(GAMMA.setting_key, GAMMA.default))
        image = plot.render_band(rep.profile, gamma, f"{rep.name}: calibrated stability region")
    except Exception as e:
        report("[MemStab] drawing the calibration plot failed", e)
        image = None
    return rep.markdown(), image


def listing(opts) -> list[dict]:
    out = []
    for sp in profiles.store(opts).list():
        prof = sp.profile
        out.append({"name": sp.name, "usable": prof is not None, "error": sp.error,
                    "meta": prof.meta if prof is not None else None,
                    "description": prof.describe() if prof is not None else None})
    return out


def delete(name, opts) -> str:
    try:
        profiles.store(opts).delete(_name(name))
        return f"Deleted profile `{name}`."
    except ProfileError as e:
        return f"**Not deleted:** {e}"


def export(name, opts) -> tuple[str, str]:
    try:
        return f"Profile `{name}` as JSON (save it as `{name}.json`):", profiles.store(opts).export_json(_name(name))
    except ProfileError as e:
        return f"**Not exported:** {e}", ""


def import_(text, file, name, opts) -> str:
    """From pasted JSON or an uploaded .json file; the name defaults to the file's stem. Validated before writing."""
    try:
        path = getattr(file, "name", file)  # gradio 3 gives a tempfile wrapper, gradio 4 a path
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ProfileError(f"cannot read the uploaded file: {e}") from None
            name = name or Path(getattr(file, "orig_name", None) or path).stem
        if not text or not str(text).strip():
            raise ProfileError("paste a profile's JSON or upload a .json file first")
        name = _name(name)
        profiles.check_writable(profiles.profile_dir(opts))
        profiles.store(opts).import_json(text, name)
        return f"Imported profile `{name}`."
    except ProfileError as e:
        return f"**Not imported:** {e}"


def _name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ProfileError("choose or type a profile name first")
    return name.strip()

"""The Script lifecycle: process (parse, resolve the profile, register the run), postprocess_batch (verdicts of the
batch before its images are saved), postprocess (summary, plots, unregister). Every entry point is guarded: a failure
is reported once and noted in the infotext, and generation goes on."""

from __future__ import annotations

from . import args as margs
from . import family, infotext, patches, plot, profiles
from .log import report
from .registry import RUN, Registration, own_run, purge_stale
from .run import Run, guard_observers


def _opts_state():
    from modules import shared

    return shared.opts, shared.state


def process(p, script_args) -> None:
    try:
        _process(p, script_args)
    except Exception as e:
        RUN.pop(id(p), None)
        report("[MemStab] setting up the guard failed; generating without it", e)
        p.extra_generation_params[infotext.ERROR_KEY] = f"error: {type(e).__name__}: {str(e)[:200]}"


def _process(p, script_args) -> None:
    opts, state = _opts_state()
    purge_stale(state.job_timestamp)
    RUN.pop(id(p), None)  # the same p run again (scripts that call process_images repeatedly)
    a = margs.parse(script_args, opts, p)
    quiet = opts.data.get("memstab_log", "errors") == "quiet"
    if a.errors:
        msg = "bad arguments: " + "; ".join(a.errors) + " (the guard did not run)"
        report(f"[MemStab] {msg}")
        p.extra_generation_params[infotext.ERROR_KEY] = msg
        patches.release_if_idle()
        return
    if not a.active or (getattr(p, "_ad_inner", False) and not opts.data.get("memstab_adetailer", False)):
        patches.release_if_idle()
        return
    egp = p.extra_generation_params
    why = family.unsupported(getattr(p, "sd_model", None))
    if why is not None:
        egp[infotext.NOTE_KEY] = why
        if not quiet:
            print(f"[MemStab] {why}")
        patches.release_if_idle()
        return
    prof, name, note = profiles.resolve(a.profile, p, opts)
    job = infotext.job_values(a.values, name)
    if prof is None:
        egp[infotext.NOTE_KEY] = note
        egp.update(job)
        if not quiet:
            print(f"[MemStab] {note}")
        patches.release_if_idle()
        return
    verbosity = opts.data.get("memstab_log", "errors")
    run = Run(p, state.job_timestamp, guard_observers(prof, a.config), prof.norm,
              f"{name} ({prof.axis}, {len(prof.grid)} points)", verbosity, args=a)
    if note:  # a profile of the same family stands in for this checkpoint's own, or automatic had to choose
        run.results.note_job(note)
    if a.config.verdict == "calibrated" and prof.lacks():
        fallback = "; the verdict uses tau_mild / tau_strong" if len(prof.reference_scores) < 2 else ""
        run.results.note_job(f"profile {name} has no {', '.join(prof.lacks())}{fallback}")
    Registration(run).open()
    infotext.publish(p, run.results, job)
    if verbosity == "debug":
        c = a.config
        print(f"[MemStab] debug: guarding job {state.job_timestamp} ({getattr(p, 'n_iter', 1)} x "
              f"{getattr(p, 'batch_size', 1)} images): profile {name}{f' ({note})' if note else ''}, mode {c.mode}, "
              f"tau_mild {c.tau_mild:g}, tau_strong {c.tau_strong:g}, gamma {c.gamma:g}, early window "
              f"{c.early_fraction:g}")


def before_every_sampling(p) -> None:
    """Script.process_before_every_sampling (A1111 >= 1.10: once per pass; Forge: three times with hires)."""
    run = own_run(p)
    if run is not None:
        try:
            run.on_sampling_start()
        except Exception as e:
            run.fail(e, "process_before_every_sampling")


def before_every_step(p, d) -> None:
    """reForge's Script.process_before_every_step(p, d=d), at the top of Sampler.callback_state: the same step our
    callback_state wrapper sees; Run.on_sampler_callback counts it once."""
    run = own_run(p)
    if run is not None and d is not None:
        try:
            run.on_step(d)
        except Exception as e:
            run.fail(e, "process_before_every_step")


def postprocess_batch(p) -> None:
    run = own_run(p)
    if run is None:
        return
    try:
        _, state = _opts_state()
        if state.interrupted or state.skipped:
            run.note_interrupted()
        run.finalize()
        infotext.publish(p, run.results)
    except Exception as e:
        run.fail(e, "postprocess_batch")


def postprocess(p, processed) -> None:
    run = own_run(p)
    try:
        if run is None:
            return
        Registration(run).close()
        infotext.publish(p, run.results)
        if run.args.plot and run.results.verdicts:
            _add_plots(run, processed)
    except Exception as e:
        if run is not None:
            run.fail(e, "postprocess")
            infotext.publish(p, run.results)
    finally:
        patches.release_if_idle()


def _add_plots(run, processed) -> None:
    images, texts = getattr(processed, "images", None), getattr(processed, "infotexts", None)
    if not isinstance(images, list) or not isinstance(texts, list):
        return
    c = run.args.config
    for (seed, _), prefix, v in run.results.verdicts:
        title = f"{prefix} stability plot, seed {seed}: {v.summary()}"
        images.append(plot.render(v, c.gamma, c.tau_mild, title))
        texts.append(title)

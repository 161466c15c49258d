"""The Script lifecycle: process (parse, resolve the profile, register the run), postprocess_batch (verdicts of the
batch before its images are saved), postprocess (summary, plots, unregister). Every entry point is guarded: a failure
is reported once and noted in the infotext, and generation goes on."""

from __future__ import annotations

from . import args as margs
from . import family, infotext, patches, plot, profiles
from .run import RUN, Run, purge_stale, report


def _opts_state():
    from modules import shared

    return shared.opts, shared.state


def process(p, script_args) -> None:
    try:
        _process(p, script_args)
    except Exception as e:
        RUN.pop(id(p), None)
        report("[MemStab] setting up the guard failed; generating without it", e)
        p.extra_generation_params[infotext.ERROR_KEY] = f"error: {type(e).__name__}: {e}"


def _process(p, script_args) -> None:
    opts, state = _opts_state()
    purge_stale(state.job_timestamp)
    RUN.pop(id(p), None)  # the same p run again (scripts that call process_images repeatedly)
    a = margs.parse(script_args, opts, p)
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
        if opts.data.get("memstab_log", "errors") != "quiet":
            print(f"[MemStab] {why}")
        patches.release_if_idle()
        return
    prof, name, note = profiles.resolve(a.profile, p, opts)
    egp.update(infotext.job_values(a, name))
    if prof is None:
        egp[infotext.NOTE_KEY] = note
        if opts.data.get("memstab_log", "errors") != "quiet":
            print(f"[MemStab] {note}")
        patches.release_if_idle()
        return
    run = Run(p, a, prof, name, state.job_timestamp)
    run.verbosity = opts.data.get("memstab_log", "errors")
    if note:  # a profile of the same family stands in for this checkpoint's own
        run.results.job_notes.append(note)
    RUN[id(p)] = run
    patches.install()
    infotext.publish(p, run.results)
    if run.verbosity == "debug":
        c = a.config
        print(f"[MemStab] debug: guarding job {state.job_timestamp} ({getattr(p, 'n_iter', 1)} x "
              f"{getattr(p, 'batch_size', 1)} images): profile {name}{f' ({note})' if note else ''}, mode {c.mode}, "
              f"tau_mild {c.tau_mild:g}, tau_strong {c.tau_strong:g}, gamma {c.gamma:g}, early window "
              f"{c.early_fraction:g}")


def _own_run(p):
    run = RUN.get(id(p)) if RUN else None
    return run if run is not None and run.p is p else None


def before_every_sampling(p) -> None:
    """Script.process_before_every_sampling (A1111 >= 1.10: once per pass; Forge: three times with hires)."""
    run = _own_run(p)
    if run is not None:
        try:
            run.on_sampling_start()
        except Exception as e:
            run.fail(e, "process_before_every_sampling")


def before_every_step(p, d) -> None:
    """reForge's Script.process_before_every_step(p, d=d), at the top of Sampler.callback_state: the same step our
    callback_state wrapper sees; Run.on_sampler_callback counts it once."""
    run = _own_run(p)
    if run is not None and d is not None:
        try:
            run.on_step(d)
        except Exception as e:
            run.fail(e, "process_before_every_step")


def postprocess_batch(p) -> None:
    run = RUN.get(id(p))
    if run is None or run.p is not p:
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
    run = RUN.pop(id(p), None)
    try:
        if run is None or run.p is not p:
            return
        run.release()
        infotext.publish(p, run.results)
        if run.args.plot and run.verdicts:
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
    for (seed, _), prefix, v in run.verdicts:
        title = f"{prefix} stability plot, seed {seed}: {v.summary()}"
        images.append(plot.render(v, c.gamma, c.tau_mild, title))
        texts.append(title)

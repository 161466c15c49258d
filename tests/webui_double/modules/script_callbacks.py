"""Callback registration and dispatch as in A1111 1.10 (host-api.md 1.1-1.2): one argument, return ignored, every
callback wrapped in try/except -> errors.report, and an ordered-callbacks cache that removal must purge."""

import os
import sys
from collections import namedtuple

from modules import errors

ScriptCallback = namedtuple("ScriptCallback", ["script", "callback", "name"])


class CFGDenoiserParams:
    def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond,
                 denoiser=None):
        self.x, self.image_cond, self.sigma = x, image_cond, sigma
        self.sampling_step, self.total_sampling_steps = sampling_step, total_sampling_steps
        self.text_cond, self.text_uncond, self.denoiser = text_cond, text_uncond, denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x, self.sampling_step, self.total_sampling_steps, self.inner_model = (x, sampling_step,
                                                                                   total_sampling_steps, inner_model)


class AfterCFGCallbackParams:
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x, self.sampling_step, self.total_sampling_steps = x, sampling_step, total_sampling_steps


CATEGORIES = ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg", "ui_settings", "before_ui", "script_unloaded",
              "infotext_pasted", "app_started")
callback_map = {f"callbacks_{c}": [] for c in CATEGORIES}
ordered_callbacks_map: dict = {}


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None):
    if filename is None:
        filename = _caller_file()
    base = f"{os.path.basename(filename)}/{category}" + (f"/{name}" if name else "")
    unique, n = base, 1
    while any(c.name == unique for c in callbacks):
        unique, n = f"{base}-{n}", n + 1
    callbacks.append(ScriptCallback(filename, fun, unique))
    ordered_callbacks_map.clear()


def ordered_callbacks(category):
    if category not in ordered_callbacks_map:
        ordered_callbacks_map[category] = list(callback_map[f"callbacks_{category}"])
    return ordered_callbacks_map[category]


def report_exception(c, job):
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def _dispatch(category, *args):
    for c in ordered_callbacks(category):
        try:
            c.callback(*args)
        except Exception:
            report_exception(c, f"{category}_callback")


def cfg_denoiser_callback(params):
    _dispatch("cfg_denoiser", params)


def cfg_denoised_callback(params):
    _dispatch("cfg_denoised", params)


def cfg_after_cfg_callback(params):
    _dispatch("cfg_after_cfg", params)


def ui_settings_callback():
    _dispatch("ui_settings")


def before_ui_callback():
    _dispatch("before_ui")


def app_started_callback(demo, app):
    for c in ordered_callbacks("app_started"):
        try:
            c.callback(demo, app)
        except Exception:
            report_exception(c, "app_started_callback")


def script_unloaded_callback():
    _dispatch("script_unloaded")


def _caller_file():
    """The first file on the stack that is not this one (the host uses inspect.stack(), same answer, slower)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename == __file__:
        f = f.f_back
    return f.f_code.co_filename if f is not None else "unknown file"


def remove_current_script_callbacks():
    filename = _caller_file()
    for cbs in callback_map.values():
        cbs[:] = [c for c in cbs if c.script != filename]
    ordered_callbacks_map.clear()


def remove_callbacks_for_function(callback_func):
    for cbs in callback_map.values():
        cbs[:] = [c for c in cbs if c.callback != callback_func]
    ordered_callbacks_map.clear()


def clear_callbacks():
    for cbs in callback_map.values():
        cbs.clear()
    ordered_callbacks_map.clear()


def _on(category):
    def register(callback, *, name=None):
        add_callback(callback_map[f"callbacks_{category}"], callback, name=name, category=category)
    register.__name__ = f"on_{category}"
    return register


on_cfg_denoiser = _on("cfg_denoiser")
on_cfg_denoised = _on("cfg_denoised")
on_cfg_after_cfg = _on("cfg_after_cfg")
on_ui_settings = _on("ui_settings")
on_before_ui = _on("before_ui")
on_script_unloaded = _on("script_unloaded")
on_infotext_pasted = _on("infotext_pasted")
on_app_started = _on("app_started")

"""opts (OptionInfo/add_option semantics of host-api.md 2.8), state (job_timestamp, interrupted, skipped, counters)
and the loaded model."""

from types import SimpleNamespace

HOST = "a1111"  # or "forge" or "reforge": set by the test fixture before any sampler is built


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False,
                 category_id=None):
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.onchange, self.section, self.refresh, self.infotext = onchange, section, refresh, infotext
        self.comment_before, self.comment_after = comment_before, comment_after
        if component is None and isinstance(default, float):
            raise ValueError(f"bad options item type: float default without a component ({label})")

    def info(self, text):
        self.comment_after += f" ({text})"
        return self

    def html(self, html):
        return self

    def link(self, label, url):
        return self

    def needs_reload_ui(self):
        return self

    def needs_restart(self):
        return self


class Options:
    def __init__(self):
        object.__setattr__(self, "data", {})
        object.__setattr__(self, "data_labels", {})

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data:
            self.data[key] = info.default

    def __getattr__(self, item):
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        raise AttributeError(item)

    def __setattr__(self, key, value):
        self.data[key] = value


class State:
    def __init__(self):
        self.job_timestamp = "0"
        self.interrupted = self.skipped = False
        self.sampling_step = self.sampling_steps = 0
        self.job, self.job_count, self.job_no, self.textinfo = "", 0, 0, None
        self._jobs = 0
        self.ended = 0

    def begin(self, job="(unknown)"):
        # the real one is "%Y%m%d%H%M%S" (1 s resolution); a counter keeps tests independent of the clock
        self._jobs += 1
        self.job_timestamp = f"2026010100{self._jobs:04d}"
        self.interrupted = self.skipped = False
        self.job, self.job_count, self.job_no, self.textinfo = job, -1, 0, None

    def end(self):
        self.job, self.job_count = "", 0
        self.ended += 1

    def nextjob(self):
        self.job_no += 1
        self.sampling_step = 0

    def interrupt(self):
        self.interrupted = True

    def skip(self):
        self.skipped = True


opts = Options()
state = State()
cmd_opts = SimpleNamespace(api=False)
sd_model = None  # set by webui_double.install()

"""Per-image infotext: keys starting with "MemStab", written through values that are both a string and a callable.

A1111 >= 1.9.1, Forge and reForge call a callable value once per image with ``index``, ``all_seeds`` and
``all_subseeds`` (what ``index`` means differs between call paths, so results are keyed by (seed, subseed)); hosts
that print values as they are (SD.Next, older A1111) and the API's JSON ``info`` see the string, which is the job
summary for the "MemStab" key and empty (dropped by those hosts) for the others.
"""

from __future__ import annotations

import re

PREFIX = "MemStab"
SUMMARY_KEY = PREFIX
NOTE_KEY = f"{PREFIX} note"
ERROR_KEY = f"{PREFIX} error"
KEY_RE = re.compile(r"^\w[\w \-/]+$")  # what the webui parses back


class Results:
    """What a job's images carry: per (seed, subseed) a dict of infotext key -> value, plus job-wide notes."""

    def __init__(self):
        self.by_image: dict[tuple, dict[str, str]] = {}
        self.lines: list[str] = []  # the summary, one entry per image and segment, in job order
        self.keys: list[str] = []  # per-image keys seen so far, in first-seen order
        self.job_notes: list[str] = []
        self.finalize = None  # set by the run: brings pending verdicts in before a value is read
        self.owner = None  # the run (for inspection: plots, tests)

    def add(self, ident: tuple, values: dict[str, str], line: str | None = None) -> None:
        d = self.by_image.setdefault(ident, {})
        for k, v in values.items():
            assert KEY_RE.match(k), k
            if k == NOTE_KEY and d.get(k):
                v = d[k] if v in d[k].split("; ") else f"{d[k]}; {v}"
            d[k] = v
            if k not in self.keys:
                self.keys.append(k)
        if line:
            self.lines.append(line)

    def value(self, key: str, kw: dict):
        """The value of ``key`` for the image the host is rendering; None omits the key for that image."""
        if self.finalize is not None:
            self.finalize()
        if key == SUMMARY_KEY:
            return None  # the per-image keys say it; the summary string is for hosts that do not call this
        try:
            index = kw["index"]
            ident = (int(kw["all_seeds"][index]), int(kw["all_subseeds"][index]))
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        v = self.by_image.get(ident, {}).get(key)
        if key == NOTE_KEY and self.job_notes:
            v = "; ".join(self.job_notes + ([v] if v else []))
        return v

    def summary(self) -> str:
        return "; ".join(self.job_notes + self.lines)


class PerImage(str):
    """A string for hosts that print it and the API's JSON; a per-image callable for hosts that call it."""

    def __new__(cls, text: str = "", key: str = "", results: Results | None = None):
        obj = super().__new__(cls, text)
        obj.key, obj.results = key, results
        return obj

    def __call__(self, **kw):
        try:
            return self.results.value(self.key, kw) if self.results is not None else None
        except Exception:  # never let infotext rendering fail an image
            return None

    def __reduce__(self):  # pickling/deepcopy (other extensions copy p) degrades to the plain string
        return (str, (str(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def publish(p, results: Results) -> None:
    """(Re)write the job's keys into p.extra_generation_params: the summary and one callable per per-image key."""
    egp = p.extra_generation_params
    egp[SUMMARY_KEY] = PerImage(results.summary(), SUMMARY_KEY, results)
    keys = list(results.keys)
    if results.job_notes and NOTE_KEY not in keys:
        keys.append(NOTE_KEY)
    for k in keys:
        if not isinstance(egp.get(k), PerImage) or egp[k].results is not results:
            egp[k] = PerImage("", k, results)


def job_values(args, profile_name: str) -> dict[str, str]:
    """Job-wide keys (plain strings): enough to paste the settings back."""
    c = args.config
    return {f"{PREFIX} mode": args.mode, f"{PREFIX} profile": profile_name,
            f"{PREFIX} tau mild": f"{c.tau_mild:g}", f"{PREFIX} tau strong": f"{c.tau_strong:g}",
            f"{PREFIX} gamma": f"{c.gamma:g}", f"{PREFIX} early window": f"{c.early_fraction:g}"}


def prefix_for(index: int, hires: bool, segment: int = 0) -> str:
    base = f"{PREFIX} hires" if hires else (PREFIX if index == 0 else f"{PREFIX} pass {index + 1}")
    return base if segment == 0 else f"{base} part {segment + 1}"

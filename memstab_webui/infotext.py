"""Annotation: per-image infotext keys starting with "MemStab", written through values that are both a string and a
callable, and the grammar of a verdict in the infotext (it parses back).

A1111 >= 1.9.1, Forge and reForge call a callable value once per image with ``index``, ``all_seeds`` and
``all_subseeds`` (what ``index`` means differs between call paths, so results are keyed by (seed, subseed)); hosts
that print values as they are (SD.Next, older A1111) and the API's JSON ``info`` see the string, which is the job
summary for the "MemStab" key and empty (dropped by those hosts) for the others.

Key order: the verdict leads (verdict, score, ...), then the notes, then the job's settings (memstab_webui.knobs says
which settings are written).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lib_memstab import Verdict
from lib_memstab.rules import LEVELS
from lib_memstab.text import brief
from lib_memstab.verdict import fmt_number

from . import knobs as K
from .knobs import PREFIX, infotext_value, written

SUMMARY_KEY = PREFIX
NOTE_KEY = f"{PREFIX} note"
ERROR_KEY = f"{PREFIX} error"
KEY_RE = re.compile(r"\w[\w \-/]+")  # what the webui's infotext parser reads back as a key (full match)
VERDICT_FIELDS = ("verdict", "score", "thresholds", "early score", "early thresholds", "early step", "severity",
                  "first step", "mitigated steps", "cond gap", "notes")
_NOTES = ("extrapolated", "nonfinite")


# ------------------------------------------------------------------------------------------------ verdict grammar
def verdict_values(v: Verdict, prefix: str = PREFIX) -> dict[str, str]:
    """A verdict's compact infotext values, verdict first, under keys the webui reads back."""
    d = v.to_dict()
    out = {f"{prefix} verdict": d["label"], f"{prefix} score": fmt_number(d["score"])}
    th = d["thresholds"]
    if d["rule"] == "calibrated" and th:
        out[f"{prefix} thresholds"] = f"{fmt_number(th['suspicious'])}/{fmt_number(th['memorized'])}"
    eth = d["early_thresholds"]
    if d["rule"] == "calibrated" and eth:  # the early score's part in the verdict
        out[f"{prefix} early score"] = fmt_number(d["early_score"])
        out[f"{prefix} early thresholds"] = f"{fmt_number(eth['suspicious'])}/{fmt_number(eth['memorized'])}"
    if d["early_step"] is not None:  # guard v2's early flag
        out[f"{prefix} early step"] = str(d["early_step"])
    if d["first_step"] is not None:  # the paper's flag, which arms mitigation
        out[f"{prefix} severity"] = d["severity"]
        out[f"{prefix} first step"] = str(d["first_step"])
    if d["steps_mitigated"]:
        out[f"{prefix} mitigated steps"] = str(d["steps_mitigated"])
    if d["cond_gap"] is not None:
        out[f"{prefix} cond gap"] = fmt_number(d["cond_gap"], 4)
    if d["notes"]:
        out[f"{prefix} notes"] = "+".join(d["notes"])
    assert all(KEY_RE.fullmatch(k) for k in out)
    return out


def parse_verdict(d: dict, prefix: str = PREFIX, image: int = 0, segment: int = 0) -> Verdict:
    """Parse what ``verdict_values`` wrote; raises ValueError naming the key whose value is bad."""
    def get(key, default=None):
        return d.get(f"{prefix} {key}", default)

    label = get("verdict")
    if label not in (*LEVELS, "nonfinite"):
        raise ValueError(f"{prefix} verdict must be one of {', '.join(LEVELS)} or nonfinite; got {brief(label)}")
    try:
        score = float(get("score"))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{prefix} score must be a number; got {brief(get('score'))}") from None
    severity = get("severity", "none")
    if severity not in ("none", "mild", "strong"):
        raise ValueError(f"{prefix} severity must be one of none, mild, strong; got {brief(severity)}")
    try:
        first = get("first step")
        first = None if first is None else int(first)
        early = get("early step")
        early = None if early is None else int(early)
        mitigated = int(get("mitigated steps", "0"))
        gap = get("cond gap")
        gap = None if gap is None else float(gap)
        th, eth = _pair(get("thresholds")), _pair(get("early thresholds"))
        early_score = get("early score")
        early_score = None if early_score is None else float(early_score)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{prefix}: a step count, the cond gap or a threshold is not a number "
                         f"({brief(str(e))})") from None
    notes = set(filter(None, str(get("notes", "")).split("+")))
    bad = notes - set(_NOTES)
    if bad:
        raise ValueError(f"{prefix} notes: unknown note(s) {brief(sorted(bad))}")
    nonfinite = label == "nonfinite" or "nonfinite" in notes
    level = label if label in LEVELS else ""
    return Verdict(image=image, segment=segment, steps=0, score=score,
                   flagged=label in ("suspicious", "memorized") if th is not None else
                   (label == "memorized" or get("severity") is not None), severity=severity, first_step=first,
                   steps_mitigated=mitigated, nonfinite=nonfinite, extrapolated="extrapolated" in notes,
                   cond_gap=gap, level=level, rule="calibrated" if th is not None else "paper", thresholds=th,
                   early_step=early, early_score=early_score if eth is not None else None, early_thresholds=eth)


def _pair(text) -> dict | None:
    """'3.10/9.81' -> {"suspicious": 3.1, "memorized": 9.81}; raises ValueError for anything else."""
    if text is None:
        return None
    lo, hi = (float(t) for t in str(text).split("/"))
    return {"suspicious": lo, "memorized": hi}


def prefix_for(index: int, hires: bool, segment: int = 0) -> str:
    base = f"{PREFIX} hires" if hires else (PREFIX if index == 0 else f"{PREFIX} pass {index + 1}")
    return base if segment == 0 else f"{base} part {segment + 1}"


def job_values(values: dict, profile_name: str) -> dict[str, str]:
    """Job-wide keys (plain strings), the knobs' rule: mode and profile always, a threshold where it is not the
    default. ``values``: the parsed knob values (args.RunArgs.values)."""
    vals = {**values, "profile": profile_name}
    return {k.infotext_key: infotext_value(k, vals[k.name]) for k in K.KNOBS
            if k.name in vals and written(k, vals[k.name])}


# ------------------------------------------------------------------------------------------------ the job's results
class Results:
    """What a job's images carry: per (seed, subseed) a dict of infotext key -> value, plus job-wide notes. Passes whose
    verdicts are not read yet wait in ``pending`` (callables that return (ident, prefix, Verdict) entries and
    (ident, note) notes); they are read on first need, so a value is never rendered without its verdict."""

    def __init__(self, verbosity: str = "errors"):
        self.by_image: dict[tuple, dict[str, str]] = {}
        self.lines: list[str] = []  # the summary, one entry per image and segment, in job order
        self.keys: list[str] = []  # per-image keys seen so far, in first-seen order
        self.job_notes: list[str] = []
        self.verdicts: list[tuple] = []  # (ident, prefix, Verdict), for plots
        self.pending: list[Callable[[], tuple[list, list]]] = []
        self.verbosity = verbosity

    def add(self, ident: tuple, values: dict[str, str], line: str | None = None) -> None:
        d = self.by_image.setdefault(ident, {})
        for k, v in values.items():
            assert KEY_RE.fullmatch(k), k
            if k == NOTE_KEY and d.get(k):
                v = d[k] if v in d[k].split("; ") else f"{d[k]}; {v}"
            d[k] = v
            if k not in self.keys:
                self.keys.append(k)
        if line:
            self.lines.append(line)

    def note_job(self, note: str) -> None:
        if note not in self.job_notes:
            self.job_notes.append(note)

    def finalize(self) -> None:
        """Read every pending pass (the one host read of a pass happens here)."""
        while self.pending:
            entries, notes = self.pending.pop(0)()
            for ident, prefix, v in entries:
                tail = prefix[len(PREFIX):].strip()
                line = f"{ident[0]}{' ' + tail if tail else ''}: {v.summary()}"
                self.add(ident, verdict_values(v, prefix), line)
                self.verdicts.append((ident, prefix, v))
                if self.verbosity in ("verdicts", "debug"):
                    print(f"[MemStab] seed {line}")
            for ident, note in notes:
                self.add(ident, {NOTE_KEY: note})

    def value(self, key: str, kw: dict):
        """The value of ``key`` for the image the host is rendering; None omits the key for that image."""
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


def publish(p, results: Results, job: dict[str, str] | None = None) -> None:
    """(Re)write the job's keys into p.extra_generation_params in reading order: the summary, the verdict keys (one
    callable each, known ones first even before any verdict is in), the notes, then the job's settings ``job``
    (plain strings; kept from the last call when None)."""
    egp = p.extra_generation_params
    ours = {k: egp.pop(k) for k in [k for k in egp if k == PREFIX or k.startswith(PREFIX + " ")]}
    if job is None:
        job = {k: v for k, v in ours.items() if not isinstance(v, PerImage)}
    egp[SUMMARY_KEY] = PerImage(results.summary(), SUMMARY_KEY, results)
    keys = [f"{PREFIX} {f}" for f in VERDICT_FIELDS[:2]]
    keys += [k for k in results.keys if k not in keys and k != NOTE_KEY]
    if NOTE_KEY in results.keys or results.job_notes:
        keys.append(NOTE_KEY)
    for k in keys:
        old = ours.get(k)
        egp[k] = old if isinstance(old, PerImage) and old.results is results else PerImage("", k, results)
    egp.update({k: v for k, v in job.items() if k not in egp})

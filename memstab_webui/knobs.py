"""Every user-facing knob of the guard, declared once. The script's arguments (order, parsing), the Settings section,
the controls, their tooltips, the infotext's job keys with their paste-back, and the X/Y/Z axes are all derived
from this table; adding a knob is one entry here (plus a GuardConfig field if the core needs it).

Rule for the infotext: ``mode`` and ``profile`` are always written (they say the guard ran and what judged the
image); a threshold is written only where it differs from GuardConfig's built-in default, and paste-back fills a
missing one with that default. So an image made with default settings carries its verdict and two settings, and a
pasted infotext still reproduces the job's settings exactly (the defaults are fixed, unlike each user's Settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from lib_memstab import GuardConfig, ProfileError, check_name

PREFIX = "MemStab"  # the infotext key prefix
AUTOMATIC = "automatic"
_G = GuardConfig()


@dataclass(frozen=True)
class Knob:
    name: str  # script-argument key (the API dict) and, for guard knobs, the GuardConfig field
    label: str  # the control's label; tooltips and X/Y/Z axis names hang on it
    kind: str  # "bool" | "choice" | "profile" | "number" | "window"
    default: object
    tooltip: str
    ui: bool = True  # a control in the accordion (positional argument order = table order)
    guard: bool = False  # passed to GuardConfig
    slider: tuple | None = None  # (min, max, step) of the control and the Settings slider
    limits: tuple | None = None  # (low, high): what an argument may carry at all, checked before any use
    choices: dict = field(default_factory=dict)  # value -> UI label (choice knobs)
    aliases: dict = field(default_factory=dict)  # further accepted values (not offered in the UI) -> value
    choice_tips: dict = field(default_factory=dict)  # UI label -> tooltip
    setting: str | None = None  # Settings label (key memstab_<name>); None: no Settings entry
    infotext: str | None = None  # infotext key suffix ("MemStab <suffix>"); None: not written
    always_written: bool = False  # written even at its default (see the module doc)
    xyz: bool | str = False  # an X/Y/Z plot axis, named by its label or by this string

    @property
    def setting_key(self) -> str:
        return f"memstab_{self.name}"

    @property
    def infotext_key(self) -> str | None:
        return f"{PREFIX} {self.infotext}" if self.infotext else None

    @property
    def xyz_label(self) -> str:
        return self.xyz if isinstance(self.xyz, str) else self.label

    @property
    def xyz_attr(self) -> str:
        return f"memstab_{self.name}"


MODE_LABELS = {"detect": "Detect only", "mitigate": "Detect and mitigate"}

KNOBS: tuple[Knob, ...] = (
    Knob("enabled", "Enable", "bool", False, "Turn the memorization guard on for this generation.", xyz="Enabled"),
    Knob("mode", "Mode", "choice", _G.mode,
         "Detect only: write the verdict, never change the image. Detect and mitigate: also steer flagged "
         "generations away (how: Mitigation).", guard=True, choices=MODE_LABELS,
         choice_tips={"Detect only": "Write the verdict; the image is bit-identical to the guard being off.",
                      "Detect and mitigate": "Images that are never flagged stay bit-identical; flagged ones are "
                                             "corrected step by step."},
         aliases={"off": "off"}, setting="Default mode", infotext="mode", always_written=True, xyz=True),
    Knob("profile", "Profile", "profile", AUTOMATIC,
         "The stability region to compare against. automatic: the profile calibrated for the loaded checkpoint "
         "(matched by its hash); without one, detection is off and the infotext says so.",
         setting="Default profile", infotext="profile", always_written=True),
    Knob("tau_mild", "Sensitivity (tau_mild)", "number", _G.tau_mild,
         "z-score above which a step is out of the stability region. Lower flags more generations (paper: 3).",
         guard=True, slider=(0.5, 20, 0.1), limits=(0.0, 1000.0), setting="Default sensitivity (tau_mild, z-score)",
         infotext="tau mild", xyz=True),
    Knob("tau_strong", "Strong threshold (tau_strong)", "number", _G.tau_strong,
         "x0_hat z-score that makes a flagged generation a strong case, corrected at every out-of-region step "
         "(paper: 14).", guard=True, slider=(1, 100, 0.5), limits=(0.0, 1000.0),
         setting="Default strong threshold (tau_strong, z-score)", infotext="tau strong", xyz=True),
    Knob("gamma", "Region width (gamma)", "number", _G.gamma,
         "Half-width of the stability region in reference spreads; mitigation pulls norms back inside it "
         "(paper: 3).", guard=True, slider=(0.5, 10, 0.1), limits=(0.0, 1000.0),
         setting="Default region width (gamma, spreads)", infotext="gamma", xyz=True),
    Knob("early_fraction", "Early window", "number", _G.early_fraction,
         "Fraction of the schedule in which mild cases are corrected (paper: 10 of 50 steps = 0.2).", guard=True,
         slider=(0, 1, 0.05), limits=(0.0, 1.0), setting="Default early window (fraction of the schedule)",
         infotext="early window"),
    Knob("plot", "Show stability plot", "bool", False,
         "Add one plot per image to the gallery: the three z-score traces against the region, the first flagged "
         "step and the mitigated steps.", setting="Add a stability plot image per image to the gallery by default"),
    Knob("score_window", "Score window", "window", _G.score_window,
         "The paper rule's score is the max over the first k steps, or over all steps.", ui=False, guard=True,
         limits=(1, 10000)),
    # guard v2: the final verdict (lib_memstab.rules)
    Knob("verdict", "Verdict", "choice", _G.verdict,
         "Calibrated: the whole-pass score against the scores of the calibration's own ordinary generations, in "
         "three levels (clean / suspicious / memorized). Paper: the paper's rule, memorized only where the update "
         "and x0_hat leave the region at the same step (on the testbed it calls most copies clean).", guard=True,
         choices={"calibrated": "Calibrated (reference runs)", "paper": "Paper (AND rule)"},
         choice_tips={"Calibrated (reference runs)": "Thresholds from the reference generations: 'suspicious' above "
                                                     "the score that 2 % of them exceed, 'memorized' above 0.5 %.",
                      "Paper (AND rule)": "The paper's detection rule, kept for comparison."},
         setting="Default verdict rule", infotext="rule", xyz="Verdict rule"),
    Knob("fpr_suspicious", "Suspicious above (share of references)", "number", _G.fpr_suspicious,
         "'suspicious' when the score exceeds what this share of the calibration's ordinary generations reached.",
         guard=True, slider=(0, 0.2, 0.005), limits=(0.0, 0.999), setting="Default share of references above "
         "'suspicious'", infotext="fpr suspicious"),
    Knob("fpr_early", "Early flag above (share of references)", "number", _G.fpr_early,
         "The early flag fires, in the first part of the schedule, when the larger of the update and cond-gap "
         "z-scores exceeds what this share of the calibration's ordinary generations reached there.", guard=True,
         slider=(0, 0.2, 0.005), limits=(0.0, 0.999), ui=False, infotext="fpr early"),
    Knob("fpr_memorized", "Memorized above (share of references)", "number", _G.fpr_memorized,
         "'memorized' when the score exceeds what this share of the calibration's ordinary generations reached.",
         guard=True, slider=(0, 0.2, 0.005), limits=(0.0, 0.999), setting="Default share of references above "
         "'memorized'", infotext="fpr memorized"),
    # guard v2: what mitigate mode does (lib_memstab.correction)
    Knob("mitigation", "Mitigation", "choice", _G.mitigation,
         "Repel: from the step the guard first suspects a copy, remove from x0_hat its component along the x0_hat "
         "of that step, to the end. Paper: the paper's norm rescaling and clamping (measured on the testbed, it does "
         "not stop copies).", guard=True,
         choices={"repel": "Repel (self-repulsion)", "paper": "Paper (norm clamps)"},
         choice_tips={"Repel (self-repulsion)": "Acts only from the step the early flag fires or the update "
                                                "z-score passes the 'suspicious' threshold (with the paper's "
                                                "rule: its flag); other generations stay bit-identical.",
                      "Paper (norm clamps)": "The paper's mitigation, kept for comparison."},
         setting="Default mitigation", infotext="mitigation", xyz=True),
    Knob("repel_strength", "Repel strength", "number", _G.repel_strength,
         "Share of the flagged image's component that repel removes each step (1: all of it).", guard=True,
         slider=(0.1, 2, 0.05), limits=(0.0, 2.0), setting="Default repel strength", infotext="repel strength",
         xyz=True),
)



def derive() -> None:
    """The lookups every consumer reads (as ``knobs.X``, at call time): the table is the one source."""
    global BY_NAME, UI_ORDER, DICT_KEYS
    BY_NAME = {k.name: k for k in KNOBS}
    UI_ORDER = tuple(k.name for k in KNOBS if k.ui)
    DICT_KEYS = tuple(k.name for k in KNOBS)
    assert len(BY_NAME) == len(KNOBS), "knob names are unique"
    assert {k.name for k in KNOBS if k.guard} == {f.name for f in fields(GuardConfig)}, \
        "every GuardConfig field is a knob"


BY_NAME: dict[str, Knob] = {}
UI_ORDER: tuple[str, ...] = ()
DICT_KEYS: tuple[str, ...] = ()
derive()


def titles() -> dict[str, str]:
    """Tooltip per label, for the webui's hover hints (javascript/memstab_hints.js merges them)."""
    out = {}
    for k in KNOBS:
        if k.ui:
            out[k.label] = k.tooltip
            out.update(k.choice_tips)
    return out


# ------------------------------------------------------------------------------------------------ values
def _bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):  # gradio and JSON sometimes give 0/1
        return bool(v)
    if isinstance(v, str) and v in ("True", "False"):  # XYZ and pasted infotext give strings
        return v == "True"
    raise ValueError("must be true or false")


def _choice(k: Knob, v):
    labels = {**{lab.lower(): val for val, lab in k.choices.items()}, **{val: val for val in k.choices}, **k.aliases}
    if isinstance(v, str) and len(v) <= 100 and v.strip().lower() in labels:
        return labels[v.strip().lower()]
    names = ", ".join([*k.choices, *k.aliases])
    raise ValueError(f"must be one of {names} (or the UI labels)")


def _profile(v):
    if isinstance(v, str) and len(v) <= 200 and v.strip():
        if v.strip() == AUTOMATIC:
            return AUTOMATIC
        try:
            return check_name(v.strip())  # it reaches notes and paths: a plain file stem only
        except ProfileError:
            pass
    raise ValueError(f"must be '{AUTOMATIC}' or a profile name (letters, digits, '.', '_', '-', spaces)")


def _number(k: Knob, v):
    low, high = k.limits
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("must be a number")
    if not low <= v <= high:  # compared exactly before float(), which a 400-digit int overflows; NaN fails too
        raise ValueError(f"must be a number in [{low:g}, {high:g}]")
    return float(v)


def _window(k: Knob, v):
    low, high = k.limits
    if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and low <= v <= high):
        return v
    raise ValueError(f"must be 'all' or a whole number in [{low}, {high}]")


def coerce(k: Knob, v):
    """The knob's value from untrusted input; raises ValueError with a message that starts after the name."""
    if k.kind == "bool":
        return _bool(v)
    if k.kind == "choice":
        return _choice(k, v)
    if k.kind == "profile":
        return _profile(v)
    if k.kind == "number":
        return _number(k, v)
    return _window(k, v)


def infotext_value(k: Knob, v) -> str:
    return f"{v:g}" if k.kind == "number" else str(v)


def written(k: Knob, v) -> bool:
    """Whether the job's infotext carries this knob (module doc)."""
    return bool(k.infotext) and (k.always_written or v != k.default)


def paste_value(k: Knob, params: dict):
    """What paste-back puts in the knob's control: the infotext's value, else the built-in default."""
    v = params.get(k.infotext_key)
    if v is None:
        v = k.default
    if k.kind == "choice":
        return k.choices.get(v, k.choices.get(k.default))
    return v

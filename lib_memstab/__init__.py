"""memstab: on-the-fly memorization detection and mitigation for diffusion samplers ("Broken Memories", Huang et
al., KDD 2026). Host-independent: torch and numpy only.

    guard = Guard(Profile.load("sd15.json"), GuardConfig(mode="mitigate"))
    for each sampler step:  denoised = guard.observe(x, denoised, sigma, sigma_next)
    guard.verdicts()
"""

from .calibration import (
    MAX_GENERATIONS,
    MAX_PROMPTS,
    MAX_SEEDS,
    CalibrationInterrupted,
    CalibrationResult,
    CalibrationTooLarge,
    run_calibration,
)
from .config import GuardConfig
from .guard import Guard
from .observation import StepObservation, observe_step
from .profile import MAX_PROFILE_BYTES, Profile, ProfileError, ProfileNotFound, check_meta, make_meta
from .recorder import Recorder
from .schedules import denoised_to_eps, eps_to_denoised, timestep_sigma, vp_to_kdiff
from .store import (
    DEFAULT_REFERENCE_PROMPTS,
    ORIGIN_CALIBRATION,
    ORIGIN_IMPORT,
    ProfileStore,
    StoredProfile,
    check_name,
    profile_name,
    read_prompts,
)
from .text import brief
from .verdict import Verdict

__all__ = [
    "DEFAULT_REFERENCE_PROMPTS", "MAX_GENERATIONS", "MAX_PROFILE_BYTES", "MAX_PROMPTS", "MAX_SEEDS",
    "ORIGIN_CALIBRATION", "ORIGIN_IMPORT", "CalibrationInterrupted", "CalibrationResult", "CalibrationTooLarge",
    "Guard", "GuardConfig", "Profile", "ProfileError", "ProfileNotFound", "ProfileStore", "Recorder",
    "StepObservation", "StoredProfile", "Verdict", "brief", "check_meta", "check_name", "denoised_to_eps",
    "eps_to_denoised", "make_meta", "observe_step", "profile_name", "read_prompts", "run_calibration",
    "timestep_sigma", "vp_to_kdiff",
]
__version__ = "0.1.0"

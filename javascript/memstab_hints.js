// Tooltips for the "Memorization guard" controls: the webui shows titles[<label text>] on hover (javascript/hints.js).
onUiLoaded(function () {
    if (typeof titles === "undefined") {
        return;
    }
    Object.assign(titles, {
        "Memorization guard": "Watch every sampler step for the numerical instability that memorized prompts cause (Huang et al., KDD 2026); the verdict goes into the infotext as MemStab keys.",
        "Enable": "Turn the memorization guard on for this generation.",
        "Mode": "Detect only: write the verdict, never change the image. Detect and mitigate: also steer flagged generations back into the stability region.",
        "Detect only": "Write the verdict; the image is bit-identical to the guard being off.",
        "Detect and mitigate": "Images that are never flagged stay bit-identical; flagged ones are corrected step by step.",
        "Profile": "The stability region to compare against. automatic: the profile calibrated for the loaded checkpoint (matched by its hash); without one, detection is off and the infotext says so.",
        "Sensitivity (tau_mild)": "z-score above which a step is out of the stability region. Lower flags more generations (paper: 3).",
        "Strong threshold (tau_strong)": "x0_hat z-score that makes a flagged generation a strong case, corrected at every out-of-region step (paper: 14).",
        "Region width (gamma)": "Half-width of the stability region in reference spreads; mitigation pulls norms back inside it (paper: 3).",
        "Early window": "Fraction of the schedule in which mild cases are corrected (paper: 10 of 50 steps = 0.2).",
        "Show stability plot": "Add one plot per image to the gallery: the three z-score traces against the region, the first flagged step and the mitigated steps.",
        "Calibration and profiles": "Make a stability profile for the loaded checkpoint, and list, delete, import or export profiles.",
        "Calibrate this model": "Run the reference prompts with the loaded checkpoint and your current sampler, steps, CFG and size, and save the measured stability region as this checkpoint's profile. Interrupt stops it; nothing is written then.",
        "Reference prompts": "How many reference prompts to run (the paper used 50). They come from the shipped list or the file set in Settings.",
        "Seeds per prompt": "Generations per reference prompt, each from its own noise.",
        "Stored profiles": "The profiles in the profile folder (Settings -> Memorization guard -> Profile folder).",
        "Import as": "Name for the imported profile: letters, digits, '.', '_', '-' and spaces; no path separators or '..'. Empty: the uploaded file's name."
    });
});

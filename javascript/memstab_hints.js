// Tooltips for the "Memorization guard" controls: the webui shows titles[<label text>] on hover (javascript/hints.js).
// The knobs' tooltips are declared once in memstab_webui/knobs.py; the accordion carries them in a hidden element
// (class memstab-titles, JSON in data-titles), merged here. The panel's own hints are below.
onUiLoaded(function () {
    if (typeof titles === "undefined") {
        return;
    }
    var holder = gradioApp().querySelector(".memstab-titles");
    if (holder) {
        try {
            Object.assign(titles, JSON.parse(holder.dataset.titles));
        } catch (e) {
            console.warn("[MemStab] tooltips not loaded", e);
        }
    }
    Object.assign(titles, {
        "Memorization guard": "Watch every sampler step for the numerical instability that memorized prompts cause (Huang et al., KDD 2026); the verdict goes into the infotext as MemStab keys.",
        "Calibration and profiles": "Make a stability profile for the loaded checkpoint, and list, delete, import or export profiles.",
        "Calibrate this model": "Run the reference prompts with the loaded checkpoint and your current sampler, steps, CFG and size, and save the measured stability region as this checkpoint's profile. Interrupt stops it; nothing is written then.",
        "Reference prompts": "How many reference prompts to run (the paper used 50). They come from the shipped list or the file set in Settings.",
        "Seeds per prompt": "Generations per reference prompt, each from its own noise.",
        "Leave out these reference prompts (one per line; the next ones take their place)": "Reference prompts to skip, e.g. one the last report named as holding a threshold far above the rest. Images of prompts like it will then be flagged more often.",
        "Stored profiles": "The profiles in the profile folder (Settings -> Memorization guard -> Profile folder).",
        "Import as": "Name for the imported profile: letters, digits, '.', '_', '-' and spaces; no path separators or '..'. Empty: the uploaded file's name."
    });
});

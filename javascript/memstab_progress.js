// "Calibrate this model": drive the webui's own progress bar, as its Generate button does (javascript/ui.js submit):
// make a task id, poll /internal/progress with it (requestProgress), show Interrupt/Skip meanwhile. The Python side
// (memstab_webui/calibrate.py Task) queues, starts and finishes the task under that id. args[0] is a hidden textbox
// whose value is the elem_id of the element the bar goes above; it is replaced by the task id.
function memstabCalibrate() {
    var args = Array.prototype.slice.call(arguments);
    if (typeof randomId !== "function" || typeof requestProgress !== "function") {
        return args;
    }
    var container = gradioApp().getElementById(args[0]);
    var tab = String(args[0]).split("_")[1];
    var buttons = typeof showSubmitButtons === "function" && (tab === "txt2img" || tab === "img2img");
    var id = randomId();
    if (container) {
        if (buttons) {
            showSubmitButtons(tab, false);
        }
        requestProgress(id, container, null, function () {
            if (buttons) {
                showSubmitButtons(tab, true);
            }
        });
    }
    args[0] = id;
    return args;
}

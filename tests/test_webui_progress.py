"""The browser's progress bar for "Calibrate this model" (A1111's modules/progress.py protocol, in the double): the
click's "task(...)" id is queued, started once the queue lock is held and finished on success, interrupt, error and
bad input alike, so /internal/progress reports the calibration while it runs and "completed" after it; without an id
(no javascript, the API) nothing is registered."""

import re

import pytest
from conftest import ROOT

pytest_plugins = ["webui_double.testing"]
ORDINARY_PROMPTS = [str(c) for c in range(101, 131)]
SMALL = {"width": 64, "height": 64, "steps": 6}


@pytest.fixture
def cal(tmp_path):
    from webui_double import Host

    h = Host("a1111")
    prompts = tmp_path / "ref.txt"
    prompts.write_text("\n".join(ORDINARY_PROMPTS) + "\n")
    h.shared.opts.data.update(memstab_profile_dir=str(tmp_path / "profiles"), memstab_reference_prompts=str(prompts))
    yield h
    h.close()


def watch(host, monkeypatch, during=None):
    """Record the task calls, and what /internal/progress answers at the start of every reference generation."""
    from modules import progress

    events, polls = [], []
    for name in ("add_task_to_queue", "start_task", "finish_task"):
        orig = getattr(progress, name)
        monkeypatch.setattr(progress, name, lambda i, _o=orig, _n=name: (events.append((_n, i)), _o(i))[1])
    orig_pi = host.processing.process_images

    def process_images(p):
        polls.append(progress.progressapi("task(abc)"))
        if during is not None:
            during(len(polls))
        return orig_pi(p)

    monkeypatch.setattr(host.processing, "process_images", process_images)
    return progress, events, polls


def test_progress_task_runs_with_the_calibration(cal, monkeypatch):
    from memstab_webui import manage

    progress, events, polls = watch(cal, monkeypatch)
    md, image = manage.calibrate_ui(4, 1, SMALL, id_task="task(abc)")
    assert md.startswith("**Calibrated**") and image is not None
    assert events == [("add_task_to_queue", "task(abc)"), ("start_task", "task(abc)"), ("finish_task", "task(abc)")]
    assert len(polls) == 4 and all(r["active"] and not r["queued"] and not r["completed"] for r in polls)
    fractions = [r["progress"] for r in polls]
    assert fractions == sorted(fractions) and fractions[0] < fractions[-1] < 1
    assert all(r["textinfo"] is None or "MemStab calibration" in r["textinfo"] for r in polls)
    end = progress.progressapi("task(abc)")
    assert end["completed"] and not end["active"] and progress.current_task is None and not progress.pending_tasks


def test_interrupt_finishes_the_task(cal, monkeypatch):
    from memstab_webui import manage

    progress, events, polls = watch(cal, monkeypatch, during=lambda k: k == 2 and cal.shared.state.interrupt())
    md, image = manage.calibrate_ui(4, 1, SMALL, id_task="task(abc)")
    assert md.startswith("**Calibration stopped:**") and image is None and len(polls) == 2
    assert [e for e, _ in events] == ["add_task_to_queue", "start_task", "finish_task"]
    assert progress.progressapi("task(abc)")["completed"] and progress.current_task is None


def test_a_failing_calibration_finishes_the_task(cal, monkeypatch):
    from memstab_webui import manage

    def boom(k):
        raise RuntimeError("CUDA out of memory")

    progress, events, _ = watch(cal, monkeypatch, during=boom)
    md, image = manage.calibrate_ui(4, 1, SMALL, id_task="task(abc)")
    assert md.startswith("**Calibration not done:** reference generation 1 ('101') failed in the webui: "
                         "RuntimeError: 'CUDA out of memory'; nothing was written") and image is None
    assert [e for e, _ in events] == ["add_task_to_queue", "start_task", "finish_task"]
    assert progress.progressapi("task(abc)")["completed"] and progress.current_task is None
    assert cal.shared.state.ended == 1


def test_bad_input_finishes_the_task_without_starting_it(cal, monkeypatch):
    """The page stops polling at once instead of waiting out its 40 s inactivity timeout."""
    from memstab_webui import manage

    progress, events, polls = watch(cal, monkeypatch)
    md, _ = manage.calibrate_ui(0, 1, SMALL, id_task="task(abc)")
    assert md.startswith("**Calibration not done:**") and polls == []
    assert [e for e, _ in events] == ["add_task_to_queue", "finish_task"]
    assert progress.progressapi("task(abc)")["completed"]


@pytest.mark.parametrize("id_task", [None, "", "script_txt2img_memorization_guard_calib_report", "task(", 7])
def test_no_task_id_registers_nothing(cal, monkeypatch, id_task):
    """The hidden textbox still holds the report's elem_id when the javascript did not run (or on the API)."""
    from memstab_webui import manage

    _, events, polls = watch(cal, monkeypatch)
    md, _ = manage.calibrate_ui(2, 1, SMALL, id_task=id_task)
    assert md.startswith("**Calibrated**") and events == [] and len(polls) == 2


def test_a_host_without_modules_progress(cal, monkeypatch):
    import sys

    from memstab_webui import manage

    monkeypatch.setitem(sys.modules, "modules.progress", None)
    md, _ = manage.calibrate_ui(2, 1, SMALL, id_task="task(abc)")
    assert md.startswith("**Calibrated**")


def test_button_runs_the_javascript_with_the_hidden_task_id(cal):
    """Wired as A1111 wires Generate: a javascript function before the Python one, its first input a hidden textbox
    whose value names the element the bar goes above; the function is defined in javascript/, prefixed."""
    gr = pytest.importorskip("gradio")
    s = cal.script_class()
    s.is_img2img = False
    with gr.Blocks() as demo:
        s.ui(False)
    (i,) = [i for i, d in enumerate(demo.dependencies) if d.get("js")]
    fn = demo.fns[i]
    assert demo.dependencies[i]["js"] == "memstabCalibrate" and len(fn.inputs) == 4  # task id, n, seeds, exclude
    hidden = fn.inputs[0]
    assert isinstance(hidden, gr.Textbox) and hidden.visible is False
    assert hidden.value == "script_txt2img_memorization_guard_calib_report"
    assert any(getattr(b, "elem_id", None) == hidden.value for b in demo.blocks.values())
    js = (ROOT / "javascript" / "memstab_progress.js").read_text()
    assert re.search(r"^function memstabCalibrate\(\)", js, re.M)
    for host_fn in ("randomId", "requestProgress", "showSubmitButtons"):  # A1111's own, guarded with typeof
        assert f"typeof {host_fn} " in js
    md, _ = fn.fn("task(click)", 2, 1, "")
    from modules import progress

    assert md.startswith("**Calibrated**") and progress.progressapi("task(click)")["completed"]

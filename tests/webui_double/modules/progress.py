"""The browser's progress bar (A1111 modules/progress.py): a UI call with a "task(...)" id is queued
(add_task_to_queue), started under the queue lock (start_task) and finished (finish_task); the page polls
/internal/progress with the id, which answers from these and shared.state (progressapi, without eta and previews)."""

import time

from modules import shared

current_task = None
pending_tasks = {}
finished_tasks = []
recorded_results = []
recorded_results_limit = 2


def start_task(id_task):
    global current_task
    current_task = id_task
    pending_tasks.pop(id_task, None)


def record_results(id_task, res):
    recorded_results.append((id_task, res))
    if len(recorded_results) > recorded_results_limit:
        recorded_results.pop(0)


def finish_task(id_task):
    global current_task
    if current_task == id_task:
        current_task = None
    finished_tasks.append(id_task)
    if len(finished_tasks) > 16:
        finished_tasks.pop(0)


def add_task_to_queue(id_job):
    pending_tasks[id_job] = time.time()


def progressapi(id_task):
    """What POST /internal/progress {"id_task": ...} answers (a dict instead of the pydantic model)."""
    active = id_task == current_task
    queued = id_task in pending_tasks
    completed = id_task in finished_tasks
    if not active:
        return {"active": active, "queued": queued, "completed": completed,
                "textinfo": "Queued..." if queued else "Waiting..."}
    st = shared.state
    progress = 0
    if st.job_count > 0:
        progress += st.job_no / st.job_count
    if st.sampling_steps > 0 and st.job_count > 0:
        progress += 1 / st.job_count * st.sampling_step / st.sampling_steps
    return {"active": active, "queued": queued, "completed": completed, "progress": min(progress, 1),
            "textinfo": st.textinfo}

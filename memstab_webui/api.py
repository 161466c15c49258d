"""HTTP routes on the webui's FastAPI app (script_callbacks.on_app_started), so calibration can be scripted:

- POST   /memstab/v1/calibrate          {prompts_file?, n_prompts?, seeds?, sampler?, steps?, cfg_scale?, width?,
                                         height?, name?} -> {name, file, generations, outliers, profile, meta}
- GET    /memstab/v1/profiles           -> {folder, automatic: {name, note, reason}, profiles: [{name, usable, error,
                                            meta, description}]}
- GET    /memstab/v1/profiles/{name}    -> the profile's JSON (export)
- PUT    /memstab/v1/profiles/{name}    body: a profile's JSON (import; validated before it is written)
- DELETE /memstab/v1/profiles/{name}

Errors are {"error": "..."} with the status chosen by the error's type: 400 bad input (CalibrationError,
ProfileError), 404 no such profile (ProfileNotFound), 409 interrupted (nothing written), 413 a body over the size
limit, 500 only for a fault of ours. Bodies are read with a size limit whatever their content type, and parsed as
JSON by the route, so no input reaches FastAPI's own validation.
"""

import json  # no "from __future__ import annotations": FastAPI reads the routes' Request annotation at definition

from lib_memstab import MAX_PROFILE_BYTES, CalibrationInterrupted, ProfileError, ProfileNotFound

from . import calibrate as cal
from . import family, manage, profiles
from .log import report

PREFIX = "/memstab/v1"
MAX_REQUEST_BYTES = 64_000  # a calibration request is a handful of fields


class BodyTooLarge(ValueError):
    pass


def _opts():
    from modules import shared

    return shared.opts


def register(demo, app) -> None:
    """on_app_started; idempotent (a UI reload calls it again with the same app)."""
    try:
        if app is None or any(getattr(r, "path", "") == f"{PREFIX}/profiles" for r in getattr(app, "routes", [])):
            return
        _add_routes(app)
    except Exception as e:
        report("[MemStab] adding the API routes failed; the webui runs without them", e)


def status_of(e: BaseException) -> int:
    """The HTTP status for an error, by its type."""
    if isinstance(e, BodyTooLarge):
        return 413
    if isinstance(e, ProfileNotFound):
        return 404
    if isinstance(e, (cal.CalibrationError, ProfileError)):
        return 400
    if isinstance(e, CalibrationInterrupted):
        return 409
    return 500


async def read_body(request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes (from Content-Length when it is given, else while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is too large ({declared} bytes; at most {limit})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is too large (over {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, what: str):
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise cal.CalibrationError(f"the {what} is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise cal.CalibrationError(f"the {what} is not valid JSON ({getattr(e, 'msg', 'too deeply nested')})") \
            from None


def _add_routes(app) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    def answer(e: BaseException, what: str):
        status = status_of(e)
        if status == 500:
            report(f"[MemStab] {what} failed", e)
            return JSONResponse({"error": f"{what} failed: {type(e).__name__} (nothing was written; the console "
                                          "has the details)"}, status_code=500)
        return JSONResponse({"error": str(e)[:2000]}, status_code=status)

    @app.post(f"{PREFIX}/calibrate")
    async def calibrate_route(request: Request):
        try:
            body = parse_json(await read_body(request, MAX_REQUEST_BYTES), "request")
            opts = _opts()
            req = cal.parse_request(body, opts)
            cal.check_remote_prompts_file(req, opts)
            report_ = await run_in_threadpool(cal.calibrate, req, opts)  # long: off the event loop
            return report_.to_json()
        except Exception as e:
            return answer(e, "calibration")

    @app.get(f"{PREFIX}/profiles")
    def profiles_route():
        try:
            from modules import shared

            opts = shared.opts
            model = shared.sd_model
            note = family.unsupported(model)
            auto = {"name": None, "note": note, "reason": note}
            if note is None and model is not None:
                hit, note, reason = profiles.automatic(model, opts)
                auto = {"name": hit.name if hit else None, "note": note, "reason": reason}
            return {"folder": str(profiles.profile_dir(opts)), "automatic": auto, "profiles": manage.listing(opts)}
        except Exception as e:
            return answer(e, "listing profiles")

    @app.get(PREFIX + "/profiles/{name}")
    def export_route(name: str):
        try:
            return profiles.store(_opts()).load(name).to_dict()
        except Exception as e:
            return answer(e, "export")

    @app.put(PREFIX + "/profiles/{name}")
    async def import_route(name: str, request: Request):
        try:
            raw = await read_body(request, MAX_PROFILE_BYTES)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ProfileError("the imported profile is not UTF-8 text") from None
            opts = _opts()
            profiles.check_writable(profiles.profile_dir(opts))
            await run_in_threadpool(profiles.store(opts).import_json, text, name)
            return {"name": name, "imported": True}
        except Exception as e:
            return answer(e, "import")

    @app.delete(PREFIX + "/profiles/{name}")
    def delete_route(name: str):
        try:
            profiles.store(_opts()).delete(name)
            return {"name": name, "deleted": True}
        except Exception as e:
            return answer(e, "delete")

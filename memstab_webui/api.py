"""HTTP routes on the webui's FastAPI app (script_callbacks.on_app_started), so calibration can be scripted:

- POST   /memstab/v1/calibrate          {prompts_file?, n_prompts?, seeds?, sampler?, steps?, cfg_scale?, width?,
                                         height?, name?} -> {name, file, generations, outliers, profile, meta}
- GET    /memstab/v1/profiles           -> {folder, automatic, profiles: [{name, usable, error, meta, description}]}
- GET    /memstab/v1/profiles/{name}    -> the profile's JSON (export)
- PUT    /memstab/v1/profiles/{name}    body: a profile's JSON (import; validated before it is written)
- DELETE /memstab/v1/profiles/{name}

Errors are {"error": "..."}: 400 bad input, 404 no such profile, 409 interrupted (nothing written), 500 otherwise.
"""

from __future__ import annotations

from lib_memstab import CalibrationInterrupted, ProfileError

from . import calibrate as cal
from . import family, manage, profiles
from .log import report

PREFIX = "/memstab/v1"


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


def _add_routes(app) -> None:
    from fastapi import Body
    from fastapi.responses import JSONResponse

    def err(status, msg):
        return JSONResponse({"error": msg}, status_code=status)

    @app.post(f"{PREFIX}/calibrate")
    def calibrate_route(body=Body(default=None)):  # noqa: B008 (FastAPI's idiom)
        try:
            opts = _opts()
            req = cal.parse_request(body, opts)
            cal.check_remote_prompts_file(req, opts)
            return cal.calibrate(req, opts).to_json()
        except (cal.CalibrationError, ProfileError) as e:
            return err(400, str(e))
        except CalibrationInterrupted as e:
            return err(409, str(e))
        except Exception as e:
            report("[MemStab] calibration failed", e)
            return err(500, f"calibration failed: {type(e).__name__}: {e} (nothing was written)")

    @app.get(f"{PREFIX}/profiles")
    def profiles_route():
        try:
            from modules import shared

            opts = shared.opts
            model = shared.sd_model
            auto = {"name": None, "note": family.unsupported(model)}
            if auto["note"] is None and model is not None:
                hit, note = profiles.automatic(model, opts)
                auto = {"name": hit.name if hit else None, "note": note}
            return {"folder": str(profiles.profile_dir(opts)), "automatic": auto, "profiles": manage.listing(opts)}
        except Exception as e:
            report("[MemStab] listing profiles failed", e)
            return err(500, f"listing profiles failed: {type(e).__name__}: {e}")

    @app.get(PREFIX + "/profiles/{name}")
    def export_route(name: str):
        try:
            return profiles.store(_opts()).load(name).to_dict()
        except ProfileError as e:
            return err(404 if "cannot read" in str(e) else 400, str(e))

    @app.put(PREFIX + "/profiles/{name}")
    def import_route(name: str, body=Body(default=None)):  # noqa: B008
        import json

        try:
            opts = _opts()
            profiles.check_writable(profiles.profile_dir(opts))
            profiles.store(opts).import_json(json.dumps(body), name)
            return {"name": name, "imported": True}
        except ProfileError as e:
            return err(400, str(e))

    @app.delete(PREFIX + "/profiles/{name}")
    def delete_route(name: str):
        try:
            profiles.store(_opts()).delete(name)
            return {"name": name, "deleted": True}
        except ProfileError as e:
            return err(404 if "no profile named" in str(e) else 400, str(e))

"""The HTTP service: a FastAPI app over one model bundle, loaded and hash-checked once at start-up.

========================  =====================================================================
endpoint                  what
========================  =====================================================================
``GET /``                 the web page (static files in ``elvmass/serve/static``; nothing external)
``POST /v1/predict``      one ECG (multipart field ``file``) + optional ``age_years``, ``sex``,
                          ``height_cm``, ``weight_kg``; ``?detail=true`` adds the waveform, the
                          model's beat, fiducials, measured parameters (and saliency, when
                          :mod:`elvmass.explain` is installed) for the page
``POST /v1/predict/batch`` several ``file`` fields, the same optional fields for all; one result
                          or one ``error`` per file
``GET /v1/health``        liveness, the bundle's name and the batches run so far
``GET /v1/model``         the model card: models, signal configuration, LVH cut-offs, training
                          cohort summary, file hashes
``GET /openapi.json``     the OpenAPI schema (``/docs`` renders it; it is FastAPI's own page)
========================  =====================================================================

Prediction goes through :func:`elvmass.predict.predict_record` (so every check and output field of
``elvmass predict`` is the service's too) on a :class:`~elvmass.predict.BatchingBundle`: requests
are handled in a thread pool, off the event loop, and their model calls are gathered into one
network call per model (a batch runs when every request in flight waits for it, at ``max_batch``
or after ``max_wait_ms``). Every 4xx answer is ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import Query, Request

from elvmass.errors import ECGReadError, ElvmassError
from elvmass.serve.uploads import RequestFolder, UploadRefused, stream_form

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEMOGRAPHIC_FIELDS = ("age_years", "sex", "height_cm", "weight_kg")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(" ".join(str(message).split()))
        self.status = status


@dataclass
class ServiceConfig:
    model_dir: Path
    max_upload_bytes: int = 20 * 1024 * 1024
    max_batch_files: int = 32
    max_batch: int = 32
    max_wait_ms: float = 10.0
    threads: int = 8
    torch_threads: int | None = 1
    tmp_root: Path | None = None


def _demographics(fields: dict[str, str]) -> dict:
    """Form fields -> predict_record keywords; implausible or malformed values raise ApiError 422.

    The plausible ranges are the cohort manifest schema's (:data:`elvmass.cohort.SCHEMA_BY_NAME`).
    """
    from elvmass.cohort import SCHEMA_BY_NAME

    out: dict = {}
    for name in ("age_years", "height_cm", "weight_kg"):
        raw = (fields.get(name) or "").strip()
        if not raw:
            continue
        try:
            value = float(raw.replace(",", "."))
        except ValueError:
            raise ApiError(422, f"{name} must be a number, got {raw[:40]!r}") from None
        spec = SCHEMA_BY_NAME[name]
        if not math.isfinite(value) or not (spec.lo <= value <= spec.hi):
            raise ApiError(422, f"implausible {name} {raw[:40]!r}: expected {spec.range_text()} {spec.unit}"
                                f" ({spec.hint})")
        out[name] = value
    sex = (fields.get("sex") or "").strip().upper()
    if sex:
        if sex in ("M", "MALE"):
            out["sex"] = "M"
        elif sex in ("F", "FEMALE"):
            out["sex"] = "F"
        else:
            raise ApiError(422, f"sex must be M or F, got {fields['sex'][:20]!r}")
    return out


def _round_list(a, ndigits=4):
    return [None if not math.isfinite(float(x)) else round(float(x), ndigits) for x in np.ravel(a)]


class Service:
    """The loaded bundle, the batching wrapper and the worker pool behind the app."""

    def __init__(self, config: ServiceConfig):
        from elvmass.bundle import load_bundle, sha256_file  # noqa: F401
        from elvmass.predict import BatchingBundle

        self.config = config
        if config.torch_threads:
            import torch

            torch.set_num_threads(int(config.torch_threads))
        self.bundle = load_bundle(config.model_dir)  # BundleError: the caller stops with one line
        self.batcher = BatchingBundle(self.bundle, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000)
        self.pool = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="elvmass-predict")
        self.started = time.time()
        self.requests = 0
        try:
            import elvmass.explain as explain  # noqa: F401
            self.explain = explain
        except ImportError:
            self.explain = None

    # -- one file ---------------------------------------------------------------------------------
    def predict_file(self, path: Path, filename: str, demo: dict, detail: bool) -> dict:
        from elvmass.io import detect_format, read_ecg
        from elvmass.predict import predict_record

        try:
            detect_format(path)
        except ECGReadError as exc:
            status = 422 if "empty" in exc.problem else 415
            raise ApiError(status, f"{filename}: {exc.problem}") from None
        try:
            rec = read_ecg(path)
        except ECGReadError as exc:
            raise ApiError(422, f"{filename}: {exc.problem}") from None
        sex = demo.get("sex") or rec.patient.sex
        if sex is None and all(self.bundle.sexes.get(n) for n in self.bundle.model_names):
            raise ApiError(422, f"{filename}: sex is needed: the file does not state it and this bundle has only "
                                "sex-specific models (give sex=M or F)")
        self.batcher.enter()
        try:
            pred = predict_record(self.batcher, rec, path=filename, **demo)
        except ECGReadError as exc:
            raise ApiError(422, f"{filename}: {exc.problem}") from None
        except (ElvmassError, ValueError) as exc:
            raise ApiError(422, f"{filename}: {str(exc).replace(str(path), filename)}") from None
        finally:
            self.batcher.leave()
        out = pred.to_dict()
        out["file"] = filename
        out["bsa_m2"] = None if pred.bsa_m2 is None else round(pred.bsa_m2, 3)
        out["lvh_cutoff_g_m2"] = self.bundle.lvh_cutoffs.get(pred.sex) if pred.sex else None
        out["measurements"] = {"device": rec.measurements.as_dict()}
        out["record"] = {"format": rec.source_format, "fs_hz": rec.fs_hz, "duration_s": round(rec.duration_s, 3),
                         "acquired_at": rec.acquired_at.isoformat() if rec.acquired_at else None,
                         "statements": list(rec.statements), "reader_flags": list(rec.flags),
                         "patient_in_file": {"age_years": rec.patient.age_years, "sex": rec.patient.sex,
                                             "height_cm": rec.patient.height_cm, "weight_kg": rec.patient.weight_kg}}
        if detail:
            out.update(self._detail(rec, pred))
        return out

    def _detail(self, rec, pred) -> dict:
        """What the page draws: the 12 leads (integer µV), the model's beat, fiducials, measured values."""
        from elvmass.record import resample_signal
        from elvmass.signal.analysis import analyze_ecg

        a = analyze_ecg(rec, self.bundle.signal_config)
        sig, fs = rec.signal_mv, float(rec.fs_hz)
        if fs > 500:
            sig, fs = resample_signal(sig, fs, 500.0), 500.0
        cfg = self.bundle.signal_config
        view = np.asarray(a.view, np.float64)
        d = {
            "ecg": {"fs_hz": fs, "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
                    "uv": [[int(round(v)) if math.isfinite(v) else 0 for v in row] for row in (np.asarray(sig) * 1000)],
                    "r_peaks_s": _round_list(a.r_peaks_s, 3)},
            "beat": {"fs_hz": float(cfg.out_fs_hz), "before_s": float(cfg.beat_before_s), "view": cfg.view,
                     "mv": [_round_list(row, 4) for row in view],
                     "fiducials_ms": {k: (None if not math.isfinite(float(v)) else round(float(v), 1))
                                      for k, v in a.fiducials_ms.items()},
                     "window_s": [round(float(a.beat_start_s), 3), round(float(a.beat_end_s), 3)]},
        }
        d["measurements"] = {"device": rec.measurements.as_dict(),
                             "measured": {k: (None if v is None or not math.isfinite(float(v)) else round(float(v), 1))
                                          for k, v in a.measured.items()}}
        d["saliency"] = self._saliency(rec, pred)
        return d

    def _saliency(self, rec, pred):
        """The explain module's saliency for this prediction, when it is installed (else None)."""
        if self.explain is None:
            return None
        fn = getattr(self.explain, "saliency_for_record", None)
        if fn is None:
            return None
        try:
            s = fn(self.bundle, rec, model=pred.model)
        except Exception as exc:  # noqa: BLE001 - the estimate stands without its explanation
            return {"error": " ".join(str(exc).split())[:200]}
        from elvmass.jsonable import to_jsonable

        return to_jsonable(s)

    def model_card(self) -> dict:
        from elvmass.bundle import HASHES_NAME

        c = self.bundle.config
        hashes = {}
        try:
            import json

            hashes = json.loads((Path(self.bundle.path) / HASHES_NAME).read_text()).get("files", {})
        except (OSError, ValueError):
            pass
        return {
            "path_name": Path(self.bundle.path).name,
            "format": c.get("format"), "format_version": c.get("format_version"),
            "elvmass_version": c.get("elvmass_version"), "created": c.get("created"),
            "models": self.bundle.model_names,
            "sex_specific": any(self.bundle.sexes.get(n) for n in self.bundle.model_names),
            "model_card_md": self.bundle.model_card,
            "signal": c.get("signal"), "lead_grouping": c.get("lead_grouping"),
            "lvh_cutoffs_g_m2": {"M": self.bundle.lvh_cutoffs["M"], "F": self.bundle.lvh_cutoffs["F"]},
            "training_cohort": c.get("training_cohort"),
            "preset": (c.get("train") or {}).get("preset", {}).get("name"),
            "intervals": bool(c.get("conformal") or c.get("intervals")),
            "explain": self.explain is not None,
            "hashes_sha256": hashes,
        }


def create_app(config: ServiceConfig | str | Path):
    """The FastAPI app; loads the bundle now (a bad bundle raises BundleError before anything is served)."""
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    if not isinstance(config, ServiceConfig):
        config = ServiceConfig(Path(config))
    service = Service(config)
    app = FastAPI(title="elvmass", version=str(service.bundle.config.get("elvmass_version", "")),
                  description="LV mass, LVMI and LVH from a resting 12-lead ECG (eLVMass-Net). Research software.")
    app.state.service = service

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body"))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}".strip(": ")}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    upload_body = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "GE MUSE / Philips / HL7 aECG XML, DICOM waveform (or another read_ecg format)"},
            "age_years": {"type": "number", "description": "Age in years (overrides the file), 18-110"},
            "sex": {"type": "string", "enum": ["M", "F"], "description": "Overrides the file"},
            "height_cm": {"type": "number", "description": "Height in cm, 120-220"},
            "weight_kg": {"type": "number", "description": "Weight in kg, 30-250"}}}}}}}
    batch_body = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {**upload_body["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"],
                       "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}
    error_doc = {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
    responses = {s: {"description": d, **error_doc} for s, d in (
        (400, "malformed request"), (413, "file over the size limit"), (415, "not an ECG file this service reads"),
        (422, "unreadable ECG, implausible demographics, or sex needed"))}

    async def _run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(service.pool, fn, *args)

    async def _receive(request: Request, folder: Path, max_files: int):
        try:
            form = await stream_form(request, folder, max_file_bytes=config.max_upload_bytes, max_files=max_files)
        except UploadRefused as exc:
            raise ApiError(exc.status, str(exc)) from None
        files = [f for f in form.files if f.field == "file"]
        if not files:
            raise ApiError(422, "no ECG file: send it in the multipart field 'file'")
        return form, files

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/v1/health")
    async def health() -> dict:
        """Liveness: the bundle is loaded."""
        return {"status": "ok", "models": service.bundle.model_names, "uptime_s": round(time.time() - service.started, 1),
                "requests": service.requests, "model_calls": len(service.batcher.batches)}

    @app.get("/v1/model")
    async def model() -> dict:
        """The model card and bundle summary."""
        return service.model_card()

    @app.post("/v1/predict", openapi_extra=upload_body, responses=responses)
    async def predict(request: Request, detail: bool = Query(False, description="add waveform, beat and measured values")):
        """LV mass (g), LVMI, LVH and flags for one ECG file."""
        service.requests += 1
        with RequestFolder(config.tmp_root) as folder:
            form, files = await _receive(request, folder, 1)
            demo = _demographics(form.fields)
            return await _run(service.predict_file, files[0].path, files[0].filename, demo, detail)

    @app.post("/v1/predict/batch", openapi_extra=batch_body, responses=responses)
    async def predict_batch(request: Request):
        """Several ECG files in one request (same optional demographics for all): one result or error each."""
        service.requests += 1
        with RequestFolder(config.tmp_root) as folder:
            form, files = await _receive(request, folder, config.max_batch_files)
            demo = _demographics(form.fields)

            async def one(f):
                try:
                    return await _run(service.predict_file, f.path, f.filename, demo, False)
                except ApiError as exc:
                    return {"file": f.filename, "error": str(exc), "status": exc.status}

            results = await asyncio.gather(*(one(f) for f in files))
            return {"results": list(results), "n_files": len(files),
                    "n_errors": sum(1 for r in results if "error" in r)}

    return app

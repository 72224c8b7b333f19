"""`elvmass serve`: the HTTP service and web page over one model bundle (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from elvmass.cli._app import app, err_console, fail


@app.command("serve")
def serve(
    model: Path = typer.Option(..., "--model", help="Model bundle folder from `elvmass train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest accepted ECG file, in MB (MiB)."),
    threads: int = typer.Option(8, "--threads", help="Worker threads that read and analyse uploads."),
    max_batch: int = typer.Option(32, "--max-batch", help="Most ECGs in one batched model call."),
    max_wait_ms: float = typer.Option(10.0, "--max-wait-ms", help="Longest a request waits for its batch to fill."),
    torch_threads: int = typer.Option(1, "--torch-threads", help="Threads for the network (0: torch's default)."),
    tmp_dir: Optional[Path] = typer.Option(None, "--tmp-dir", help="Where per-request folders are made (default: the system's)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the model: POST /v1/predict, /v1/predict/batch, GET /v1/health, /v1/model and a web page at /."""
    import uvicorn

    from elvmass.errors import ElvmassError
    from elvmass.serve import ServiceConfig, create_app

    if max_upload_mb <= 0:
        fail("--max-upload-mb must be positive")
    cfg = ServiceConfig(model, max_upload_bytes=int(max_upload_mb * 1024 * 1024), threads=max(1, threads),
                        max_batch=max(1, max_batch), max_wait_ms=max(0.0, max_wait_ms),
                        torch_threads=torch_threads or None, tmp_root=tmp_dir)
    try:
        application = create_app(cfg)  # the bundle is loaded and hash-checked here, once
    except ElvmassError as exc:
        fail(f"cannot start the service: {exc}")
    err_console.print(f"elvmass serving {model} on http://{host}:{port}/ (models: "
                      f"{', '.join(application.state.service.bundle.model_names)})", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)

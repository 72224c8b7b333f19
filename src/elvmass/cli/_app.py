"""The shared typer application and the output helpers every command uses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from elvmass.jsonable import to_jsonable

app = typer.Typer(
    name="elvmass",
    help="Estimate imaging-derived LV mass and LVH from 12-lead ECGs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the elvmass version and exit.", is_eager=True),
) -> None:
    """Estimate imaging-derived LV mass and LVH from 12-lead ECGs."""
    if version:
        from elvmass import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


console = Console()
err_console = Console(stderr=True)


def _printable(obj):
    """Strings holding lone surrogates (file names that are not UTF-8) as elvmass.errors.path_text writes them."""
    from elvmass.errors import path_text

    if isinstance(obj, str):
        return path_text(obj)
    if isinstance(obj, dict):
        return {_printable(k): _printable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_printable(v) for v in obj]
    return obj


def print_json_line(obj) -> None:
    """One JSON object per line on stdout (for --json); file names that are not UTF-8 as ``\\xNN``."""
    sys.stdout.write(json.dumps(_printable(to_jsonable(obj))) + "\n")
    sys.stdout.flush()


def report_error(message: str) -> None:
    """One line on stderr naming the file/row and the problem; never a traceback."""
    from rich.markup import escape

    # file names and problems are data, not markup: "[archive]" in a path must print as written
    from elvmass.errors import path_text

    err_console.print(f"[red]error:[/red] {escape(path_text(message))}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    report_error(message)
    raise typer.Exit(code)


def expand_ecg_paths(paths) -> list[Path]:
    """Files as given; a folder (that is not a WFDB record name) becomes the ECG files found in it."""
    from elvmass.errors import ElvmassError
    from elvmass.io import find_ecg_files

    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and not path.with_suffix(".hea").is_file():
            try:
                out.extend(find_ecg_files(path))
            except ElvmassError:
                out.append(path)  # reading it reports the problem on one line
        else:
            out.append(path)
    return out


def write_plot(draw, ecg_path, out) -> bool:
    """Call ``draw(out)``; a plot that cannot be written is one error line naming the ECG and the plot
    file (the caller counts it as a failed file). True when the plot was written."""
    try:
        draw(out)
    except (OSError, ValueError) as exc:
        report_error(f"{ecg_path}: cannot write plot {out} ({getattr(exc, 'strerror', None) or exc})")
        return False
    return True


def plot_path_for(base: Path, index: int, ecg_path=None, taken: set[Path] | None = None) -> Path:
    """Where the plot of the ``index``-th file (from 1) goes: ``out.png`` for the first file,
    ``out-2.png``, ``out-3.png``... for the next ones; when ``base`` is an existing folder,
    ``<folder>/<ECG file stem>.png`` (``-2``, ``-3``... added where stems repeat)."""
    if base.is_dir() and ecg_path is not None:
        stem = Path(ecg_path).stem or "ecg"
        out, k = base / f"{stem}.png", 2
        while taken is not None and out in taken:
            out, k = base / f"{stem}-{k}.png", k + 1
        if taken is not None:
            taken.add(out)
        return out
    if index <= 1:
        return base
    return base.with_name(f"{base.stem}-{index}{base.suffix or '.png'}")

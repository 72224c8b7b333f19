"""The shared typer application and the output helpers every command uses."""

from __future__ import annotations

import json
import math
import sys

import typer
from rich.console import Console

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


def _clean(obj):
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def print_json_line(obj) -> None:
    """One JSON object per line on stdout (for --json)."""
    sys.stdout.write(json.dumps(_clean(obj)) + "\n")
    sys.stdout.flush()


def report_error(message: str) -> None:
    """One line on stderr naming the file/row and the problem; never a traceback."""
    from rich.markup import escape

    # file names and problems are data, not markup: "[archive]" in a path must print as written
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    report_error(message)
    raise typer.Exit(code)

"""`beanmill dashboard`: the live page and /metrics of a checkpoint, for a job that runs
elsewhere or has finished; read-only, like `status`."""

from __future__ import annotations

from pathlib import Path

import click

from beanmill import logs
from beanmill.checkpoint import read_snapshot
from beanmill.errors import BeanmillError
from beanmill.signals import install_stop_handlers
from beanmill.status_cli import checkpoint_path
from beanmill.web import http_address, http_options, serve_checkpoint


def register(group: click.Group) -> None:
    group.add_command(dashboard)


@click.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@http_options
@click.option(
    "--log-level",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    show_default=True,
)
def dashboard(
    checkpoint: Path | None,
    data_dir: Path | None,
    http: str | None,
    http_public: bool,
    log_level: str,
) -> None:
    """Serve the dashboard of a checkpoint until stopped (Ctrl-C)."""
    logs.configure(log_level, "auto", role="dashboard")
    path = checkpoint_path(checkpoint, data_dir)
    address = http_address(http, http_public)
    if address is None:
        raise BeanmillError("give --http HOST:PORT to serve on (for example 127.0.0.1:8000)")
    job = read_snapshot(path).job  # refuses a missing or damaged checkpoint now, in one line
    stop = install_stop_handlers()
    server = serve_checkpoint(job, path, address)
    click.echo(f"[{job}] dashboard and /metrics: http://{server.address}/ (Ctrl-C stops)")
    try:
        stop.wait()
    finally:
        server.close()

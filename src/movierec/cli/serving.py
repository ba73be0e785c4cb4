"""The command that serves the API and the page: serve."""

from __future__ import annotations

import typer

from movierec.cli.group import RunDir, app


@app.command()
def serve(
    run: RunDir,
    store: str | None = typer.Option(
        None, "--store", help="Precomputed recommendations written by `movierec batch`."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1: this machine)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Processes, each with its own model copy."),
    access_log: bool = typer.Option(False, help="Log every request (costs throughput)."),
    limit_concurrency: int = typer.Option(
        2048, min=1, help="Open connections plus running requests past which requests get 503."
    ),
    timeout_keep_alive: float = typer.Option(
        5.0, min=0.1, help="Seconds an idle keep-alive connection stays open."
    ),
    request_timeout: float = typer.Option(
        10.0, min=0.1, help="Seconds a client has to send a whole request; then 408."
    ),
    max_head_bytes: int = typer.Option(
        16384, min=1024, help="Largest request line plus headers; larger gets 431."
    ),
) -> None:
    """Serve the JSON API (OpenAPI at /docs) and the web page at /. A new store written to
    the same path by `movierec batch` is picked up without a restart."""
    from movierec import service

    service.serve(
        run,
        store,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=timeout_keep_alive,
        request_timeout=request_timeout,
        max_head_bytes=max_head_bytes,
    )

"""gunicorn settings of bench/central_api.py's hello-world: the central's own, without the worker hook that
starts the central's SQLite checkpointer (the hello-world has no service context, and a worker whose hook
fails dies before it answers)."""

from secl.central.gunicorn_conf import *  # noqa: F403


def post_worker_init(worker: object) -> None:
    """Nothing to start: no database."""

"""Shared pytest fixtures: they live in helper modules (tests/swtpm.py, tests/kmip_server.py, ...),
registered here as plugins."""

pytest_plugins = [
    "tests.swtpm",
    "tests.central_fixtures",
    "tests.live_central",
    "tests.agent_harness",
    "tests.inprocess_agent",
    "tests.cli_central",
    "tests.kmip_server",
]

"""Shared pytest fixtures. swtpm fixtures live in tests/swtpm.py, the KMIP server in tests/kmip_server.py;
both are registered here."""

pytest_plugins = [
    "tests.swtpm",
    "tests.central_fixtures",
    "tests.live_central",
    "tests.agent_harness",
    "tests.kmip_server",
]

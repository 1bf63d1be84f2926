"""Shared pytest fixtures. swtpm fixtures live in tests/swtpm.py and are registered here."""

pytest_plugins = ["tests.swtpm", "tests.central_fixtures", "tests.live_central", "tests.agent_harness"]

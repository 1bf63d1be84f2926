"""Evidence from a host's trust agent: the agent client, fetching, and verifying the quote and building the host manifest.

No API of its own: reports and flavor import use it."""

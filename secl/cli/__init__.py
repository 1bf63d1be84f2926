"""The ``secl`` admin command line."""

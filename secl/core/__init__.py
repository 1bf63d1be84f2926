"""The shared evidence core: formats and their verification, with no network, database, TPM or file I/O.

Every function here takes bytes (or already-parsed objects) and returns frozen dataclasses, and every
failure is an :class:`secl.core.errors.EvidenceError`. The central server, the agents and the CLI wrap it.
"""

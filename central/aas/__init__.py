"""AAS: users, roles, tokens and the audit log (``/aas/v1``)."""

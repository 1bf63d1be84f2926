"""/hvs/v2: the Host Verification Service (so far its Privacy CA and endorsement trust store)."""

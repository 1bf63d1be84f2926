"""The key broker (``/kbs/v1``): keys held for image owners, released only wrapped to attested hosts' TPMs."""

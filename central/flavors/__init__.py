"""Flavors (/hvs/v2/flavors): the signed flavor store, upload and export, import from a golden host, SOFTWARE flavors."""

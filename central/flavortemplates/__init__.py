"""Flavor templates (/hvs/v2/flavor-templates): what flavor import makes from a host, and the shipped defaults."""

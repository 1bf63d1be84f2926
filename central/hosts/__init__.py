"""Hosts (/hvs/v2/hosts): registration, their flavor groups, and their standing for placement."""

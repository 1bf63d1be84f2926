"""Flavor groups (/hvs/v2/flavorgroups): match policies per flavor part, and the flavors in each group."""

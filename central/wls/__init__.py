"""The workload service (``/wls/v2``): keys for workload agents on attested hosts, images and image flavors,
VM trust reports."""

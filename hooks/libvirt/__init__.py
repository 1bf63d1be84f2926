"""The libvirt qemu hook. Installed as ``secl.hooks.libvirt``; built by the workload issue."""

"""Hooks that other software (libvirt) runs. Installed as ``secl.hooks``."""

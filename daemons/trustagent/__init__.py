"""The trust agent daemon. Installed as ``secl.trustagent``."""

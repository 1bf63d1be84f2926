"""The central server (Flask application). Installed as ``secl.central``; built by the central-server issue."""

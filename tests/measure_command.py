"""The installed ``secl-measure`` command (beside this interpreter), run as a process.

``run`` points it at no trust agent configuration (``SECL_TRUSTAGENT_CONFIG=/dev/null``), so only its
options and the environment given decide what it does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMMAND = Path(sys.executable).with_name("secl-measure")


def run(
    *args: str | Path, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SECL_TRUSTAGENT_CONFIG": "/dev/null", **(env or {})}
    return subprocess.run(
        [*prefix, str(COMMAND), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )

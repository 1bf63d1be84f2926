"""The one exception of the image owner's tools.

Each :class:`ImageError` carries a stable ``code`` (kebab-case, for scripts and tests to key on) and a
one-line message for the user that names the file and says what to do. Nothing else escapes the engine
for a bad image, a wrong key or a missing tool.
"""

from __future__ import annotations


class ImageError(Exception):
    """An image could not be encrypted or decrypted; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])

"""Access to the shared, read-only evidence corpus (../shared/corpus, see its INDEX.md).

A test that needs the corpus fails loudly when it is missing: a silent skip would hide exactly the
regressions the corpus exists to catch.
"""

from __future__ import annotations

import base64
import json
import os
from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


@cache
def corpus_root() -> Path:
    """Return the corpus folder: $SECL_CORPUS, else ../shared/corpus beside the repository."""
    candidates = []
    if os.environ.get("SECL_CORPUS"):
        candidates.append(Path(os.environ["SECL_CORPUS"]))
    candidates += [_REPO.parent / "shared" / "corpus", Path("/work/shared/corpus")]
    for candidate in candidates:
        if (candidate / "INDEX.md").is_file():
            return candidate
    raise FileNotFoundError(
        "evidence corpus not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); set SECL_CORPUS to the folder holding corpus/INDEX.md"
    )


def corpus_path(relative: str) -> Path:
    """Return the path of a corpus file, failing loudly if it is not there."""
    path = corpus_root() / relative
    if not path.exists():
        raise FileNotFoundError(f"corpus file missing: {path}")
    return path


def corpus_bytes(relative: str) -> bytes:
    """Return a corpus file's bytes, decoding ``.b64`` files (tpm2-tss ships its logs base64-encoded)."""
    data = corpus_path(relative).read_bytes()
    if relative.endswith(".b64"):
        return base64.b64decode(b"".join(data.split()))
    return data


def expected(name: str) -> dict:
    """Return one of the corpus's ``_expected/*.json`` files."""
    return json.loads(corpus_path(f"_expected/{name}").read_text())

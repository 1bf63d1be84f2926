"""The verifier's per-process memos are sized by ``verifier_memo_hosts`` (a remembered boot is ~260 KiB)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Flask
from secl.central.hvs import verifier


def _memos(app: Flask, hosts: int) -> verifier.EvidenceMemos:
    app.extensions["secl.config"] = replace(app.extensions["secl.config"], verifier_memo_hosts=hosts)
    app.extensions.pop(verifier._EVIDENCE_MEMOS, None)
    return verifier.evidence_memos(app)


def test_memo_size_follows_the_configuration(central_app: Flask) -> None:
    built: Any = object()  # stands for a ManifestEvidence: the memo only keeps it
    none = _memos(central_app, 0)
    none.manifests.remember(b"key", b"log", built)
    assert none.manifests.lookup(b"key", b"log") is None  # 0: nothing is kept

    two = _memos(central_app, 2)
    assert verifier.evidence_memos(central_app) is two  # one per application
    for n in range(3):
        two.manifests.remember(b"key%d" % n, b"log", built)
    assert two.manifests.lookup(b"key0", b"log") is None  # the oldest went when the third came
    kept = two.manifests.lookup(b"key2", b"log")
    assert kept is not None and kept.built is built
    assert two.manifests.lookup(b"key2", b"other log") is None

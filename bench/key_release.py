"""Bench: wrapped-key releases per second on one core, each on a fresh report, beside two baselines.

Run: ``.venv/bin/python bench/key_release.py [--seconds N] [--profile]``. The evidence is real: a swtpm
makes the host's AIK and binding key and certifies the binding key with the AIK; a Privacy CA issues the
AIK certificate and the binding-key certificate (SecL's shape, :mod:`secl.core.certifiedkey`); a report
signer signs the attestation result (ES256 JWT) that names both. One release is what the key broker does
for ``POST /kbs/v1/keys/{id}/transfer`` besides the database and HTTP:
:func:`secl.central.kbs.transfer.authorize_transfer` (the JWT's signature and claims, the two certificates
against the Privacy CA, the certify statement under the AIK, the policy's trust, tags and report age) and
:func:`secl.core.keywrap.wrap_key` (RSA-OAEP-SHA256 to the binding key).

Baselines, measured interleaved in the same run (so the ratios hold when the machine is busy):

- wrap: the bare RSA-OAEP-SHA256 wrap of a 32-byte key to the RSA-2048 binding key — the floor of any
  release;
- quote floor: ``bench/quote_verify.py``'s floor, a bare pyca RSA-2048 PKCS1v15-SHA256 verify of a quote.

A second figure is the whole service, ``secl.central.kbs.service.transfer_to_host``, on a central that
``secl-central setup`` made (SQLite): the key, its policy and the trust stores read, the sealed key
opened, the release audited and committed.

Bar: ≥ 300 releases/s on one core, for both.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quote_verify import _free_port_pair, _wait, corpus_quote, rates, swtpm_quote

from secl.central.config import CentralConfig
from secl.central.context import open_services
from secl.central.kbs import service
from secl.central.kbs.keystore import KeyAlgorithm, KeySpec
from secl.central.kbs.transfer import TransferEvidence, TrustAnchors, authorize_transfer
from secl.central.kbs.transferpolicy import TransferPolicy, parse_usage_tags
from secl.central.setup import run_setup
from secl.core.attestation import AttestationResult, sign_attestation_result
from secl.core.certifiedkey import (
    KeyUsage,
    build_certified_key_certificate,
    verify_certified_key,
)
from secl.core.keywrap import wrap_key
from secl.core.quote import verify_quote
from secl.core.tpm import load_ak_public, unmarshal_signature
from secl.core.verifymemo import VerificationMemo
from secl.host.certifiedkeys import certification_request
from secl.host.tpm import TPMAdapter
from tests.tpmkeys import issue_certificate, make_ca

BAR = 300.0
HOST_UUID = "4c4c4544-0042-4d10-8058-b3c04f4e3732"


def host_evidence() -> tuple[TransferEvidence, TrustAnchors]:
    """A host's evidence made on a live swtpm, and the anchors of the central that attested it."""
    privacy_ca = make_ca("Privacy CA")
    signer_ca = make_ca("report signer CA")
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = issue_certificate(signer_ca, signer_key.public_key(), "reports")
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port_pair()
        cmd = ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={tmp}", "--flags", "not-need-init,startup-clear",
               "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
               "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(port)
            with TPMAdapter(f"swtpm:host=127.0.0.1,port={port}") as tpm:
                ak = tpm.create_ak("rsa")
                aik_cert = issue_certificate(privacy_ca, load_ak_public(ak.public).key, "AIK")
                binding = tpm.create_key("rsa")
                certified = verify_certified_key(
                    certification_request(tpm, binding, ak), KeyUsage.BINDING, load_ak_public(ak.public)
                )
        finally:
            proc.kill()
            proc.wait()
    binding_cert = build_certified_key_certificate(certified, *privacy_ca, days=30)
    aik_der, binding_der = aik_cert.public_bytes(Encoding.DER), binding_cert.public_bytes(Encoding.DER)
    now = int(time.time())
    result = AttestationResult(
        issuer="central.example", subject=HOST_UUID, host_name="host1", issued_at=now, expires_at=now + 3600,
        trusted=True, parts={"PLATFORM": True, "OS": True},
        aik_certificate_sha384=hashlib.sha384(aik_der).hexdigest(), report_id="r1",
        evidence_digest="00" * 32, tags={"country": "DE"},
        binding_key_certificate_sha384=hashlib.sha384(binding_der).hexdigest(),
    )  # fmt: skip
    token = sign_attestation_result(result, signer_key, signer_cert.fingerprint(hashes.SHA256()).hex())
    return TransferEvidence(token, aik_der, binding_der), TrustAnchors([signer_cert], [privacy_ca[0]])


def service_release(
    evidence: TransferEvidence, anchors: TrustAnchors, state_dir: Path
) -> tuple[object, object]:
    """The whole service on a central that ``secl-central setup`` made (SQLite): ``transfer_to_host`` reads
    the key, its policy and the trust stores, reads the sealed key, authorizes, wraps, writes the audit row
    and commits — everything ``POST /kbs/v1/keys/{id}/transfer`` does but HTTP. The attesting central's
    report signer and Privacy CA are registered in its trust stores, as for a second central."""
    config = CentralConfig(state_dir=state_dir, database_url="", hostname="localhost")
    run_setup(config)
    services = open_services(config)
    session = services.database.sessions()
    for kind, certificate in ((service.REPORT_SIGNER, anchors.report_signers[0]),
                              (service.PRIVACY_CA, anchors.privacy_cas[0])):  # fmt: skip
        pem = certificate.public_bytes(Encoding.PEM).decode()
        service.add_trusted_certificate(session, kind, pem, actor="bench")
    request = service.KeyRequest(KeySpec(KeyAlgorithm.AES, 256, None), None, None, "bench", "")
    key_id = service.create_key(session, services, request, actor="bench").id

    def release() -> bytes:
        return service.transfer_to_host(session, services, key_id, evidence, actor="bench").wrapped

    return release, services


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per figure")
    parser.add_argument("--profile", action="store_true", help="print where a release spends its time")
    args = parser.parse_args()
    if shutil.which("swtpm") is None:
        print("swtpm is not installed: the binding key must be made and certified in a TPM", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    evidence, anchors = host_evidence()
    # A fresh report: 300 s, SecL's key cache time, is the policy's limit; the report is seconds old.
    policy = TransferPolicy(required_tags=parse_usage_tags("country:DE"), max_report_age_seconds=300)
    key = os.urandom(32)
    memo = VerificationMemo()  # the central's: services.memos.signatures
    binding = authorize_transfer(evidence, anchors, policy, memo=memo).binding_key  # must pass before timing

    def release() -> bytes:
        return wrap_key(authorize_transfer(evidence, anchors, policy, memo=memo).binding_key, key)

    state = tempfile.TemporaryDirectory()
    full_release, services = service_release(evidence, anchors, Path(state.name) / "central")
    full_release()  # must pass before it is timed

    quote = swtpm_quote() if shutil.which("swtpm") else corpus_quote()
    verify_quote(quote.ak, quote.attest, quote.signature, qualifying_data=quote.nonce, pcrs=quote.pcrs)
    ak_key, raw_sig = quote.ak.key, unmarshal_signature(quote.signature).signature

    def floor() -> None:
        ak_key.verify(raw_sig, quote.attest, PKCS1v15(), SHA256())

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(300):
            release()
            full_release()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    secl, full, wrap, quote_floor = rates(
        [release, full_release, lambda: wrap_key(binding, key), floor], args.seconds
    )
    services.database.dispose()  # type: ignore[attr-defined]
    state.cleanup()
    print(f"key release (authorize_transfer + wrap_key, fresh report), one core: {secl:10,.0f} /s")
    print(f"key release through the service (transfer_to_host, SQLite, audited): {full:10,.0f} /s")
    print(f"baseline: bare RSA-2048 OAEP-SHA256 wrap of a 32-byte key:            {wrap:10,.0f} /s")
    print(f"baseline: quote floor (pyca RSA-2048 PKCS1v15-SHA256 verify):         {quote_floor:10,.0f} /s")
    print(f"ratio wrap/release: {wrap / secl:.2f}x; quote floor/release: {quote_floor / secl:.2f}x; "
          f"wrap/service release: {wrap / full:.2f}x")  # fmt: skip
    ok = secl >= BAR and full >= BAR
    print(f"bar ≥ {BAR:.0f} releases/s/core: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

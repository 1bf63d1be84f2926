"""The image owner's side of the key broker (``/kbs/v1``): create or look up a key, fetch it wrapped.

SecL's WPM flow: the tool makes an RSA key pair in memory for this run only, sends the public half to
``POST /kbs/v1/keys/{id}`` (the envelope transfer), and unwraps the answer (RSA-OAEP-SHA256, label
``TPM2\\0``) with the private half, which never leaves this process. So the AES key crosses the network
wrapped even inside TLS, and exists in plaintext only in this process's memory: never on disk, never on a
command line.

Authentication is the ``secl login`` session (:mod:`secl.centralclient`): the same token and the same
TLS verification as the admin CLI, so an image owner logs in once for both tools.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from secl.centralclient import (
    CentralClient,
    CentralError,
    fetch_ca_certificates,
    load_session,
    normalize_url,
    pinned_root_ca,
    segment,
)
from secl.core.keywrap import KeyWrapError, unwrap_key
from secl.wpm.errors import ImageError
from secl.wpm.imagekey import KEY_BYTES

KEYS = "/kbs/v1/keys"
#: The envelope key's size: RSA-3072 (128-bit strength, as the AES-256 key it carries deserves more than
#: RSA-2048's 112 bits); made once per run, so its generation time is paid once.
ENVELOPE_BITS = 3072


@dataclass(frozen=True)
class BrokerKey:
    """Where the image key lives: a central's key broker, and which key (``key_id``; None: create one)."""

    central: str
    key_id: str | None = None
    policy_id: str | None = None
    label: str = ""
    ca_file: Path | None = None
    ca_fingerprint: str | None = None

    def describe(self) -> str:
        return f"key {self.key_id or '(new)'} in the key broker at {self.central}"


@dataclass(frozen=True)
class BrokerAnswer:
    material: bytes
    key_id: str
    key_url: str
    created: bool


def _client(broker: BrokerKey) -> CentralClient:
    """A client of the broker's central with the ``secl login`` token; the CA is the one given here, else
    the session's."""
    session = load_session()
    url = normalize_url(broker.central)
    if normalize_url(session.url) != url:
        raise CentralError(
            f"the secl session is for {session.url}, not {url}: run `secl login --url {url}` first"
        )
    if broker.ca_file is not None:
        return CentralClient(url, ca_file=str(broker.ca_file), token=session.token)
    if broker.ca_fingerprint is not None:
        ca_pem = pinned_root_ca(fetch_ca_certificates(url), broker.ca_fingerprint)
        return CentralClient(url, ca_pem=ca_pem, token=session.token)
    return CentralClient(url, ca_file=session.ca_file, ca_pem=session.ca_pem, token=session.token)


def fetch_key(broker: BrokerKey) -> BrokerAnswer:
    """The image key from the broker (created first when ``broker.key_id`` is None), unwrapped in memory."""
    try:
        with _client(broker) as central:
            created = broker.key_id is None
            key = (
                _create(central, broker) if created else central.get(f"{KEYS}/{segment(broker.key_id or '')}")
            )
            info = key["key_information"]
            if info["algorithm"] != "AES" or info.get("key_length") != KEY_BYTES * 8:
                raise ImageError(
                    "bad-key",
                    f"key {info['id']} is {info['algorithm']}-{info.get('key_length')}; images need AES-256",
                )
            try:
                material = _envelope_transfer(central, info["id"])
            except BaseException:
                if created:  # a key nobody can use: do not leave it behind
                    discard_key(central, info["id"])
                raise
    except CentralError as exc:
        raise ImageError("key-broker", f"{broker.describe()}: {exc}") from None
    return BrokerAnswer(material, info["id"], key["transfer_link"], created)


def _create(central: CentralClient, broker: BrokerKey) -> Any:
    body: dict[str, Any] = {
        "key_information": {"algorithm": "AES", "key_length": KEY_BYTES * 8},
        "label": broker.label,
        "usage": "vm-image",
    }
    if broker.policy_id is not None:
        body["transfer_policy_id"] = broker.policy_id
    return central.post(KEYS, body)


def _envelope_transfer(central: CentralClient, key_id: str) -> bytes:
    envelope = rsa.generate_private_key(public_exponent=65537, key_size=ENVELOPE_BITS)
    pem = envelope.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = central.post_data(f"{KEYS}/{segment(key_id)}", pem, "application/x-pem-file")
    try:
        wrapped = base64.b64decode(answer["payload"], validate=True)
        material = unwrap_key(envelope, wrapped)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise CentralError("the key broker's answer holds no wrapped key") from None
    except KeyWrapError as exc:
        raise CentralError(f"the wrapped key does not open: {exc.message}") from None
    if len(material) != KEY_BYTES:
        raise CentralError(f"the key broker released {len(material)} bytes, not an AES-256 key")
    return material


def discard_key(central: CentralClient, key_id: str) -> None:
    """Best effort: delete a key this run created and could not use (its failure is the one reported)."""
    with contextlib.suppress(CentralError):
        central.delete(f"{KEYS}/{segment(key_id)}")


def delete_created_key(broker: BrokerKey, key_id: str) -> None:
    """After a failed encryption, delete the key this run created for it."""
    with contextlib.suppress(CentralError), _client(broker) as central:
        discard_key(central, key_id)

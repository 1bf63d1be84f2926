"""The KMIP key store: key material kept on a KMIP server, reached over mutual TLS.

The database keeps the KMIP *unique identifier* as the reference; the material never leaves the server
except for :meth:`KmipKeyStore.material`, which returns it in the store-independent form (raw AES octets,
RSA/EC private keys as PKCS#8 DER).

Choices, and why:

- **AES keys are made by the server** (KMIP Create), so their material exists nowhere else until a host's
  key transfer asks for it. **RSA and EC keys are made here** (:func:`keymaterial.generate`) and
  Registered as PKCS#8 private keys: PyKMIP's server implements CreateKeyPair for RSA only (no EC), stores
  that private key as PKCS#1, and makes a public-key object beside it that would have to be tracked and
  destroyed too. One path (Register) for both asymmetric kinds and for an owner's own keys is simpler and
  behaves the same on every KMIP server.
- **Each object is named** ``secl-kbs:<key id>`` (the KMIP Name attribute). :meth:`material` and
  :meth:`delete` check that name first, so a reference copied onto another key's row neither releases
  nor destroys the other key's material (the same binding the sealed store gets from its associated
  data). Create and Register read the attributes back before returning, so a server that does not keep
  the name, or recorded another algorithm or length, fails the creation at once rather than every later
  transfer; the object is then destroyed again (best effort) before the error is raised.
- **One connection per operation.** PyKMIP's client is not thread-safe and the central runs threaded
  gunicorn workers; a fresh mTLS connection per call costs one handshake (a whole :meth:`material` call,
  handshake and two requests, takes about 12 ms against PyKMIP's server on one machine), needs no lock, and survives a KMIP server restart without a reconnect-and-retry path that could repeat a
  Create. ``timeout_seconds`` bounds the connect, the TLS handshake and each read of a response. The
  credential files are read again for each connection, so renewed certificates take effect at once.
- **TLS is ours, not PyKMIP's.** PyKMIP's own socket setup verifies the server's chain but not its name,
  leaves the protocol versions to the interpreter's defaults (through the deprecated ``PROTOCOL_TLS``)
  and connects over IPv4 only; :class:`KmipKeyStore` opens the connection itself (any address family)
  with TLS 1.2 or later, the configured CA only, and the server's certificate checked against ``host``.
- **Delete** checks the name, revokes the object first if something activated it (KMIP servers refuse to
  destroy an Active object), then Destroys it. An object already gone from the server is logged and
  counted as deleted: the broker is deleting it anyway, and failing would leave a key row whose material
  can never be read.
- **Nothing half-written**, within what a client can see: a create or register that fails after the
  server assigned an identifier destroys that object before raising. If the connection drops between the
  server creating an object and us reading its identifier, the object stays on the server, findable by its
  name ``secl-kbs:<key id>``; the caller never received a reference to it. A caller that fails to record
  a returned reference (its database transaction) should :meth:`delete` it.
- **Errors:** a server that cannot be reached, refuses the TLS handshake, does not answer in time or
  refuses the client certificate raises :class:`KeyStoreUnavailable` (code ``keystore-unavailable``) naming
  ``host:port`` and what to check; a KMIP operation the server refuses raises :class:`KeyStoreError`
  (``kmip-key-not-found``, ``kmip-permission-denied``, ``kmip-operation-failed``, ...). Messages carry
  identifiers, reasons and paths, never material: PyKMIP's key objects print their key value in their
  ``repr``, so none of them reaches a message or a log line.
"""

from __future__ import annotations

import logging
import socket
import ssl
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secl.central.kbs import keymaterial
from secl.central.kbs.keystore import (
    KeyAlgorithm,
    KeyMaterialInvalid,
    KeySpec,
    KeyStoreError,
    KeyStoreUnavailable,
    StoredKey,
)

with warnings.catch_warnings():
    # PyKMIP 0.11 calls SQLAlchemy's declarative_base() from its old place at import (for its server's
    # database, which the client never touches): a MovedIn20Warning the central's log need not carry.
    warnings.filterwarnings("ignore", message=r".*declarative_base\(\)", category=Warning)
    from kmip import enums
    from kmip.pie import exceptions as pie_exceptions
    from kmip.pie import objects as pie_objects
    from kmip.pie.client import ProxyKmipClient
    from kmip.services.kmip_client import KMIPProxy
    from kmip.services.kmip_protocol import KMIPProtocol, RequestLengthMismatch

STORE_NAME = "kmip"
NAME_PREFIX = "secl-kbs:"
DEFAULT_PORT = 5696
DEFAULT_TIMEOUT_SECONDS = 10

_log = logging.getLogger(__name__)
T = TypeVar("T")

_EC_ALGORITHMS = (enums.CryptographicAlgorithm.EC, enums.CryptographicAlgorithm.ECDSA)


@dataclass(frozen=True, slots=True)
class KmipSettings:
    """Where the KMIP server is and the files of the central's mTLS client identity."""

    host: str
    client_certificate: Path
    client_key: Path
    ca_certificate: Path
    port: int = DEFAULT_PORT
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def object_name(key_id: str) -> str:
    """The KMIP Name attribute of a key's object: binds the object to the broker's key id."""
    return NAME_PREFIX + key_id


class _MtlsProxy(KMIPProxy):
    """PyKMIP's transport with the connection opened by us: TLS >= 1.2, server name checked, any address
    family, one timeout for connect, handshake and reads."""

    def __init__(self, settings: KmipSettings, context: ssl.SSLContext) -> None:
        # config_file=/dev/null: nothing from a stray /etc/pykmip/pykmip.conf or ~/.pykmip/pykmip.conf.
        super().__init__(host=settings.host, port=settings.port, config_file="/dev/null")
        self._settings = settings
        self._context = context

    def open(self) -> None:
        settings = self._settings
        raw = socket.create_connection((settings.host, settings.port), timeout=settings.timeout_seconds)
        try:
            self.socket = self._context.wrap_socket(raw, server_hostname=settings.host)
        except BaseException:
            raw.close()
            raise
        self.protocol = KMIPProtocol(self.socket)


class KmipKeyStore:
    """Key material on a KMIP server; the reference is the object's unique identifier."""

    name = STORE_NAME

    def __init__(self, settings: KmipSettings) -> None:
        self.settings = settings
        # Load the credentials now so a wrong path or a key that does not match its certificate stops the
        # central at startup, not at the first key request.
        self._tls_context()

    def __repr__(self) -> str:
        return f"KmipKeyStore({self.settings.address})"

    # -- the KeyStore protocol -------------------------------------------------------------------------

    def create(self, key_id: str, spec: KeySpec) -> StoredKey:
        spec = keymaterial.check_spec(spec)
        if spec.algorithm is not KeyAlgorithm.AES:
            return self.register(key_id, spec, keymaterial.generate(spec))
        assert spec.length is not None
        length = spec.length

        def make(client: ProxyKmipClient) -> str:
            return str(client.create(enums.CryptographicAlgorithm.AES, length, name=object_name(key_id)))

        return self._run("create", key_id, lambda client: self._store_new(client, key_id, spec, make))

    def register(self, key_id: str, spec: KeySpec, material: bytes) -> StoredKey:
        spec = keymaterial.check_spec(spec)
        material = keymaterial.normalize(spec, material)
        managed = _managed_object(spec, material, object_name(key_id))

        def make(client: ProxyKmipClient) -> str:
            return str(client.register(managed))

        return self._run("register", key_id, lambda client: self._store_new(client, key_id, spec, make))

    def material(self, key_id: str, stored: StoredKey) -> bytes:
        uid = self._uid(stored)

        def fetch(client: ProxyKmipClient) -> bytes:
            self._check_owner(key_id, uid, _attributes(client, uid, ["Name"]))
            return _material_of(client.get(uid), uid)

        return self._run("get", key_id, fetch, uid=uid)

    def delete(self, key_id: str, stored: StoredKey) -> None:
        uid = self._uid(stored)

        def destroy(client: ProxyKmipClient) -> None:
            try:
                attributes = _attributes(client, uid, ["Name", "State"])
            except pie_exceptions.KmipOperationFailure as exc:
                if _not_found(exc):
                    _log.info("KMIP object %s of key %s is already gone from the server", uid, key_id)
                    return
                raise
            self._check_owner(key_id, uid, attributes)
            state = _single(attributes, "State")
            if state is enums.State.ACTIVE:
                # Something outside the broker activated it: KMIP destroys only non-active objects.
                client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
            try:
                client.destroy(uid)
            except pie_exceptions.KmipOperationFailure as exc:
                if not _not_found(exc):
                    raise
                _log.info("KMIP object %s of key %s vanished before its destroy", uid, key_id)

        self._run("destroy", key_id, destroy, uid=uid)

    # -- internals -------------------------------------------------------------------------------------

    def _store_new(
        self, client: ProxyKmipClient, key_id: str, spec: KeySpec, make: Callable[[ProxyKmipClient], str]
    ) -> StoredKey:
        uid = make(client)
        try:
            self._check_recorded(client, key_id, uid, spec)
        except BaseException:
            self._discard(client, key_id, uid)
            raise
        return StoredKey(STORE_NAME, uid)

    def _check_recorded(self, client: ProxyKmipClient, key_id: str, uid: str, spec: KeySpec) -> None:
        """The server kept the object as asked: our name, the algorithm and the size."""
        attributes = _attributes(client, uid, ["Name", "Cryptographic Algorithm", "Cryptographic Length"])
        self._check_owner(key_id, uid, attributes)
        algorithm = _single(attributes, "Cryptographic Algorithm")
        length = _single(attributes, "Cryptographic Length")
        expected_algorithms = {
            KeyAlgorithm.AES: (enums.CryptographicAlgorithm.AES,),
            KeyAlgorithm.RSA: (enums.CryptographicAlgorithm.RSA,),
            KeyAlgorithm.EC: _EC_ALGORITHMS,
        }[spec.algorithm]
        if algorithm not in expected_algorithms or length != spec.length:
            raise KeyStoreError(
                f"the KMIP server at {self.settings.address} recorded object {uid} as "
                f"{getattr(algorithm, 'name', algorithm)}-{length}, not the "
                f"{spec.algorithm.value}-{spec.length} asked for; the object was destroyed",
                code="kmip-object-mismatch",
            )

    def _check_owner(self, key_id: str, uid: str, attributes: Any) -> None:
        names = _names(attributes)
        if object_name(key_id) not in names:
            raise KeyMaterialInvalid(
                f"KMIP object {uid} on {self.settings.address} is not named {object_name(key_id)!r} "
                f"(its names: {', '.join(map(repr, names)) or 'none'}): the reference belongs to another "
                "key or the server does not keep KMIP Name attributes",
                code="kmip-key-mismatch",
            )

    def _discard(self, client: ProxyKmipClient, key_id: str, uid: str) -> None:
        """Destroy an object we just made and will not hand out (on this connection, else on a new one);
        never raise over the error that made us discard it."""
        try:
            client.destroy(uid)
        except pie_exceptions.KmipOperationFailure as exc:
            if not _not_found(exc):
                self._discard_failed(key_id, uid, self._operation_failed("destroy", exc).code)
                return
        except Exception:
            try:
                self._run("destroy", key_id, lambda fresh: fresh.destroy(uid), uid=uid)
            except KeyStoreError as exc:
                if exc.code != "kmip-key-not-found":
                    self._discard_failed(key_id, uid, exc.code)
                    return
        _log.info("destroyed KMIP object %s after a failed store of key %s", uid, key_id)

    def _discard_failed(self, key_id: str, uid: str, code: str) -> None:
        _log.warning(
            "could not destroy KMIP object %s (named %r) on %s after a failed store of key %s (%s): "
            "remove it on the KMIP server",
            uid, object_name(key_id), self.settings.address, key_id, code,
        )  # fmt: skip

    def _uid(self, stored: StoredKey) -> str:
        if stored.store != STORE_NAME or not stored.reference:
            raise KeyMaterialInvalid(
                f"the key's material is in the {stored.store!r} store, not on the KMIP server",
                code="key-store-mismatch",
            )
        return stored.reference

    def _tls_context(self) -> ssl.SSLContext:
        settings = self.settings
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_verify_locations(cafile=settings.ca_certificate)
        except (OSError, ssl.SSLError) as exc:
            raise self._credentials_error("kmip_ca_certificate", settings.ca_certificate, exc) from None
        try:
            context.load_cert_chain(settings.client_certificate, settings.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise self._credentials_error(
                "kmip_client_certificate and kmip_client_key",
                f"{settings.client_certificate} and {settings.client_key}",
                exc,
            ) from None
        return context

    def _credentials_error(self, setting: str, path: object, exc: Exception) -> KeyStoreUnavailable:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _ssl_reason(exc)
        return KeyStoreUnavailable(
            f"cannot load {setting} ({path}) for the KMIP server {self.settings.address}: {reason}; "
            "they must be readable PEM files, the key unencrypted and matching the certificate",
            code="kmip-credentials-invalid",
        )

    def _client(self) -> ProxyKmipClient:
        client = ProxyKmipClient(config_file="/dev/null")
        client.proxy = _MtlsProxy(self.settings, self._tls_context())
        return client

    def _run(self, action: str, key_id: str, operation: Callable[[ProxyKmipClient], T], uid: str = "") -> T:
        """Open a connection, run ``operation`` on it, close it; translate failures into store errors."""
        what = f"KMIP {action}" + (f" of object {uid}" if uid else "") + f" for key {key_id}"
        client = self._client()
        try:
            try:
                client.open()
                return operation(client)
            finally:
                _close_quietly(client)
        except KeyStoreError:
            raise
        except pie_exceptions.KmipOperationFailure as exc:
            raise self._operation_failed(what, exc) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._unavailable(
                what,
                f"the server's certificate was refused ({exc.verify_message})",
                "that kmip_ca_certificate is the CA that issued the KMIP server's certificate and that the "
                f"certificate names {self.settings.host}",
            ) from None
        except ssl.SSLError as exc:
            raise self._unavailable(
                what,
                f"the TLS handshake failed ({_ssl_reason(exc)})",
                "that kmip_client_certificate is issued by a CA the KMIP server trusts, with "
                "extendedKeyUsage clientAuth, and that the server speaks TLS 1.2 or later",
            ) from None
        except TimeoutError:
            raise self._unavailable(
                what,
                f"no answer within {self.settings.timeout_seconds:g} s",
                "that the KMIP server is running and not overloaded, or raise kmip_timeout_seconds",
            ) from None
        except (EOFError, RequestLengthMismatch, ConnectionResetError, BrokenPipeError):
            raise self._unavailable(
                what,
                "the server closed the connection",
                "the KMIP server's log: it may refuse this client certificate (issuer, extendedKeyUsage "
                "clientAuth)",
            ) from None
        except OSError as exc:
            raise self._unavailable(
                what,
                exc.strerror or type(exc).__name__,
                "that the KMIP server is running and kmip_host and kmip_port point at it",
            ) from None
        except Exception as exc:
            # A response PyKMIP cannot decode: name the kind of error, not its text (which may quote the
            # message's bytes).
            _log.warning(
                "%s on %s: undecodable response (%s)", what, self.settings.address, type(exc).__name__
            )
            raise KeyStoreError(
                f"{what} on {self.settings.address} failed: the server's response could not be read "
                f"({type(exc).__name__}); check that it is a KMIP 1.2 server",
                code="kmip-protocol-error",
            ) from None

    def _unavailable(self, what: str, reason: str, check: str) -> KeyStoreUnavailable:
        return KeyStoreUnavailable(
            f"{what}: cannot use the KMIP server at {self.settings.address}: {reason}; check {check}"
        )

    def _operation_failed(self, what: str, exc: Any) -> KeyStoreError:
        reason = exc.reason
        reason_name = getattr(reason, "name", str(reason))
        # The server's own words, bounded: PyKMIP's are short ("Could not locate object: 7").
        detail = str(exc.message or "")[:200]
        where = f"{what} on {self.settings.address} failed: {reason_name}" + (
            f" ({detail})" if detail else ""
        )
        if reason is enums.ResultReason.AUTHENTICATION_NOT_SUCCESSFUL:
            return KeyStoreUnavailable(
                f"{where}; the server refuses the client certificate: check that kmip_client_certificate "
                "has extendedKeyUsage clientAuth and is issued by a CA the KMIP server trusts"
            )
        if _not_found(exc):
            return KeyStoreError(
                f"{where}: the key's material is not on the KMIP server (destroyed there?)",
                code="kmip-key-not-found",
            )
        if reason in (enums.ResultReason.PERMISSION_DENIED, enums.ResultReason.NOT_AUTHORISED):
            return KeyStoreError(
                f"{where}: the server does not let this client use the object (KMIP objects belong to the "
                "client identity that made them: the central's certificate subject must stay the same)",
                code="kmip-permission-denied",
            )
        return KeyStoreError(where, code="kmip-operation-failed")


def _managed_object(spec: KeySpec, material: bytes, name: str) -> Any:
    if spec.algorithm is KeyAlgorithm.AES:
        assert spec.length is not None
        return pie_objects.SymmetricKey(enums.CryptographicAlgorithm.AES, spec.length, material, name=name)
    algorithm = (
        enums.CryptographicAlgorithm.RSA
        if spec.algorithm is KeyAlgorithm.RSA
        else enums.CryptographicAlgorithm.EC
    )
    assert spec.length is not None  # check_spec fills in an EC curve's size
    return pie_objects.PrivateKey(algorithm, spec.length, material, enums.KeyFormatType.PKCS_8, name=name)


def _material_of(managed: Any, uid: str) -> bytes:
    """The store-independent form of a KMIP object: raw AES octets or a PKCS#8 DER private key."""
    if isinstance(managed, pie_objects.SymmetricKey):
        if (
            managed.cryptographic_algorithm is enums.CryptographicAlgorithm.AES
            and managed.key_format_type is enums.KeyFormatType.RAW
        ):
            return bytes(managed.value)
    elif isinstance(managed, pie_objects.PrivateKey):
        if managed.key_format_type is enums.KeyFormatType.PKCS_8:
            return bytes(managed.value)
        if managed.key_format_type in (enums.KeyFormatType.PKCS_1, enums.KeyFormatType.EC_PRIVATE_KEY):
            # A server may hand back another DER encoding than the one registered.
            try:
                key = serialization.load_der_private_key(bytes(managed.value), password=None)
            except (ValueError, TypeError):
                key = None
            if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                return key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
    kind = type(managed).__name__
    algorithm = getattr(getattr(managed, "cryptographic_algorithm", None), "name", "?")
    fmt = getattr(getattr(managed, "key_format_type", None), "name", "?")
    raise KeyMaterialInvalid(
        f"KMIP object {uid} is a {kind} ({algorithm}, {fmt}), not an AES key or a private key the "
        "broker holds",
        code="kmip-object-unsupported",
    )


def _attributes(client: ProxyKmipClient, uid: str, names: list[str]) -> Any:
    _, attributes = client.get_attributes(uid, names)
    return attributes


def _values(attributes: Iterable[Any], name: str) -> list[Any]:
    return [a.attribute_value for a in attributes if a.attribute_name.value == name]


def _single(attributes: Iterable[Any], name: str) -> Any:
    values = _values(attributes, name)
    return values[0].value if values else None


def _names(attributes: Iterable[Any]) -> list[str]:
    return [str(v.name_value.value) for v in _values(attributes, "Name")]


def _not_found(exc: Any) -> bool:
    return exc.reason in (
        enums.ResultReason.ITEM_NOT_FOUND,
        enums.ResultReason.OBJECT_NOT_FOUND,
        enums.ResultReason.OBJECT_DESTROYED,
    )


def _close_quietly(client: ProxyKmipClient) -> None:
    try:
        client.close()
    except Exception:  # a connection the server already dropped: nothing left to close
        _log.debug("closing a KMIP connection failed", exc_info=True)


def _ssl_reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or type(exc).__name__

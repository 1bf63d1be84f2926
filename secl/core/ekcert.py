"""EK certificates: a tolerant loader and chain validation against trusted TPM vendor CAs.

Real EK certificates and vendor roots are often not strict DER (Nuvoton's unsorted SETs, Intel PTT's explicit
``critical=FALSE``, a non-minimal serial in STM intermediates, NV reads padded with 0xFF). The loader tries
python-cryptography's strict parser first and falls back to asn1crypto only when it must, recording every
repair it made in ``fixups`` so a report can say how far from DER a certificate was. Signatures are always
checked over the tbsCertificate bytes exactly as encoded, never over a re-encoding.

:func:`load_ek_certificate` only parses; :func:`verify_ek_certificate` builds and checks a path and returns a
:class:`VerifiedEKChain` or raises :class:`EKCertificateError` with a stable ``code``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from asn1crypto import algos, core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from secl.core.errors import EKCertificateError

#: Longest accepted path, leaf and trust anchor included; real TPM vendor paths have two or three.
MAX_CHAIN_LENGTH = 8
#: Candidate links tried before path building gives up; bounds the work hostile intermediates can cause.
_MAX_LINK_CHECKS = 256

_TCG_NV_HEADER = b"\x10\x01\x00"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_CRYPTOGRAPHY_KIND = re.compile(r"kind: (\w+)")
_TPM_ATTRIBUTES = {"2.23.133.2.1": "manufacturer", "2.23.133.2.2": "model", "2.23.133.2.3": "version"}
_SHORT_NAMES = {"2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
                "2.5.4.6": "C", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
                "0.9.2342.19200300.100.1.1": "UID"}  # fmt: skip
# Identifier octets of universal string types (DirectoryString, IA5, Visible, Numeric) and their codecs.
_STRING_CODECS = {12: "utf-8", 19: "ascii", 22: "ascii", 26: "ascii", 18: "ascii", 20: "latin-1",
                  28: "utf-32-be", 30: "utf-16-be"}  # fmt: skip
_RSA_PKCS1_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1.2.840.113549.1.1.5": hashes.SHA1, "1.2.840.113549.1.1.11": hashes.SHA256,
                     "1.2.840.113549.1.1.12": hashes.SHA384,
                     "1.2.840.113549.1.1.13": hashes.SHA512}  # fmt: skip
_ECDSA_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1.2.840.10045.4.3.2": hashes.SHA256, "1.2.840.10045.4.3.3": hashes.SHA384,
                 "1.2.840.10045.4.3.4": hashes.SHA512}  # fmt: skip
_RSA_PSS = "1.2.840.113549.1.1.10"
# Critical extensions a path may carry. Policies and extendedKeyUsage are accepted unprocessed, as openssl
# does without -policy or -purpose; any other (nameConstraints, policyConstraints...) is refused, not ignored.
_HANDLED_CRITICAL = frozenset({"2.5.29.14", "2.5.29.15", "2.5.29.17", "2.5.29.19", "2.5.29.32", "2.5.29.35",
                               "2.5.29.37"})  # fmt: skip
_PSS_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _malformed(message: str) -> EKCertificateError:
    return EKCertificateError(message, code="malformed")


class _AttributeTypeAndValue(core.Sequence):
    # The value stays unparsed: asn1crypto's own Name insists on UTF8String for the TCG attributes, while
    # Nuvoton and Dell encode them as PrintableString, so names are decoded here, tag by tag.
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any)]  # noqa: RUF012


class _RelativeDistinguishedName(core.SetOf):
    _child_spec = _AttributeTypeAndValue


class _RDNSequence(core.SequenceOf):
    _child_spec = _RelativeDistinguishedName


@dataclass(frozen=True)
class CertName:
    """An X.509 Name: equal when RFC 5280 would match it (case and spacing folded, RDN values unordered)."""

    key: tuple[tuple[tuple[str, str], ...], ...]
    rfc4514: str = field(compare=False)

    def __str__(self) -> str:
        return self.rfc4514


def _parse_name(der: bytes) -> CertName:
    key: list[tuple[tuple[str, str], ...]] = []
    text: list[str] = []
    for rdn in _RDNSequence.load(der, strict=True):
        folded, shown = [], []
        for atv in rdn:
            oid, value = atv["type"].dotted, atv["value"]
            string = _decode_string(value)
            if string is None:  # Not a string: compared and printed as the hex of its DER (RFC 4514 "#").
                folded.append((oid, "#" + value.dump().hex()))
            else:  # RFC 5280 7.1 via a simplified RFC 4518: compatibility forms, case and runs of spaces.
                folded.append((oid, " ".join(unicodedata.normalize("NFKC", string).casefold().split())))
            shown.append(f"{_SHORT_NAMES.get(oid, oid)}={_rfc4514_value(string, value)}")
        key.append(tuple(sorted(folded)))
        text.append("+".join(shown))
    return CertName(tuple(key), ",".join(reversed(text)))


def _decode_string(value: core.Any) -> str | None:
    # A universal, primitive string's identifier octet equals its tag number, so it keys the codec table.
    raw = value.dump()
    codec = _STRING_CODECS.get(raw[0])
    if codec is None:
        return None
    try:
        return core.load(raw, strict=True).contents.decode(codec)
    except (ValueError, TypeError):  # A bad encoding: the caller falls back to the hex form.
        return None


def _rfc4514_value(string: str | None, value: core.Any) -> str:
    if string is None:
        return "#" + value.dump().hex()
    escaped = "".join("\\" + c if c in '"+,;<>\\' else "\\00" if c == "\0" else c for c in string)
    if escaped[:1] in ("#", " "):
        escaped = "\\" + escaped
    return escaped[:-1] + "\\ " if escaped.endswith(" ") and len(escaped) > 1 else escaped


@dataclass(frozen=True)
class TPMInfo:
    """TCG attributes of an EK certificate's subjectAltName directoryName, as encoded (``id:4E544300``)."""

    manufacturer: str | None
    model: str | None
    version: str | None


@dataclass(frozen=True, eq=False)
class LoadedCertificate:
    """A parsed, *unverified* certificate. Equality and hashing go by the SHA-256 of its DER."""

    der: bytes = field(repr=False)  # The certificate after NV-header stripping and trailing-byte trimming.
    tbs_der: bytes = field(repr=False)  # The tbsCertificate exactly as encoded: what the signature covers.
    signature_algorithm: str  # Dotted OID of the outer signatureAlgorithm.
    signature_parameters: bytes = field(repr=False)  # Its parameters' DER (RSA-PSS needs them), or b"".
    signature: bytes = field(repr=False)
    subject: CertName
    issuer: CertName
    serial_number: int
    not_before: datetime
    not_after: datetime
    public_key: PublicKeyTypes = field(repr=False)
    is_ca: bool | None  # basicConstraints cA; None when the extension is absent.
    path_length: int | None
    key_usage: frozenset[str] | None  # asn1crypto names, e.g. "key_cert_sign"; None when absent.
    subject_key_identifier: bytes | None
    # authorityKeyIdentifier: keyIdentifier, and the issuer's own issuer and serial number when given.
    authority_key_identifier: bytes | None
    authority_cert_issuer: CertName | None
    authority_cert_serial: int | None
    unhandled_critical_extensions: tuple[str, ...]  # Their OIDs; verification refuses such certificates.
    tpm: TPMInfo | None
    fixups: tuple[str, ...]
    fingerprint_sha256: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoadedCertificate) and other.fingerprint_sha256 == self.fingerprint_sha256

    def __hash__(self) -> int:
        return hash(self.fingerprint_sha256)

    @property
    def label(self) -> str:
        """The subject, or the serial number for EKs, whose subject is usually empty."""
        return f"'{self.subject}'" if self.subject.key else f"serial 0x{self.serial_number:x} (empty subject)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": str(self.subject),
            "issuer": str(self.issuer),
            "serial_number": f"{self.serial_number:x}",
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "fingerprint_sha256": self.fingerprint_sha256,
            "is_ca": self.is_ca,
            "tpm": None if self.tpm is None else vars(self.tpm).copy(),
            "fixups": list(self.fixups),
        }


def load_ek_certificate(data: bytes) -> LoadedCertificate:
    """Load one certificate from PEM or DER (optionally behind a TCG NV header); never verifies it."""
    data = _as_bytes(data)
    if b"-----BEGIN" in data:
        blocks = _pem_blocks(data)
        if len(blocks) != 1:
            raise _malformed(f"expected one PEM certificate, found {len(blocks)}")
        return _load_der(blocks[0], ())
    fixups: tuple[str, ...] = ()
    if data[:3] == _TCG_NV_HEADER:
        # TCG EK Credential Profile: some TPMs store the certificate behind 10 01 00 + a 2-byte length.
        if len(data) < 5 or int.from_bytes(data[3:5], "big") > len(data) - 5:
            raise _malformed("TCG NV header declares more bytes than are present")
        data, fixups = data[5 : 5 + int.from_bytes(data[3:5], "big")], ("tcg-nv-header-stripped",)
    return _load_der(data, fixups)


def load_certificates(data: bytes) -> tuple[LoadedCertificate, ...]:
    """Load a bundle of concatenated PEM certificates (text between blocks is ignored) or a single DER.

    An unparseable block fails the whole bundle, naming the block (1-based): a trust store that silently
    lacks a vendor CA would only surface later, as a puzzling "untrusted-issuer" for that vendor's TPMs.
    """
    data = _as_bytes(data)
    if b"-----BEGIN" not in data:
        return (load_ek_certificate(data),)
    certificates = []
    for number, der in enumerate(_pem_blocks(data), start=1):
        try:
            certificates.append(_load_der(der, ()))
        except EKCertificateError as exc:
            raise EKCertificateError(
                f"certificate {number} of the bundle: {exc.message}", code=exc.code
            ) from exc
    if not certificates:
        raise _malformed("no PEM certificate in the bundle")
    return tuple(certificates)


def _as_bytes(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"certificate data must be bytes, not {type(data).__name__}")
    return bytes(data)


def _pem_blocks(data: bytes) -> list[bytes]:
    matches = list(_PEM_BLOCK.finditer(data))
    if len(matches) != data.count(b"-----BEGIN "):
        raise _malformed("unterminated or garbled PEM block")
    blocks = []
    for number, match in enumerate(matches, start=1):
        if match.group(1) != b"CERTIFICATE":
            raise _malformed(f"PEM block {number} is {match.group(1).decode()!r}, not a CERTIFICATE")
        try:
            blocks.append(base64.b64decode(b"".join(match.group(2).split()), validate=True))
        except ValueError as exc:
            raise _malformed(f"PEM block {number} is not valid base64") from exc
    return blocks


def _der_header(data: bytes, offset: int) -> tuple[int, int]:
    """Return (header length, content length) of the SEQUENCE at ``offset``, checking every bound."""
    if len(data) < offset + 2 or data[offset] != 0x30:
        raise _malformed("not a DER SEQUENCE where a certificate should start")
    first = data[offset + 1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < offset + 2 + count:  # indefinite, absurd or cut-off length
        raise _malformed("bad DER length in certificate")
    return 2 + count, int.from_bytes(data[offset + 2 : offset + 2 + count], "big")


def _load_der(data: bytes, fixups: tuple[str, ...]) -> LoadedCertificate:
    header, length = _der_header(data, 0)
    if header + length > len(data):
        raise _malformed(f"certificate truncated: {header + length} bytes declared, {len(data)} present")
    if header + length < len(data):
        # NV reads return the whole index (the STM RSA EK carries 431 bytes of 0xFF after its DER).
        data, fixups = data[: header + length], (*fixups, "trailing-bytes-trimmed")
    tbs_header, tbs_length = _der_header(data, header)
    if header + tbs_header + tbs_length > len(data):
        raise _malformed("tbsCertificate overruns the certificate")
    tbs_der = data[header : header + tbs_header + tbs_length]
    try:
        strict = x509.load_der_x509_certificate(data)
        _ = strict.extensions  # Also parse the extension values cryptography knows.
    except Exception as exc:  # ValueError, InvalidVersion, DuplicateExtension...: the lax parser decides.
        kind = _CRYPTOGRAPHY_KIND.search(str(exc))
        fixups = (*fixups, f"lax-der: {kind.group(1) if kind else type(exc).__name__}")
    try:
        return _from_asn1(data, tbs_der, fixups)
    except EKCertificateError:
        raise
    except Exception as exc:  # asn1crypto does not document a closed set of exceptions for bad input.
        raise _malformed(f"certificate does not parse: {exc}") from exc


def _from_asn1(data: bytes, tbs_der: bytes, fixups: tuple[str, ...]) -> LoadedCertificate:
    cert = ax509.Certificate.load(data, strict=True)
    tbs = cert["tbs_certificate"]
    if tbs["version"].native not in ("v1", "v2", "v3"):
        raise _malformed(f"unknown X.509 version {tbs['version'].native}")
    if tbs["signature"]["algorithm"].dotted != cert["signature_algorithm"]["algorithm"].dotted:
        raise _malformed("tbsCertificate and outer signature algorithms differ")
    extensions, critical = _extensions(tbs)
    basic = ax509.BasicConstraints.load(extensions["2.5.29.19"]) if "2.5.29.19" in extensions else None
    usage = ax509.KeyUsage.load(extensions["2.5.29.15"]).native if "2.5.29.15" in extensions else None
    ski = core.OctetString.load(extensions["2.5.29.14"]).native if "2.5.29.14" in extensions else None
    aki, aki_issuer, aki_serial = None, None, None
    if "2.5.29.35" in extensions:
        parsed = ax509.AuthorityKeyIdentifier.load(extensions["2.5.29.35"])
        aki, aki_serial = parsed["key_identifier"].native, parsed["authority_cert_serial_number"].native
        for general_name in parsed["authority_cert_issuer"] or ():
            if general_name.name == "directory_name":
                aki_issuer = _parse_name(general_name.chosen.chosen.dump())
    params = cert["signature_algorithm"]["parameters"]
    not_before, not_after = tbs["validity"]["not_before"].native, tbs["validity"]["not_after"].native
    if not all(isinstance(t, datetime) and t.tzinfo is not None for t in (not_before, not_after)):
        raise _malformed("validity period is not a pair of UTC times")  # e.g. GeneralizedTime year 0
    try:
        public_key = serialization.load_der_public_key(tbs["subject_public_key_info"].dump())
    except (ValueError, TypeError) as exc:  # unsupported curve or key type, or a bad key encoding
        raise EKCertificateError(f"unusable subject public key: {exc}", code="unsupported-key") from exc
    return LoadedCertificate(
        der=data,
        tbs_der=tbs_der,
        signature_algorithm=cert["signature_algorithm"]["algorithm"].dotted,
        signature_parameters=b"" if isinstance(params, core.Void) else params.dump(),
        signature=cert["signature_value"].native,
        subject=_parse_name(tbs["subject"].dump()),
        issuer=_parse_name(tbs["issuer"].dump()),
        serial_number=tbs["serial_number"].native,
        not_before=not_before,
        not_after=not_after,
        public_key=public_key,
        is_ca=None if basic is None else bool(basic["ca"].native),
        path_length=None if basic is None else basic["path_len_constraint"].native,
        key_usage=None if usage is None else frozenset(usage),
        subject_key_identifier=ski,
        authority_key_identifier=aki,
        authority_cert_issuer=aki_issuer,
        authority_cert_serial=aki_serial,
        unhandled_critical_extensions=tuple(oid for oid in critical if oid not in _HANDLED_CRITICAL),
        tpm=_tpm_info(extensions.get("2.5.29.17")),
        fixups=fixups,
        fingerprint_sha256=hashlib.sha256(data).hexdigest(),
    )


def _extensions(tbs: ax509.TbsCertificate) -> tuple[dict[str, bytes], list[str]]:
    """Return the raw extnValue contents by OID, and the critical OIDs; only the few we use get decoded."""
    found: dict[str, bytes] = {}
    critical = []
    for extension in tbs["extensions"] or ():
        oid = extension["extn_id"].dotted
        if oid in found:
            raise _malformed(f"extension {oid} appears twice")
        found[oid] = extension["extn_value"].contents
        if extension["critical"].native:
            critical.append(oid)
    return found, critical


def _tpm_info(san: bytes | None) -> TPMInfo | None:
    if san is None:
        return None
    attributes: dict[str, str] = {}
    try:  # Best effort: the TCG attributes are informative and a vendor's oddities must not fail the load.
        for general_name in ax509.GeneralNames.load(san):
            if general_name.name == "directory_name":
                for rdn in _RDNSequence.load(general_name.chosen.chosen.dump()):
                    for atv in rdn:
                        name, string = _TPM_ATTRIBUTES.get(atv["type"].dotted), _decode_string(atv["value"])
                        if name and string is not None:
                            attributes[name] = string
    except Exception:  # See above: an unreadable SAN just yields no TPM info.
        pass
    if not attributes:
        return None
    return TPMInfo(attributes.get("manufacturer"), attributes.get("model"), attributes.get("version"))


@dataclass(frozen=True)
class EKTrustStore:
    """An immutable set of trusted TPM vendor CA certificates; each one is a trust anchor.

    Vendor bundles (and SecL's EndorsementCA file) mix roots and intermediates, and an operator who lists an
    intermediate means to trust it, so a path ends at the first certificate found here.
    """

    certificates: tuple[LoadedCertificate, ...]
    _by_subject: Mapping[CertName, tuple[LoadedCertificate, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        unique = tuple(dict.fromkeys(self.certificates))
        if not unique:
            raise EKCertificateError(
                "an EK trust store needs at least one CA certificate", code="empty-trust-store"
            )
        by_subject: dict[CertName, tuple[LoadedCertificate, ...]] = {}
        for cert in unique:
            by_subject[cert.subject] = (*by_subject.get(cert.subject, ()), cert)
        object.__setattr__(self, "certificates", unique)
        object.__setattr__(self, "_by_subject", MappingProxyType(by_subject))

    @classmethod
    def from_bundles(cls, *bundles: bytes) -> EKTrustStore:
        """Build a store from PEM bundles or DER files' bytes (see :func:`load_certificates`)."""
        return cls(tuple(cert for bundle in bundles for cert in load_certificates(bundle)))

    def __contains__(self, cert: object) -> bool:
        return isinstance(cert, LoadedCertificate) and cert in self._by_subject.get(cert.subject, ())

    def by_subject(self, name: CertName) -> tuple[LoadedCertificate, ...]:
        return self._by_subject.get(name, ())


@dataclass(frozen=True)
class VerifiedEKChain:
    """A path that verified: ``chain[0]`` is the EK certificate, ``chain[-1]`` the trust anchor."""

    chain: tuple[LoadedCertificate, ...]
    verified_at: datetime

    @property
    def certificate(self) -> LoadedCertificate:
        return self.chain[0]

    @property
    def trust_anchor(self) -> LoadedCertificate:
        return self.chain[-1]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: what was verified, when, through which certificates and with which fixups."""
        return {
            "verified": True,
            "verified_at": self.verified_at.isoformat(),
            "tpm": None if self.certificate.tpm is None else vars(self.certificate.tpm).copy(),
            "trust_anchor": str(self.trust_anchor.subject),
            "chain": [cert.to_dict() for cert in self.chain],
        }


def verify_ek_certificate(
    cert: LoadedCertificate,
    trust_store: EKTrustStore,
    *,
    intermediates: Sequence[LoadedCertificate] = (),
    at: datetime | None = None,
) -> VerifiedEKChain:
    """Build a path from ``cert`` to a trust anchor and check it at ``at`` (default: now), or raise.

    Issuers are found by normalized name, preferring an authorityKeyIdentifier match; each link's signature is
    checked over the raw tbsCertificate, every certificate (anchor included) must be within its validity
    period, and every issuer must be a CA allowed to sign certificates. When a candidate fails the next one is
    tried; if none leads to an anchor the error of the attempt that got furthest is raised.
    """
    when = datetime.now(UTC) if at is None else at
    if when.tzinfo is None:
        raise ValueError("verification time must be timezone-aware")
    _check_critical(cert)
    _check_validity(cert, when)
    builder = _PathBuilder(trust_store, intermediates, when)
    chain = builder.build((cert,))
    if chain is not None:
        return VerifiedEKChain(chain, when)
    raise max(builder.failures, key=lambda f: f[:2])[2]  # max() keeps the first of equals.


# How far an attempt got at one depth: a candidate whose signature matched says more than a mismatch.
_RANK = {"untrusted-issuer": 0, "chain-too-long": 0, "bad-signature": 1, "unsupported-algorithm": 1}


class _PathBuilder:
    """Depth-first path search with backtracking; remembers why each rejected candidate failed."""

    def __init__(self, store: EKTrustStore, intermediates: Sequence[LoadedCertificate], when: datetime):
        self.store, self.when, self.budget = store, when, _MAX_LINK_CHECKS
        self.pool: dict[CertName, list[LoadedCertificate]] = {}
        for candidate in dict.fromkeys(intermediates):
            self.pool.setdefault(candidate.subject, []).append(candidate)
        self.failures: list[tuple[int, int, EKCertificateError]] = []

    def fail(self, depth: int, message: str, code: str) -> None:
        self.failures.append((depth, _RANK.get(code, 2), EKCertificateError(message, code=code)))

    def build(self, chain: tuple[LoadedCertificate, ...]) -> tuple[LoadedCertificate, ...] | None:
        cert, depth = chain[-1], len(chain)
        if cert in self.store:
            return chain
        if depth >= MAX_CHAIN_LENGTH:
            self.fail(depth, f"no trust anchor within {MAX_CHAIN_LENGTH} certificates", "chain-too-long")
            return None
        named = (*self.store.by_subject(cert.issuer), *self.pool.get(cert.issuer, ()))
        candidates = [c for c in named if c not in chain and _aki_allows(cert, c)]
        if not candidates:
            what = "is self-signed and not trusted" if cert.subject == cert.issuer else "has no known issuer"
            if any(c not in chain for c in named):
                what = "names none of its issuer's certificates in its authorityKeyIdentifier"
            self.fail(depth, f"{cert.label} {what} (issuer '{cert.issuer}')", "untrusted-issuer")
            return None

        def preference(c: LoadedCertificate) -> tuple[bool, bool, bool]:
            # A keyIdentifier match first, trust anchors next, then those valid now; the rest are still tried.
            aki = cert.authority_key_identifier
            return (
                not (aki and aki == c.subject_key_identifier),
                c not in self.store,
                not c.not_before <= self.when <= c.not_after,
            )

        for issuer in sorted(candidates, key=preference):
            self.budget -= 1
            if self.budget < 0:
                self.fail(depth, "gave up: too many candidate issuers", "untrusted-issuer")
                return None
            try:
                _check_link(cert, issuer, depth, self.when)
            except EKCertificateError as error:
                self.failures.append((depth, _RANK.get(error.code, 2), error))
                continue
            found = self.build((*chain, issuer))
            if found is not None:
                return found
        return None


def _aki_allows(cert: LoadedCertificate, issuer: LoadedCertificate) -> bool:
    """Whether ``issuer`` can be the certificate that ``cert``'s authorityKeyIdentifier designates.

    Like openssl, a candidate whose keyIdentifier, or issuer name and serial, contradict the AKI is skipped
    even if its key verifies the signature: keylime's IFX intermediates name the self-signed Infineon root
    (serial 3), but its store holds only the VeriSign-signed one with the same key; openssl refuses, so do we.
    """
    aki, ski = cert.authority_key_identifier, issuer.subject_key_identifier
    if aki is not None and ski is not None and aki != ski:
        return False
    if cert.authority_cert_serial is not None and cert.authority_cert_serial != issuer.serial_number:
        return False
    return cert.authority_cert_issuer is None or cert.authority_cert_issuer == issuer.issuer


def _check_link(cert: LoadedCertificate, issuer: LoadedCertificate, depth: int, when: datetime) -> None:
    # The signature comes first: until it verifies, this candidate is not known to be the issuer at all.
    _check_signature(cert, issuer)
    # Every CA in the corpus (keylime's store, the ISecL bundle, both tpm-ca-certificates mirrors, the
    # wif-bunker and go-tpm-tools CAs) has basicConstraints cA=TRUE, so its absence is never excused, not even
    # for an anchor: an end-entity certificate put in a CA bundle must not be able to issue EK certificates.
    if issuer.is_ca is not True:
        raise EKCertificateError(
            f"issuer {issuer.label} is not a CA (basicConstraints)", code="issuer-not-a-ca"
        )
    if issuer.key_usage is not None and "key_cert_sign" not in issuer.key_usage:
        raise EKCertificateError(f"issuer {issuer.label} lacks keyUsage keyCertSign", code="issuer-not-a-ca")
    _check_critical(issuer)
    # depth - 1 CA certificates lie between this issuer and the EK certificate.
    if issuer.path_length is not None and depth - 1 > issuer.path_length:
        raise EKCertificateError(
            f"issuer {issuer.label} allows {issuer.path_length} CAs below it, the path has {depth - 1}",
            code="path-length-exceeded",
        )
    _check_validity(issuer, when)


def _check_critical(cert: LoadedCertificate) -> None:
    if cert.unhandled_critical_extensions:
        raise EKCertificateError(
            f"{cert.label} has critical extensions {', '.join(cert.unhandled_critical_extensions)}"
            " that are not processed here",
            code="unhandled-critical-extension",
        )


def _check_validity(cert: LoadedCertificate, when: datetime) -> None:
    if when > cert.not_after:
        raise EKCertificateError(f"{cert.label} expired at {cert.not_after.isoformat()}", code="expired")
    if when < cert.not_before:
        raise EKCertificateError(
            f"{cert.label} is not valid before {cert.not_before.isoformat()}", code="not-yet-valid"
        )


def _check_signature(cert: LoadedCertificate, issuer: LoadedCertificate) -> None:
    oid, key = cert.signature_algorithm, issuer.public_key
    try:
        if oid in _RSA_PKCS1_HASHES and isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_der, padding.PKCS1v15(), _RSA_PKCS1_HASHES[oid]())
        elif oid == _RSA_PSS and isinstance(key, rsa.RSAPublicKey):
            pss_padding, pss_hash = _pss(cert.signature_parameters)
            key.verify(cert.signature, cert.tbs_der, pss_padding, pss_hash)
        elif oid in _ECDSA_HASHES and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_der, ec.ECDSA(_ECDSA_HASHES[oid]()))
        elif oid in _RSA_PKCS1_HASHES or oid == _RSA_PSS or oid in _ECDSA_HASHES:
            raise EKCertificateError(
                f"{cert.label} is signed with {oid} but its issuer's key is {type(key).__name__}",
                code="bad-signature",
            )
        else:
            raise EKCertificateError(f"unsupported signature algorithm {oid}", code="unsupported-algorithm")
    except (InvalidSignature, ValueError) as exc:
        raise EKCertificateError(
            f"signature of {cert.label} does not verify with the key of {issuer.label}", code="bad-signature"
        ) from exc


def _pss(der: bytes) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    """Decode RSASSA-PSS-params (absent fields take RFC 4055's SHA-1 defaults) into padding and hash."""
    try:
        params = algos.RSASSAPSSParams.load(der) if der else algos.RSASSAPSSParams()
        mgf = params["mask_gen_algorithm"]
        names = (params["hash_algorithm"]["algorithm"].native, mgf["parameters"]["algorithm"].native)
        salt, trailer = params["salt_length"].native, params["trailer_field"].native
        mgf_name = mgf["algorithm"].native
    except Exception as exc:  # asn1crypto's errors for malformed parameters, as in _load_der.
        raise EKCertificateError(f"malformed RSA-PSS parameters: {exc}", code="bad-signature") from exc
    if mgf_name != "mgf1" or trailer != "trailer_field_bc" or any(n not in _PSS_HASHES for n in names):
        raise EKCertificateError(f"RSA-PSS with unsupported parameters {names}", code="unsupported-algorithm")
    return padding.PSS(mgf=padding.MGF1(_PSS_HASHES[names[1]]()), salt_length=salt), _PSS_HASHES[names[0]]()

"""Asset tags: tag selections, SecL's X.509 tag certificates, their verification, and ASSET_TAG flavors.

SecL's tag certificate is an ordinary X.509 v3 certificate issued by the Tag CA:

- subject ``CN=<hardware UUID>`` (lower case, as a PrintableString), issuer = the Tag CA's subject;
- one non-critical extension per tag, all under OID 2.5.4.789.1, whose value is the DER of
  ``SEQUENCE { name STRING, value STRING }``; each string is a PrintableString when every character
  allows it (no ``*`` or ``&``), else a UTF8String (the rule Go's ``asn1.Marshal`` applies to SecL's
  ``TagKvAttribute``);
- signed with SHA-384 (sha384WithRSAEncryption for an RSA Tag CA as SecL's, ecdsa-with-SHA384 for an
  EC one as ours);
- the subject public key is the Tag CA's own: the host holds no key, SecL puts its CA key there, and
  so do we, instead of generating a key nobody uses.

The SHA-384 of the DER is what the trust agent writes into TPM NV index 0x01C10110 (48 bytes; all zeros
means "no tag") and what the quote binds (:func:`secl.core.quote.secl_qualifying_data`).

Because every tag uses the same extension OID, a certificate with two tags has "duplicate" extensions:
pyca/cryptography's ``Certificate.extensions`` refuses it (``DuplicateExtension``), and so does Go's
``x509.ParseCertificate`` since Go 1.19. Extensions are therefore read and written here with asn1crypto;
pyca/cryptography loads the certificate, checks signatures and makes the keys' signatures.

Selections we issue are stricter than what SecL accepts (see :class:`TagSelection`): names are unique
(case-insensitively), because reports and the attestation JWT carry the tags as a name -> value map.
Certificates SecL made with a repeated name (the corpus has ``Country=US`` and ``Country=India``) still
parse; :attr:`TagCertificate.tags` keeps every pair in certificate order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asn1crypto import core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from secl.core.errors import EvidenceError
from secl.core.flavor import Flavor, FlavorError, parse_flavor
from secl.core.pcrevents import EMPTY, freeze
from secl.core.verifymemo import VerificationMemo, certificate_key

__all__ = [
    "ASSET_TAG_NV_INDEX",
    "ASSET_TAG_NV_SIZE",
    "MAX_NAME_BYTES",
    "MAX_TAGS",
    "MAX_VALUE_BYTES",
    "TAG_OID",
    "AssetTagError",
    "AssetTagFlavor",
    "Tag",
    "TagCertificate",
    "TagCertificateError",
    "TagSelection",
    "TagSelectionError",
    "TagVerificationError",
    "asset_tag_digest_from_nv",
    "build_asset_tag_flavor",
    "create_tag_certificate",
    "parse_asset_tag_flavor",
    "parse_tag_certificate",
    "parse_tag_selection",
    "verify_tag_certificate",
]

TAG_OID = "2.5.4.789.1"
ASSET_TAG_NV_INDEX = 0x01C10110
ASSET_TAG_NV_SIZE = 48  # SHA-384

# Limits on what we issue. The TPM holds only a digest, so these bound the certificate, the database row,
# the report and the JWT, not the NV index: 64 tags of at most 64 + 256 bytes stay under ~21 KiB.
MAX_TAGS = 64
MAX_NAME_BYTES = 64  # UTF-8 bytes
MAX_VALUE_BYTES = 256  # UTF-8 bytes
_MAX_CERTIFICATE_BYTES = 64 * 1024

_FAULT_NOT_TRUSTED = "TagCertificateNotTrusted"
_FAULT_EXPIRED = "TagCertificateExpired"
_FAULT_NOT_YET_VALID = "TagCertificateNotYetValid"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")
# X.680 PrintableString; Go writes a string as one only if it also lacks '*' and '&', and reads both.
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_PRINTABLE_READ = _PRINTABLE | {"*", "&"}
# Control, format (bidi overrides, zero-width), surrogate, private-use, unassigned, line/paragraph separators:
# all make a tag display differently from what it is.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Critical extensions a tag certificate may carry and we understand well enough not to refuse.
_KNOWN_CRITICAL = frozenset({TAG_OID, "2.5.29.15", "2.5.29.19"})
# RFC 5280 4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime outside.
_UTC_TIME_FIRST, _UTC_TIME_LIMIT = 1950, 2050


class AssetTagError(EvidenceError):
    """An asset tag, tag certificate or ASSET_TAG flavor is malformed or does not verify."""

    code = "asset-tag-invalid"


class TagSelectionError(AssetTagError):
    """A tag selection (``[{name, value}]``) is malformed or breaks a limit."""

    code = "tag-selection-invalid"


class TagCertificateError(AssetTagError):
    """A tag certificate cannot be made or read."""

    code = "tag-certificate-invalid"


class TagVerificationError(AssetTagError):
    """A well-formed tag certificate is not trusted; ``fault_name`` is SecL's fault for the reason."""

    code = "tag-certificate-untrusted"

    def __init__(self, message: str, *, code: str, fault_name: str) -> None:
        super().__init__(message, code=code)
        self.fault_name = fault_name


# --- Selections -------------------------------------------------------------------------------------------


def _text(raw: object, what: str, where: str) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TagSelectionError(f"{where}: {what} is not UTF-8", code="tag-text-not-utf8") from None
    if not isinstance(raw, str):
        raise TagSelectionError(
            f"{where}: {what} must be a string, got {type(raw).__name__}", code="tag-selection-malformed"
        )
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from JSON "\udc80"
        raise TagSelectionError(f"{where}: {what} is not valid Unicode", code="tag-text-not-utf8") from None
    return raw


def _check_text(text: str, what: str, where: str, max_bytes: int) -> None:
    if not text:
        raise TagSelectionError(f"{where}: the {what} is empty", code=f"tag-{what}-empty")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise TagSelectionError(
            f"{where}: the {what} is {size} bytes of UTF-8, more than {max_bytes}",
            code=f"tag-{what}-too-long",
        )
    bad = next((c for c in text if unicodedata.category(c) in _BAD_CATEGORIES), None)
    if bad is not None:
        raise TagSelectionError(
            f"{where}: the {what} contains the control or invisible character U+{ord(bad):04X}",
            code="tag-text-control-character",
        )
    if text != text.strip():
        raise TagSelectionError(
            f"{where}: the {what} starts or ends with white space", code="tag-text-whitespace"
        )
    if unicodedata.normalize("NFC", text) != text:
        # Two spellings of "é" would be two different tags that look the same.
        raise TagSelectionError(f"{where}: the {what} is not in Unicode NFC", code="tag-text-not-normalized")


@dataclass(frozen=True)
class Tag:
    """One asset tag: SecL's ``TagKvAttribute`` ``{"name", "value"}``."""

    name: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True)
class TagSelection:
    """The tags to issue for one host, validated on construction, in the order given.

    Rules (each broken rule raises :class:`TagSelectionError` with its own ``code``): 1 to ``MAX_TAGS``
    tags; names of 1 to ``MAX_NAME_BYTES`` and values of 1 to ``MAX_VALUE_BYTES`` UTF-8 bytes; valid
    Unicode in NFC with no control, invisible or separator characters and no leading or trailing white
    space; no ``=`` in a name (``name=value`` is how hosts are selected by tag); names unique ignoring case.
    """

    tags: tuple[Tag, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.tags, tuple) or not all(isinstance(t, Tag) for t in self.tags):
            raise TagSelectionError("a selection is a tuple of Tag", code="tag-selection-malformed")
        if not self.tags:
            raise TagSelectionError("the selection has no tags", code="tag-selection-empty")
        if len(self.tags) > MAX_TAGS:
            raise TagSelectionError(
                f"the selection has {len(self.tags)} tags, more than {MAX_TAGS}",
                code="tag-selection-too-many",
            )
        seen: dict[str, str] = {}
        for i, tag in enumerate(self.tags):
            where = f"tag [{i}]"
            if not isinstance(tag.name, str) or not isinstance(tag.value, str):
                raise TagSelectionError(
                    f"{where}: name and value must be strings", code="tag-selection-malformed"
                )
            _check_text(_text(tag.name, "name", where), "name", where, MAX_NAME_BYTES)
            _check_text(_text(tag.value, "value", where), "value", where, MAX_VALUE_BYTES)
            if "=" in tag.name:
                raise TagSelectionError(
                    f"{where}: the name {tag.name!r} contains '='", code="tag-name-invalid"
                )
            key = tag.name.casefold()
            if key in seen:
                raise TagSelectionError(
                    f"{where}: the name {tag.name!r} repeats {seen[key]!r}", code="tag-name-duplicate"
                )
            seen[key] = tag.name

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> TagSelection:
        """``TagSelection.of({"country": "DE"})`` or ``TagSelection.of([("country", "DE")])``."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return cls(tuple(Tag(name, value) for name, value in items))

    def __iter__(self) -> Iterator[Tag]:
        return iter(self.tags)

    def __len__(self) -> int:
        return len(self.tags)

    def as_dict(self) -> dict[str, str]:
        return {t.name: t.value for t in self.tags}

    def to_json(self) -> list[dict[str, str]]:
        """SecL's ``selection_content``."""
        return [t.to_json() for t in self.tags]


def parse_tag_selection(doc: bytes | str | Sequence[Any]) -> TagSelection:
    """Read SecL's ``selection_content`` (``[{"name": ..., "value": ...}]``), as JSON text or decoded.

    Each item must have exactly the members ``name`` and ``value``, both strings.
    """
    if isinstance(doc, bytes | str):
        try:
            doc = json.loads(doc)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TagSelectionError(
                f"the selection is not valid JSON: {exc}", code="tag-selection-malformed"
            ) from None
    if not isinstance(doc, list | tuple):
        raise TagSelectionError("the selection must be a JSON array", code="tag-selection-malformed")
    if len(doc) > MAX_TAGS:  # Before looking at each item: the array may be huge.
        raise TagSelectionError(
            f"the selection has {len(doc)} tags, more than {MAX_TAGS}", code="tag-selection-too-many"
        )
    tags = []
    for i, item in enumerate(doc):
        where = f"tag [{i}]"
        if not isinstance(item, Mapping) or set(item) != {"name", "value"}:
            raise TagSelectionError(
                f"{where}: expected an object with exactly 'name' and 'value'", code="tag-selection-malformed"
            )
        tags.append(Tag(_text(item["name"], "name", where), _text(item["value"], "value", where)))
    return TagSelection(tuple(tags))


# --- The certificate -------------------------------------------------------------------------------------


class _TagString(core.Choice):
    _alternatives = [  # noqa: RUF012 (asn1crypto's declaration style)
        ("printable", core.PrintableString),
        ("utf8", core.UTF8String),
        ("ia5", core.IA5String),
    ]


class _TagKvAttribute(core.Sequence):
    _fields = [("name", _TagString), ("value", _TagString)]  # noqa: RUF012


def _malformed(message: str, code: str = "tag-certificate-malformed") -> TagCertificateError:
    return TagCertificateError(message, code=code)


def _decode_tag_string(value: _TagString, what: str, index: int) -> str:
    try:
        text = value.chosen.native
    except (ValueError, UnicodeDecodeError):
        raise _malformed(f"tag [{index}]: the {what} is not a valid string") from None
    kind = value.name
    if kind == "printable" and not set(text) <= _PRINTABLE_READ:
        raise _malformed(f"tag [{index}]: the {what} has characters a PrintableString cannot hold")
    if kind == "ia5" and not text.isascii():
        raise _malformed(f"tag [{index}]: the {what} has characters an IA5String cannot hold")
    if not text:
        raise _malformed(f"tag [{index}]: the {what} is empty")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise _malformed(f"tag [{index}]: the {what} contains control characters")
    return str(text)


def _decode_tag(extn_value: bytes, index: int) -> Tag:
    try:
        kv = _TagKvAttribute.load(extn_value, strict=True)
        name, value = kv["name"], kv["value"]
    except (ValueError, TypeError):
        raise _malformed(f"tag [{index}]: the extension is not SEQUENCE {{name, value}}") from None
    return Tag(_decode_tag_string(name, "name", index), _decode_tag_string(value, "value", index))


def _go_int64(n: int) -> int:
    """Go's ``big.Int.Int64()``: the low 64 bits, two's complement, negated for a negative number.

    SecL's flavors store the serial number this way, so a 128-bit serial keeps only its low 64 bits.
    """
    low = abs(n) & 0xFFFF_FFFF_FFFF_FFFF
    value = low - (1 << 64) if low >= 1 << 63 else low
    if n < 0:
        value = ((-value + (1 << 63)) % (1 << 64)) - (1 << 63)
    return value


def _rfc3339(when: datetime) -> str:
    # Go's time.Time JSON (RFC 3339): X.509 times have whole seconds, so no fraction appears.
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TagCertificate:
    """A parsed tag certificate. It says what the certificate claims; :func:`verify_tag_certificate`
    says whether to believe it.

    ``sha384`` is the digest of ``der``: the value of the host's asset-tag NV index and of the quote's
    binding. ``tags`` keeps every (name, value) pair in certificate order, repeated names included.
    """

    der: bytes = field(repr=False)
    hardware_uuid: str
    tags: tuple[Tag, ...]
    issuer: str  # RFC 4514, as Go's pkix.Name.String() writes it: "CN=HVS Tag Certificate"
    serial_number: int
    not_before: datetime
    not_after: datetime
    sha384: bytes = field(repr=False)
    certificate: x509.Certificate = field(repr=False, compare=False)

    @property
    def digest_hex(self) -> str:
        return self.sha384.hex()

    @property
    def tag_map(self) -> Mapping[str, str]:
        """The tags as name -> value; for a repeated name the last value wins, as in SecL's rule JSON."""
        return freeze({t.name: t.value for t in self.tags})

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def to_secl_json(self) -> dict[str, Any]:
        """SecL's ``X509AttributeCertificate`` (``external.asset_tag.tag_certificate`` of the flavor)."""
        return {
            "encoded": base64.b64encode(self.der).decode("ascii"),
            "issuer": self.issuer,
            "serial_number": _go_int64(self.serial_number),
            "subject": self.hardware_uuid,
            "not_before": _rfc3339(self.not_before),
            "not_after": _rfc3339(self.not_after),
            "attribute": [
                {"attr_type": {"id": TAG_OID}, "attribute_values": [{"objects": t.to_json()}]}
                for t in self.tags
            ],
            "fingerprint_sha384": self.digest_hex,
        }


def _der_from(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if not isinstance(data, bytes):
        raise _malformed(f"a tag certificate is DER or PEM bytes, not {type(data).__name__}")
    if len(data) > _MAX_CERTIFICATE_BYTES:
        raise _malformed(f"a tag certificate of {len(data)} bytes is larger than {_MAX_CERTIFICATE_BYTES}")
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM.findall(data)
        if len(blocks) != 1:
            raise _malformed(f"expected one PEM CERTIFICATE block, found {len(blocks)}")
        try:
            return base64.b64decode(b"".join(blocks[0].split()), validate=True)
        except binascii.Error:
            raise _malformed("the PEM block is not valid base64") from None
    return data


def _hardware_uuid(text: object, where: str, code: str = "hardware-uuid-invalid") -> str:
    if not isinstance(text, str) or not _UUID.fullmatch(text):
        raise TagCertificateError(f"{where} {text!r} is not a UUID (8-4-4-4-12 hex digits)", code=code)
    if int(text.replace("-", ""), 16) == 0:
        raise TagCertificateError(f"{where} is the nil UUID", code=code)
    return text.lower()


def parse_tag_certificate(data: bytes | str) -> TagCertificate:
    """Read a tag certificate (DER or one PEM block) as SecL or we made it; raise TagCertificateError.

    The subject must be exactly one CN holding a UUID, and there must be at least one 2.5.4.789.1
    extension. Other non-critical extensions (SecL's Go >= 1.15 builds add an authority key identifier)
    are ignored; an unknown critical extension makes the certificate unusable (RFC 5280 4.2).
    """
    der = _der_from(data)
    try:
        parsed = ax509.Certificate.load(der, strict=True)
        if parsed["tbs_certificate"]["serial_number"].native <= 0:
            # RFC 5280 wants a positive serial; checked first because pyca/cryptography warns on loading one.
            raise _malformed("the serial number is not positive", code="tag-certificate-serial-invalid")
        cert = x509.load_der_x509_certificate(der)
        extensions = parsed["tbs_certificate"]["extensions"]
        raw = [
            (e["extn_id"].dotted, bool(e["critical"].native), e["extn_value"].contents) for e in extensions
        ]
        # pyca/cryptography reads the fields lazily: a malformed name or time surfaces here, not earlier.
        subject, issuer = cert.subject, cert.issuer.rfc4514_string()
        not_before, not_after, serial = (
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            cert.serial_number,
        )
        names = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        subject_text = subject.rfc4514_string()
    except (ValueError, TypeError) as exc:
        raise _malformed(f"not an X.509 certificate: {exc}") from None
    tags: list[Tag] = []
    for oid, critical, value in raw:
        if oid == TAG_OID:
            tags.append(_decode_tag(value, len(tags)))
        elif critical and oid not in _KNOWN_CRITICAL:
            raise _malformed(f"unknown critical extension {oid}", code="tag-certificate-critical-extension")
    if not tags:
        raise _malformed(f"no {TAG_OID} tag extension: not a tag certificate", code="tag-certificate-no-tags")
    if len(names) != 1 or len(subject.rdns) != 1:
        raise _malformed(
            f"the subject {subject_text!r} is not a single CN", code="tag-certificate-subject-invalid"
        )
    hardware_uuid = _hardware_uuid(names[0].value, "the subject CN", code="tag-certificate-subject-invalid")
    return TagCertificate(
        der=der,
        hardware_uuid=hardware_uuid,
        tags=tuple(tags),
        issuer=issuer,
        serial_number=serial,
        not_before=not_before,
        not_after=not_after,
        sha384=hashlib.sha384(der).digest(),
        certificate=cert,
    )


def _x509_time(when: datetime) -> ax509.Time:
    if _UTC_TIME_FIRST <= when.year < _UTC_TIME_LIMIT:
        return ax509.Time(name="utc_time", value=core.UTCTime(when))
    return ax509.Time(name="general_time", value=core.GeneralizedTime(when))


def _tag_string(text: str) -> _TagString:
    if set(text) <= _PRINTABLE:
        return _TagString(name="printable", value=core.PrintableString(text))
    return _TagString(name="utf8", value=core.UTF8String(text))


def _aware(when: object, what: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise TagCertificateError(
            f"{what} must be a timezone-aware datetime", code="tag-certificate-validity-invalid"
        )
    return when.astimezone(UTC).replace(microsecond=0)


def _check_tag_ca(ca: x509.Certificate, key: object) -> None:
    if not isinstance(ca, x509.Certificate):
        raise TagCertificateError("the Tag CA certificate must be an x509.Certificate", code="tag-ca-invalid")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TagCertificateError(
            f"the Tag CA key must be RSA or EC, not {type(key).__name__}", code="tag-ca-key-unsupported"
        )
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != ca.public_key().public_bytes(*public):
        raise TagCertificateError(
            "the Tag CA key does not belong to the Tag CA certificate", code="tag-ca-key-mismatch"
        )
    try:
        extensions = ca.extensions
    except (x509.DuplicateExtension, ValueError) as exc:
        raise TagCertificateError(
            f"the Tag CA certificate cannot be read: {exc}", code="tag-ca-invalid"
        ) from None
    for ext in extensions:
        if isinstance(ext.value, x509.BasicConstraints) and not ext.value.ca:
            raise TagCertificateError(
                "the Tag CA certificate is not a CA (basicConstraints)", code="tag-ca-invalid"
            )
        if isinstance(ext.value, x509.KeyUsage) and not ext.value.key_cert_sign:
            raise TagCertificateError(
                "the Tag CA key may not sign certificates (keyUsage)", code="tag-ca-invalid"
            )


def create_tag_certificate(
    *,
    ca_certificate: x509.Certificate,
    ca_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    hardware_uuid: str,
    selection: TagSelection,
    not_before: datetime,
    not_after: datetime,
    serial_number: int,
) -> TagCertificate:
    """Issue SecL's tag certificate for one host (see the module docstring for the format).

    Times are truncated to whole seconds (X.509 has no finer grain) and must lie within the Tag CA's
    validity; ``serial_number`` is a positive integer of at most 20 octets (``x509.random_serial_number()``
    gives a good one). The hardware UUID is written in lower case.
    """
    _check_tag_ca(ca_certificate, ca_key)
    if not isinstance(selection, TagSelection):
        raise TagSelectionError("tags are issued from a TagSelection", code="tag-selection-malformed")
    subject_uuid = _hardware_uuid(hardware_uuid, "the hardware UUID")
    start, end = _aware(not_before, "not_before"), _aware(not_after, "not_after")
    if end <= start:
        raise TagCertificateError(
            "not_after must be later than not_before", code="tag-certificate-validity-invalid"
        )
    if start < ca_certificate.not_valid_before_utc or end > ca_certificate.not_valid_after_utc:
        raise TagCertificateError(
            f"the validity {start.isoformat()} .. {end.isoformat()} is not within the Tag CA's "
            f"({ca_certificate.not_valid_before_utc.isoformat()} .. {ca_certificate.not_valid_after_utc.isoformat()})",
            code="tag-certificate-validity-invalid",
        )
    if (
        isinstance(serial_number, bool)
        or not isinstance(serial_number, int)
        or not 0 < serial_number < 1 << 159
    ):
        raise TagCertificateError(
            "the serial number must be a positive integer of at most 20 octets",
            code="tag-certificate-serial-invalid",
        )
    ca_der = ca_certificate.public_bytes(serialization.Encoding.DER)
    issuer = ax509.Certificate.load(ca_der)["tbs_certificate"]["subject"]
    rsa_ca = isinstance(ca_key, rsa.RSAPrivateKey)
    algorithm = ax509.SignedDigestAlgorithm(
        {"algorithm": "sha384_rsa", "parameters": core.Null()} if rsa_ca else {"algorithm": "sha384_ecdsa"}
    )
    spki = ca_certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    extensions = [
        ax509.Extension(
            {
                "extn_id": TAG_OID,
                "extn_value": _TagKvAttribute(
                    {"name": _tag_string(t.name), "value": _tag_string(t.value)}
                ).dump(),
            }
        )
        for t in selection
    ]
    tbs = ax509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial_number,
            "signature": algorithm,
            "issuer": ax509.Name.load(issuer.dump()),
            "validity": {"not_before": _x509_time(start), "not_after": _x509_time(end)},
            # A UUID is printable, so this is the PrintableString CN that Go's pkix.Name writes.
            "subject": ax509.Name.build({"common_name": subject_uuid}, use_printable=True),
            "subject_public_key_info": ax509.PublicKeyInfo.load(spki),
            "extensions": extensions,
        }
    )
    to_sign = tbs.dump()
    if isinstance(ca_key, rsa.RSAPrivateKey):
        signature = ca_key.sign(to_sign, padding.PKCS1v15(), hashes.SHA384())
    else:
        signature = ca_key.sign(to_sign, ec.ECDSA(hashes.SHA384()))
    der = ax509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    ).dump()
    issued = parse_tag_certificate(der)
    # A self-check that costs one verification: what we hand out must verify with the CA we were given.
    issued.certificate.verify_directly_issued_by(ca_certificate)
    return issued


# --- Verification -----------------------------------------------------------------------------------------


def _issued_by(cert: x509.Certificate, ca: x509.Certificate, memo: VerificationMemo | None) -> bool:
    try:
        if memo is None:
            cert.verify_directly_issued_by(ca)
        else:
            memo.check(certificate_key(cert, ca), lambda: cert.verify_directly_issued_by(ca))
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def verify_tag_certificate(
    certificate: TagCertificate | bytes | str,
    tag_cas: Sequence[x509.Certificate],
    *,
    at: datetime,
    hardware_uuid: str | None = None,
    memo: VerificationMemo | None = None,
) -> TagCertificate:
    """Return the certificate if one of ``tag_cas`` issued it, it is valid at ``at`` and (with
    ``hardware_uuid``) it names that host; else raise :class:`TagVerificationError`.

    Checked in this order, each with its code and SecL fault: signed by a Tag CA that is itself valid at
    ``at`` (``tag-certificate-untrusted``, TagCertificateNotTrusted); not expired
    (``tag-certificate-expired``, TagCertificateExpired); already valid (``tag-certificate-not-yet-valid``,
    TagCertificateNotYetValid); issued for this host (``tag-certificate-wrong-host``,
    TagCertificateNotTrusted). The signature comes first because an untrusted certificate's dates are
    whatever its maker wrote. Malformed input raises :class:`TagCertificateError`. ``memo`` remembers
    signatures that verified (the same certificate comes back with every report of a tagged host).
    """
    cert = certificate if isinstance(certificate, TagCertificate) else parse_tag_certificate(certificate)
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise AssetTagError(
            "the verification time must be a timezone-aware datetime", code="asset-tag-time-invalid"
        )
    issuers = [ca for ca in tag_cas if _issued_by(cert.certificate, ca, memo)]
    if not issuers:
        raise TagVerificationError(
            f"tag certificate (issuer '{cert.issuer}') is not signed by any trusted Tag CA",
            code="tag-certificate-untrusted",
            fault_name=_FAULT_NOT_TRUSTED,
        )
    if not any(ca.not_valid_before_utc <= at <= ca.not_valid_after_utc for ca in issuers):
        raise TagVerificationError(
            f"the Tag CA that signed the tag certificate ('{cert.issuer}') is not valid at {at.isoformat()}",
            code="tag-certificate-untrusted",
            fault_name=_FAULT_NOT_TRUSTED,
        )
    if at > cert.not_after:
        raise TagVerificationError(
            f"tag certificate not valid after '{cert.not_after.isoformat()}'",
            code="tag-certificate-expired",
            fault_name=_FAULT_EXPIRED,
        )
    if at < cert.not_before:
        raise TagVerificationError(
            f"tag certificate not valid before '{cert.not_before.isoformat()}'",
            code="tag-certificate-not-yet-valid",
            fault_name=_FAULT_NOT_YET_VALID,
        )
    if hardware_uuid is not None and cert.hardware_uuid != str(hardware_uuid).strip().lower():
        raise TagVerificationError(
            f"tag certificate is for hardware UUID {cert.hardware_uuid}, not {hardware_uuid}",
            code="tag-certificate-wrong-host",
            fault_name=_FAULT_NOT_TRUSTED,
        )
    return cert


def asset_tag_digest_from_nv(data: bytes) -> bytes | None:
    """The tag digest held in the host's NV index, or None when no tag is provisioned.

    The index is 48 bytes; SecL's trust agent defines it at setup filled with zeros, so all zeros means
    "no tag" (and a quote then binds SHA-256(nonce) alone). Any other length is an error.
    """
    if not isinstance(data, bytes) or len(data) != ASSET_TAG_NV_SIZE:
        size = len(data) if isinstance(data, bytes) else type(data).__name__
        raise AssetTagError(
            f"the asset tag NV index must hold {ASSET_TAG_NV_SIZE} bytes, got {size}",
            code="asset-tag-nv-invalid",
        )
    return None if not any(data) else data


# --- The ASSET_TAG flavor ---------------------------------------------------------------------------------


def _label(*names: str) -> str:
    # SecL removes white space inside each field, then joins the fields with "_".
    return "_".join("".join(name.split()) for name in names)


def build_asset_tag_flavor(
    certificate: TagCertificate,
    *,
    host_info: Mapping[str, Any] | None = None,
    vendor: str = "INTEL",
    source: str | None = None,
    now: datetime | None = None,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> Flavor:
    """SecL's ASSET_TAG flavor for a deployed tag certificate (unsigned).

    ``meta.description`` holds ``flavor_part``, ``hardware_uuid`` and the label
    ``<vendor>_<hardware uuid>_<now>``; with ``host_info`` (the agent's ``/v2/host``) also ``source``,
    ``tpm_version`` and ``tboot_installed`` and a ``bios`` section, as SecL does when it has the host. The
    host's hardware UUID must then be the certificate's. ``external.asset_tag.tag_certificate`` is
    :meth:`TagCertificate.to_secl_json`.
    """
    if host_info is not None:
        host_uuid = str(host_info.get("hardware_uuid") or "").strip().lower()
        if host_uuid != certificate.hardware_uuid:
            raise TagVerificationError(
                f"tag certificate is for hardware UUID {certificate.hardware_uuid}, not the host's {host_uuid or '(none)'}",
                code="tag-certificate-wrong-host",
                fault_name=_FAULT_NOT_TRUSTED,
            )
    stamp = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
    description: dict[str, Any] = {"flavor_part": "ASSET_TAG"}
    doc: dict[str, Any] = {}
    if host_info is not None:
        tpm_meta = ((host_info.get("hardware_features") or {}).get("TPM") or {}).get("meta") or {}
        tboot = host_info.get("tboot_installed")
        description["tboot_installed"] = tboot is True or str(tboot).strip().lower() == "true"
        description["tpm_version"] = str(tpm_meta.get("tpm_version", "")).strip()
        src = source if source is not None else str(host_info.get("host_name") or "").strip()
        if src:
            description["source"] = src
        doc["bios"] = {
            "bios_name": str(host_info.get("bios_name") or "").strip(),
            "bios_version": str(host_info.get("bios_version") or "").strip(),
        }
    elif source:
        description["source"] = source
    description["hardware_uuid"] = certificate.hardware_uuid
    description["label"] = _label(vendor, certificate.hardware_uuid, stamp)
    flavor = {
        "meta": {"id": str(new_id()), "description": description, "vendor": vendor},
        **doc,
        "external": {"asset_tag": {"tag_certificate": certificate.to_secl_json()}},
    }
    return parse_flavor(flavor)


def _declared_time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AssetTagError(f"{where}: {value!r} is not a time with a zone", code="asset-tag-flavor-invalid")
    return parsed.astimezone(UTC)


def _declared_attributes(value: object) -> tuple[Tag, ...]:
    where = "external.asset_tag.tag_certificate.attribute"
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise AssetTagError(f"{where}: expected a list", code="asset-tag-flavor-invalid")
    tags = []
    for i, attribute in enumerate(value):
        try:
            for item in attribute["attribute_values"]:
                name, val = item["objects"]["name"], item["objects"]["value"]
                if not isinstance(name, str) or not isinstance(val, str):
                    raise TypeError
                tags.append(Tag(name, val))
        except (KeyError, TypeError):
            raise AssetTagError(
                f"{where}[{i}]: expected {{attr_type, attribute_values: [{{objects: {{name, value}}}}]}}",
                code="asset-tag-flavor-invalid",
            ) from None
    return tuple(tags)


@dataclass(frozen=True)
class AssetTagFlavor:
    """An ASSET_TAG flavor's tag certificate: its DER, which the rules use, and what the flavor declares
    about it (issuer, subject, serial, validity, attributes), which is informational.

    Parsing checks that the declared ``fingerprint_sha384`` is the SHA-384 of the DER. The certificate
    itself is read only on demand (:meth:`tag_certificate`): SecL's Java HVS wrote flavors around
    certificates that are not tag certificates at all (the corpus's RHELAssetTagFlavor.json holds its
    CA certificate).
    """

    flavor: Flavor
    hardware_uuid: str | None
    certificate_der: bytes = field(repr=False)
    sha384: bytes = field(repr=False)
    issuer: str | None = None
    subject: str | None = None
    serial_number: int | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    attributes: tuple[Tag, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)

    def tag_certificate(self) -> TagCertificate:
        return parse_tag_certificate(self.certificate_der)


def parse_asset_tag_flavor(doc: Flavor | Mapping[str, Any] | bytes | str) -> AssetTagFlavor:
    """Read an ASSET_TAG flavor (a parsed :class:`Flavor`, or its JSON); raise AssetTagError."""
    try:
        flavor = doc if isinstance(doc, Flavor) else parse_flavor(doc)
    except FlavorError as exc:
        raise AssetTagError(exc.message, code="asset-tag-flavor-invalid") from None
    if flavor.flavor_part != "ASSET_TAG":
        raise AssetTagError(
            f"flavor {flavor.id} is a {flavor.flavor_part} flavor, not ASSET_TAG",
            code="asset-tag-flavor-invalid",
        )
    try:
        section = flavor.external["asset_tag"]["tag_certificate"]  # type: ignore[index]
        encoded = section["encoded"]
        der = base64.b64decode(encoded, validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise AssetTagError(
            f"flavor {flavor.id}: external.asset_tag.tag_certificate.encoded is missing or not base64",
            code="asset-tag-flavor-invalid",
        ) from None
    if not der:
        raise AssetTagError(
            f"flavor {flavor.id}: the tag certificate is empty", code="asset-tag-flavor-invalid"
        )
    digest = hashlib.sha384(der).digest()
    declared = section.get("fingerprint_sha384")
    if declared is not None and (not isinstance(declared, str) or declared.lower() != digest.hex()):
        raise AssetTagError(
            f"flavor {flavor.id}: fingerprint_sha384 {declared!r} is not the SHA-384 of the certificate ({digest.hex()})",
            code="asset-tag-flavor-fingerprint-mismatch",
        )
    serial = section.get("serial_number")
    if serial is not None and (isinstance(serial, bool) or not isinstance(serial, int)):
        raise AssetTagError(
            f"flavor {flavor.id}: serial_number must be an integer", code="asset-tag-flavor-invalid"
        )
    hardware_uuid = flavor.meta.description.get("hardware_uuid")
    known = ("encoded", "issuer", "serial_number", "subject", "not_before", "not_after", "attribute",
             "fingerprint_sha384")  # fmt: skip
    return AssetTagFlavor(
        flavor=flavor,
        hardware_uuid=None if hardware_uuid is None else str(hardware_uuid),
        certificate_der=der,
        sha384=digest,
        issuer=None if section.get("issuer") is None else str(section["issuer"]),
        subject=None if section.get("subject") is None else str(section["subject"]),
        serial_number=serial,
        not_before=_declared_time(section.get("not_before"), "not_before"),
        not_after=_declared_time(section.get("not_after"), "not_after"),
        attributes=_declared_attributes(section.get("attribute")),
        extra=freeze({k: v for k, v in section.items() if k not in known}),
    )

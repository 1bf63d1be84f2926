"""The compute host's TPM adapter: one ESAPI context, the handful of TPM commands attestation needs.

Everything a host part (the trust agent, ``secl-measure``, the workload agent next) asks of the TPM goes
through :class:`TPMAdapter`, which owns exactly one ``tpm2_pytss.ESAPI`` opened from a tpm2-tools TCTI
string (``device:/dev/tpmrm0``, ``tabrmd``, ``swtpm:host=127.0.0.1,port=2321``) and turns every
``TSS2_Exception`` into a :class:`TPMError` with a stable code. Results are plain bytes in TPM wire format
(TPMS_ATTEST, TPMT_SIGNATURE, TPM2B_PUBLIC), which is what :mod:`secl.core.quote` verifies on the central.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from tpm2_pytss import ESAPI
from tpm2_pytss.constants import (
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_HT,
    TPM2_RC,
    TPM2_SE,
    TPMA_NV,
    TPMA_OBJECT,
    TSS2_RC,
)
from tpm2_pytss.TSS2_Exception import TSS2_Exception
from tpm2_pytss.types import (
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_NV_PUBLIC,
    TPM2B_PUBLIC,
    TPM2B_PUBLIC_KEY_RSA,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_NV_PUBLIC,
    TPMT_HA,
    TPMT_RSA_DECRYPT,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
    TPMU_HA,
)
from tpm2_pytss.utils import NVReadEK, create_ek_template

from secl.core.hashalg import HashAlg
from secl.core.keywrap import TPM_OAEP_LABEL

# A restricted signing key (TPM 2.0 Part 1, "Attestation Key"): the TPM refuses to sign anything that
# starts with TPM_GENERATED_VALUE with it, so its quotes cannot be forged by signing chosen data.
_AK_ATTRIBUTES = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
    | TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.SIGN_ENCRYPT
)
_AK_TEMPLATES = {"rsa": "rsa2048:rsassa-sha256:null", "ecc": "ecc256:ecdsa-sha256:null"}
# A non-restricted decryption key, the shape of SecL's binding key.
_KEY_ATTRIBUTES = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
    | TPMA_OBJECT.DECRYPT
)
_KEY_TEMPLATES = {"rsa": "rsa2048:null:null", "ecc": "ecc256:null:null"}
# A non-restricted signing key, the shape of SecL's signing key (it signs VM trust reports).
_SIGNING_KEY_ATTRIBUTES = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
    | TPMA_OBJECT.SIGN_ENCRYPT
)
_SIGNING_KEY_TEMPLATE = "rsa2048:rsassa-sha256:null"
_HIERARCHIES = {"endorsement": ESYS_TR.ENDORSEMENT, "owner": ESYS_TR.OWNER}
_EK_TYPES = {"rsa": "EK-RSA2048", "ecc": "EK-ECC256"}
_RC_CODES = {
    TPM2_RC.OBJECT_MEMORY: "tpm-out-of-object-slots",
    TPM2_RC.HANDLE: "tpm-bad-handle",
    TPM2_RC.AUTH_FAIL: "tpm-auth-failed",
    TPM2_RC.BAD_AUTH: "tpm-auth-failed",
    TPM2_RC.LOCKOUT: "tpm-lockout",
    TPM2_RC.RETRY: "tpm-busy",
    TPM2_RC.YIELDED: "tpm-busy",
    TPM2_RC.TESTING: "tpm-busy",
}

Selection = str | Mapping[HashAlg, Sequence[int]]
"""A PCR selection: a tpm2-tools string (``sha1:0,1+sha256:0-7``) or {bank: indices}."""


class TPMError(Exception):
    """A TPM command failed; ``code`` names the fault, ``rc`` is the TSS2 return code (if any)."""

    def __init__(self, message: str, *, code: str = "tpm-command-failed", rc: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.rc = rc


def _error_code(exc: TSS2_Exception) -> str:
    if exc.rc & 0xFFFF in (TSS2_RC.BASE_RC_IO_ERROR, TSS2_RC.BASE_RC_NO_CONNECTION) and exc.rc >> 16:
        return "tpm-unreachable"
    return _RC_CODES.get(exc.error, "tpm-command-failed")


@contextmanager
def _tpm_call(what: str) -> Iterator[None]:
    try:
        yield
    except TSS2_Exception as exc:
        raise TPMError(f"{what}: {exc} (rc 0x{exc.rc:x})", code=_error_code(exc), rc=int(exc.rc)) from exc


@dataclass(frozen=True)
class TPMKey:
    """A key loaded in the TPM: its ESYS handle, marshalled TPM2B_PUBLIC and TPM name."""

    handle: ESYS_TR
    public: bytes
    name: bytes

    def pem(self) -> bytes:
        return TPM2B_PUBLIC.unmarshal(self.public)[0].to_pem()


@dataclass(frozen=True)
class TPMAttestation:
    """A signed attestation: marshalled TPMS_ATTEST and TPMT_SIGNATURE (``tpm2_quote -m``/``-s`` files)."""

    attest: bytes
    signature: bytes


@dataclass(frozen=True)
class NVIndex:
    """A defined NV index: its handle, data size and attributes (TPMS_NV_PUBLIC)."""

    index: int
    size: int
    attributes: TPMA_NV


@dataclass(frozen=True)
class EKInfo:
    """The endorsement key: its marshalled TPM2B_PUBLIC and its certificate from NV (DER, if provisioned)."""

    public: bytes
    certificate: bytes | None


class TPMAdapter:
    """The one owner of a process's ESAPI context. Not thread-safe: a TPM runs one command at a time."""

    def __init__(self, tcti: str) -> None:
        from secl.host.tpmdevice import resolve_tcti  # it imports TPMError from here

        tcti = resolve_tcti(tcti)
        with _tpm_call(f"open TPM through TCTI {tcti!r}"):
            self._esapi = ESAPI(tcti)
        self.flush_transient()

    def close(self) -> None:
        self._esapi.close()

    def __enter__(self) -> TPMAdapter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def flush_transient(self) -> int:
        """Flush transient objects left by a crashed client; without a resource manager they stay loaded."""
        handles: list[int] = []
        with _tpm_call("list transient objects"):
            more, first = True, TPM2_HT.TRANSIENT << 24
            while more:
                more, data = self._esapi.get_capability(TPM2_CAP.HANDLES, first, 64)
                found = [int(h) for h in data.data.handles]
                handles += found
                first = (found[-1] + 1) if found else first
                more = more and bool(found)
            for handle in handles:
                self._esapi.flush_context(self._esapi.tr_from_tpmpublic(handle))
        return len(handles)

    def flush(self, key: TPMKey) -> None:
        with _tpm_call("flush object"):
            self._esapi.flush_context(key.handle)

    def read_ek(self, kind: str = "rsa") -> EKInfo:
        """Recreate the TCG-profile EK (``rsa`` or ``ecc``) from its template and read its NV certificate."""
        with _tpm_call(f"read {kind} EK"):
            cert, template = create_ek_template(_EK_TYPES[kind], NVReadEK(self._esapi))
            handle, public, _, _, _ = self._esapi.create_primary(None, template, ESYS_TR.ENDORSEMENT)
            self._esapi.flush_context(handle)
        return EKInfo(public.marshal(), cert)

    def activate_credential(
        self, aik: TPMKey, credential_blob: bytes, encrypted_secret: bytes, ek_kind: str = "rsa"
    ) -> bytes:
        """TPM2_ActivateCredential: recover the Privacy CA's secret, which only the TPM holding both the EK
        and ``aik`` (loaded) can do. ``credential_blob``/``encrypted_secret`` are the marshalled
        TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET of the central's MakeCredential."""
        try:
            blob, _ = TPM2B_ID_OBJECT.unmarshal(credential_blob)
            secret, _ = TPM2B_ENCRYPTED_SECRET.unmarshal(encrypted_secret)
        except Exception as exc:  # tpm2-tss reports malformed input as TSS2_Exception
            raise TPMError(
                f"malformed credential from the central: {exc}", code="tpm-bad-credential"
            ) from None
        with _tpm_call("activate credential"):
            # The EK is a primary key: its template gives the same key back (read_ek flushed it).
            _, template = create_ek_template(_EK_TYPES[ek_kind], NVReadEK(self._esapi))
            ek_handle, _, _, _, _ = self._esapi.create_primary(None, template, ESYS_TR.ENDORSEMENT)
            session = ESYS_TR.NONE
            try:
                # The TCG EK profile's policy: PolicySecret(TPM_RH_ENDORSEMENT), empty endorsement auth.
                session = self._esapi.start_auth_session(
                    tpm_key=ESYS_TR.NONE, bind=ESYS_TR.NONE, session_type=TPM2_SE.POLICY,
                    symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), auth_hash=TPM2_ALG.SHA256,
                )  # fmt: skip
                self._esapi.policy_secret(ESYS_TR.ENDORSEMENT, session)
                recovered = self._esapi.activate_credential(
                    aik.handle, ek_handle, blob, secret, session1=ESYS_TR.PASSWORD, session2=session
                )
                return bytes(recovered)
            finally:
                if session != ESYS_TR.NONE:
                    # Already gone when the TPM flushed it after the command (continueSession clear).
                    with contextlib.suppress(TSS2_Exception):
                        self._esapi.flush_context(session)
                self._esapi.flush_context(ek_handle)

    def create_ak(self, kind: str = "rsa", hierarchy: str = "endorsement") -> TPMKey:
        """Create a primary restricted signing key: RSA-2048 RSASSA-SHA256 or ECC P-256 ECDSA-SHA256.

        A primary key is derived from the hierarchy's seed and its template, so the agent gets the same AK
        back after a restart without storing a key blob.
        """
        template = TPM2B_PUBLIC.parse(
            alg=_AK_TEMPLATES[kind], objectAttributes=_AK_ATTRIBUTES, nameAlg="sha256"
        )
        return self._create_primary(template, hierarchy, f"create {kind} AK")

    def create_key(self, kind: str = "rsa", hierarchy: str = "owner", unique: bytes = b"") -> TPMKey:
        """Create a primary non-restricted decryption key (a binding key); ``unique`` selects a distinct key."""
        template = TPM2B_PUBLIC.parse(
            alg=_KEY_TEMPLATES[kind], objectAttributes=_KEY_ATTRIBUTES, nameAlg="sha256"
        )
        if unique and kind == "rsa":
            template.publicArea.unique.rsa = unique
        elif unique:
            template.publicArea.unique.ecc.x = unique
        return self._create_primary(template, hierarchy, f"create {kind} key")

    def create_signing_key(self, hierarchy: str = "owner", unique: bytes = b"") -> TPMKey:
        """Create a primary non-restricted RSA-2048 RSASSA-SHA256 signing key (SecL's signing key)."""
        template = TPM2B_PUBLIC.parse(
            alg=_SIGNING_KEY_TEMPLATE, objectAttributes=_SIGNING_KEY_ATTRIBUTES, nameAlg="sha256"
        )
        if unique:
            template.publicArea.unique.rsa = unique
        return self._create_primary(template, hierarchy, "create signing key")

    def rsa_decrypt(self, key: TPMKey, ciphertext: bytes, label: bytes = TPM_OAEP_LABEL) -> bytes:
        """TPM2_RSA_Decrypt with OAEP-SHA256 and ``label``: open a key the key broker wrapped to ``key``."""
        scheme = TPMT_RSA_DECRYPT(scheme=TPM2_ALG.OAEP)
        scheme.details.oaep.hashAlg = TPM2_ALG.SHA256
        with _tpm_call("RSA decrypt"):
            return bytes(self._esapi.rsa_decrypt(key.handle, TPM2B_PUBLIC_KEY_RSA(ciphertext), scheme, label))

    def _create_primary(self, template: TPM2B_PUBLIC, hierarchy: str, what: str) -> TPMKey:
        with _tpm_call(what):
            handle, public, _, _, _ = self._esapi.create_primary(None, template, _HIERARCHIES[hierarchy])
            name = bytes(public.get_name())
        return TPMKey(handle, public.marshal(), name)

    def quote(self, ak: TPMKey, selection: Selection, qualifying_data: bytes) -> TPMAttestation:
        """TPM2_Quote over ``selection`` with the AK's own scheme."""
        with _tpm_call("quote"):
            attest, signature = self._esapi.quote(ak.handle, _selection(selection), qualifying_data)
        return TPMAttestation(bytes(attest), signature.marshal())

    def certify(self, key: TPMKey, ak: TPMKey, qualifying_data: bytes = b"") -> TPMAttestation:
        """TPM2_Certify: the AK signs that ``key`` (with this name) is loaded in this TPM."""
        with _tpm_call("certify"):
            scheme = TPMT_SIG_SCHEME(scheme=0x0010)  # TPM_ALG_NULL: use the AK's own scheme
            attest, signature = self._esapi.certify(key.handle, ak.handle, qualifying_data, scheme)
        return TPMAttestation(bytes(attest), signature.marshal())

    def read_pcrs(self, selection: Selection) -> dict[HashAlg, dict[int, bytes]]:
        """Read PCR values; TPM2_PCR_Read returns at most 8 digests per call, so ask until all are read."""
        wanted = _as_mapping(selection)
        values: dict[HashAlg, dict[int, bytes]] = {bank: {} for bank in wanted}
        remaining = {bank: set(indices) for bank, indices in wanted.items()}
        with _tpm_call("read PCRs"):
            while any(remaining.values()):
                _, got, digests = self._esapi.pcr_read(
                    _selection({b: sorted(i) for b, i in remaining.items() if i})
                )
                read = _selection_pairs(got)
                if not read:
                    missing = {b.bank_name: sorted(i) for b, i in remaining.items() if i}
                    raise TPMError(f"TPM does not return PCRs {missing}", code="tpm-pcr-unavailable")
                for (bank, index), digest in zip(read, digests, strict=True):
                    values[bank][index] = bytes(digest)
                    remaining[bank].discard(index)
        return values

    def extend_pcr(self, index: int, digests: Mapping[HashAlg, bytes]) -> None:
        """TPM2_PCR_Extend one PCR in every bank given (event-log replay into a simulator)."""
        values = TPML_DIGEST_VALUES(
            [
                TPMT_HA(hashAlg=bank, digest=TPMU_HA(**{bank.bank_name: digest}))
                for bank, digest in digests.items()
            ]
        )
        with _tpm_call(f"extend PCR {index}"):
            self._esapi.pcr_extend(ESYS_TR.PCR0 + index, values)

    # --- NV indices (the asset tag). Writes and definitions use owner authorization. ---------------------

    def nv_index(self, index: int) -> NVIndex | None:
        """The NV index ``index``, or None when it is not defined (asked without touching the index, so a
        missing one is not a TPM error)."""
        with _tpm_call(f"look up NV index 0x{index:08x}"):
            _, data = self._esapi.get_capability(TPM2_CAP.HANDLES, index, 1)
            if index not in [int(h) for h in data.data.handles]:
                return None
            handle = self._esapi.tr_from_tpmpublic(index)
            try:
                public, _ = self._esapi.nv_read_public(handle)
            finally:
                self._esapi.tr_close(handle)
        return NVIndex(index, int(public.nvPublic.dataSize), TPMA_NV(public.nvPublic.attributes))

    def nv_define(self, index: int, size: int, attributes: TPMA_NV, owner_auth: bytes = b"") -> None:
        """TPM2_NV_DefineSpace under the owner hierarchy, with an empty index authorization."""
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=index, nameAlg=TPM2_ALG.SHA256, attributes=attributes, dataSize=size
            )
        )
        with _tpm_call(f"define NV index 0x{index:08x}"):
            self._owner(owner_auth)
            self._esapi.tr_close(self._esapi.nv_define_space(None, public, ESYS_TR.OWNER))

    def nv_undefine(self, index: int, owner_auth: bytes = b"") -> None:
        with _tpm_call(f"undefine NV index 0x{index:08x}"):
            self._owner(owner_auth)
            self._esapi.nv_undefine_space(self._esapi.tr_from_tpmpublic(index), ESYS_TR.OWNER)

    def nv_write(self, index: int, data: bytes, owner_auth: bytes = b"") -> None:
        """TPM2_NV_Write of ``data`` at offset 0, authorized by the owner (an OWNERWRITE index)."""
        with _tpm_call(f"write NV index 0x{index:08x}"):
            self._owner(owner_auth)
            handle = self._esapi.tr_from_tpmpublic(index)
            try:
                self._esapi.nv_write(handle, data, 0, ESYS_TR.OWNER)
            finally:
                self._esapi.tr_close(handle)

    def nv_read(self, index: int, size: int) -> bytes | None:
        """TPM2_NV_Read of ``size`` bytes with the index's own (empty) authorization; None when the index
        was never written."""
        with _tpm_call(f"read NV index 0x{index:08x}"):
            handle = self._esapi.tr_from_tpmpublic(index)
            try:
                return bytes(self._esapi.nv_read(handle, size, 0))
            except TSS2_Exception as exc:
                if exc.error == TPM2_RC.NV_UNINITIALIZED:
                    return None
                raise
            finally:
                self._esapi.tr_close(handle)

    def _owner(self, owner_auth: bytes) -> None:
        if owner_auth:
            self._esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)


def _as_mapping(selection: Selection) -> dict[HashAlg, tuple[int, ...]]:
    if isinstance(selection, str):
        pairs = _selection_pairs(TPML_PCR_SELECTION.parse(selection))
        out: dict[HashAlg, tuple[int, ...]] = {}
        for bank, index in pairs:
            out[bank] = (*out.get(bank, ()), index)
        return out
    return {HashAlg(bank): tuple(indices) for bank, indices in selection.items()}


def _selection(selection: Selection) -> TPML_PCR_SELECTION:
    if isinstance(selection, str):
        return TPML_PCR_SELECTION.parse(selection)
    spec = "+".join(
        f"{HashAlg(b).bank_name}:{','.join(map(str, sorted(i)))}" for b, i in selection.items() if i
    )
    return TPML_PCR_SELECTION.parse(spec)


def _selection_pairs(selection: TPML_PCR_SELECTION) -> list[tuple[HashAlg, int]]:
    pairs = []
    for i in range(selection.count):
        sel = selection.pcrSelections[i]
        bitmap = bytes(sel.pcrSelect)[: sel.sizeofSelect]
        bank = HashAlg(int(sel.hash))
        pairs += [
            (bank, 8 * n + bit) for n, octet in enumerate(bitmap) for bit in range(8) if octet >> bit & 1
        ]
    return pairs

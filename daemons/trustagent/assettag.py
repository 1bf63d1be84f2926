"""The host's asset tag in TPM NV: the index setup defines, the write the central asks for, the read a quote
binds.

SecL keeps the SHA-384 of the host's tag certificate in NV index 0x01C10110 (48 bytes). The index is
defined under the owner hierarchy with OWNERWRITE (only the platform owner's authorization changes the
tag) and AUTHREAD with an empty index authorization (the agent reads it for every quote without holding
the owner's secret); NO_DA, so those reads never count towards dictionary-attack lockout. Setup fills it
with zeros, which means "no tag" (:func:`secl.core.assettag.asset_tag_digest_from_nv`).
"""

from __future__ import annotations

from tpm2_pytss.constants import TPMA_NV

from secl.core.assettag import ASSET_TAG_NV_INDEX, ASSET_TAG_NV_SIZE, asset_tag_digest_from_nv
from secl.host.tpm import TPMAdapter, TPMError

ATTRIBUTES = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA
_EMPTY = bytes(ASSET_TAG_NV_SIZE)


def define_index(tpm: TPMAdapter, owner_auth: bytes = b"") -> str:
    """Make sure the asset-tag index exists with SecL's size, holding zeros if it is new; idempotent.

    Returns what was done: ``present`` (defined already, its content kept), ``defined`` (new, zeroed) or
    ``redefined`` (it had another size or attributes: undefined, then defined anew and zeroed).
    """
    found = tpm.nv_index(ASSET_TAG_NV_INDEX)
    outcome = "defined"
    if found is not None:
        written = bool(int(found.attributes) & int(TPMA_NV.WRITTEN))
        if found.size == ASSET_TAG_NV_SIZE and int(found.attributes) & ~int(TPMA_NV.WRITTEN) == int(
            ATTRIBUTES
        ):
            if not written:  # defined by an earlier setup that stopped before writing
                tpm.nv_write(ASSET_TAG_NV_INDEX, _EMPTY, owner_auth)
            return "present"
        tpm.nv_undefine(ASSET_TAG_NV_INDEX, owner_auth)
        outcome = "redefined"
    tpm.nv_define(ASSET_TAG_NV_INDEX, ASSET_TAG_NV_SIZE, ATTRIBUTES, owner_auth)
    tpm.nv_write(ASSET_TAG_NV_INDEX, _EMPTY, owner_auth)
    return outcome


def write_tag(tpm: TPMAdapter, digest: bytes, owner_auth: bytes = b"") -> None:
    """Write a tag digest (48 bytes; all zeros removes the tag), defining the index first if needed."""
    if len(digest) != ASSET_TAG_NV_SIZE:
        raise ValueError(f"an asset tag is {ASSET_TAG_NV_SIZE} bytes, not {len(digest)}")
    define_index(tpm, owner_auth)
    tpm.nv_write(ASSET_TAG_NV_INDEX, digest, owner_auth)


def read_tag(tpm: TPMAdapter) -> bytes | None:
    """The provisioned tag digest, or None when there is none (index undefined, never written, or zeros)."""
    found = tpm.nv_index(ASSET_TAG_NV_INDEX)
    if found is None:
        return None
    if found.size != ASSET_TAG_NV_SIZE:
        raise TPMError(
            f"NV index 0x{ASSET_TAG_NV_INDEX:08x} holds {found.size} bytes, not a {ASSET_TAG_NV_SIZE}-byte "
            "asset tag; run `secl-trustagent setup` to redefine it",
            code="tpm-asset-tag-index-invalid",
        )
    if not int(found.attributes) & int(TPMA_NV.WRITTEN):
        return None  # reading it would be a TPM error (NV_UNINITIALIZED)
    data = tpm.nv_read(ASSET_TAG_NV_INDEX, ASSET_TAG_NV_SIZE)
    return None if data is None else asset_tag_digest_from_nv(data)

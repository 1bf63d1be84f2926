"""SecL's image flavor for an encrypted VM image (the v4/v5 ``ImageFlavor`` JSON).

The shape SecL's workload policy manager writes and its workload service stores::

    {"flavor": {"meta": {"id": "<uuid>", "description": {"flavor_part": "IMAGE", "label": "<label>"}},
                "encryption_required": true,
                "encryption": {"key_url": "https://…/keys/<id>/transfer", "digest": "<base64 SHA-256>"},
                "integrity_enforced": false}}

``digest`` is the SHA-256 of the encrypted image file, base64 (SecL's ``GetImageFlavor`` callers pass
``base64.StdEncoding`` of ``sha256.Sum256``); ``integrity`` is left out as SecL's ``omitempty`` leaves it
out when integrity is not enforced. The flavor is unsigned here: the central signs it with its
flavor-signing key when the image is registered (a signed flavor is ``{"flavor": …, "signature": …}``).
"""

from __future__ import annotations

import binascii
import uuid
from typing import Any
from urllib.parse import urlsplit

from secl.wpm.errors import ImageError

FLAVOR_PART = "IMAGE"


def check_key_url(key_url: str) -> None:
    """A key URL is an absolute http(s) URL (SecL's: ``https://<kbs>/v1/keys/<id>/transfer``)."""
    url = urlsplit(key_url)
    if url.scheme not in {"https", "http"} or not url.netloc:
        raise ImageError("bad-flavor", f"key URL {key_url!r}: not an absolute http(s) URL")


def image_flavor(
    *, label: str, key_url: str, digest: str, flavor_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """The image flavor of an encrypted image; ``flavor_id`` defaults to a random UUID, as SecL's."""
    if not label.strip():
        raise ImageError("bad-flavor", "an image flavor needs a non-empty label")
    check_key_url(key_url)
    try:
        raw_digest = binascii.a2b_base64(digest, strict_mode=True)
    except (binascii.Error, ValueError):
        raw_digest = b""
    if len(raw_digest) != 32:
        raise ImageError("bad-flavor", f"digest {digest!r}: not the base64 of a SHA-256")
    return {
        "flavor": {
            "meta": {
                "id": str(flavor_id or uuid.uuid4()),
                "description": {"flavor_part": FLAVOR_PART, "label": label},
            },
            "encryption_required": True,
            "encryption": {"key_url": key_url, "digest": digest},
            "integrity_enforced": False,
        }
    }

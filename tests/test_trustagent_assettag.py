"""The trust agent's asset tag on a real TPM (swtpm): the NV index, ``POST /v2/tag`` and the quote binding.

tpm2-tools (``tpm2_nvreadpublic``, ``tpm2_nvread``) read the index independently of our adapter; quotes are
checked with secl.core.quote against SecL's qualifying data SHA-256(SHA-256(nonce) || tag).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tpm2_pytss.constants import TPMA_NV

from secl.core.assettag import ASSET_TAG_NV_INDEX
from secl.core.errors import QuoteError
from secl.core.eventlog import pcr_banks_from_json
from secl.core.quote import secl_qualifying_data, verify_quote
from secl.core.tpm import load_ak_public
from secl.host.tpm import TPMAdapter, TPMError
from secl.trustagent import assettag
from secl.trustagent.agenttpm import AgentTPM
from secl.trustagent.api import create_app
from secl.trustagent.cli import _asset_tag_index
from tests.inprocess_agent import Agent, agent_config
from tests.swtpm import RunningSwtpm
from tests.tpm2tools import require_tool

pytestmark = pytest.mark.swtpm

TAG = hashlib.sha384(b"a tag certificate").digest()
OTHER = hashlib.sha384(b"another tag certificate").digest()
HOST_UUID = "88888888-8887-1615-0115-071ba5a5a5a5"  # the corpus SMBIOS table the agent reads


def _tool(swtpm: RunningSwtpm, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "TPM2TOOLS_TCTI": swtpm.tcti}
    return subprocess.run(
        [require_tool(args[0]), *args[1:]], env=env, input=data, capture_output=True, timeout=60, check=False
    )


@pytest.fixture
def tpm(swtpm: RunningSwtpm) -> Iterator[TPMAdapter]:
    with TPMAdapter(swtpm.tcti) as adapter:
        yield adapter


def test_index_is_defined_once_with_owner_write_and_zeros(swtpm: RunningSwtpm) -> None:
    with TPMAdapter(swtpm.tcti) as tpm:
        assert tpm.nv_index(ASSET_TAG_NV_INDEX) is None and assettag.read_tag(tpm) is None
        assert assettag.define_index(tpm) == "defined"
        found = tpm.nv_index(ASSET_TAG_NV_INDEX)
        assert found is not None and found.size == 48
        assert int(found.attributes) & int(TPMA_NV.OWNERWRITE) and not int(found.attributes) & int(
            TPMA_NV.AUTHWRITE
        )
        assert assettag.read_tag(tpm) is None  # zeros: no tag
        assettag.write_tag(tpm, TAG)
        assert assettag.define_index(tpm) == "present"  # idempotent: the tag stays
        assert assettag.read_tag(tpm) == TAG
    # tpm2-tools, independently: the public area and the content.
    public = _tool(swtpm, "tpm2_nvreadpublic", hex(ASSET_TAG_NV_INDEX))
    assert public.returncode == 0, public.stderr
    text = public.stdout.decode()
    assert "size: 48" in text and "ownerwrite" in text and "authread" in text, text
    read = _tool(swtpm, "tpm2_nvread", hex(ASSET_TAG_NV_INDEX), "-s", "48")
    assert read.returncode == 0 and read.stdout == TAG, read.stderr
    # The index's own (empty) authorization does not write it: only the owner does.
    index = hex(ASSET_TAG_NV_INDEX)
    refused = _tool(swtpm, "tpm2_nvwrite", index, "-C", index, "-i", "-", data=OTHER)
    assert refused.returncode != 0 and b"authValue or authPolicy is not available" in refused.stderr
    owner = _tool(swtpm, "tpm2_nvwrite", index, "-C", "o", "-i", "-", data=OTHER)
    assert owner.returncode == 0, owner.stderr
    with TPMAdapter(swtpm.tcti) as tpm:
        assert assettag.read_tag(tpm) == OTHER


def test_an_index_of_the_wrong_size_is_named_then_redefined(tpm: TPMAdapter) -> None:
    tpm.nv_define(ASSET_TAG_NV_INDEX, 32, assettag.ATTRIBUTES)
    with pytest.raises(TPMError) as bad:
        assettag.read_tag(tpm)
    assert bad.value.code == "tpm-asset-tag-index-invalid"
    assert assettag.define_index(tpm) == "redefined"
    assert tpm.nv_index(ASSET_TAG_NV_INDEX).size == 48 and assettag.read_tag(tpm) is None
    # Defined but never written (an interrupted setup): no tag, and setup completes it.
    tpm.nv_undefine(ASSET_TAG_NV_INDEX)
    tpm.nv_define(ASSET_TAG_NV_INDEX, 48, assettag.ATTRIBUTES)
    assert assettag.read_tag(tpm) is None
    assert assettag.define_index(tpm) == "present" and tpm.nv_read(ASSET_TAG_NV_INDEX, 48) == bytes(48)
    with pytest.raises(ValueError):
        assettag.write_tag(tpm, b"short")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _verify(agent: Agent, body: dict, qualifying_data: bytes) -> None:
    aik = load_ak_public(agent.client.get("/v2/aik").json["aik"].encode())
    verify_quote(aik, base64.b64decode(body["attest"]), base64.b64decode(body["signature"]),
                 qualifying_data=qualifying_data, pcrs=pcr_banks_from_json(body["pcrs"]))  # fmt: skip


def test_quotes_bind_the_tag_once_it_is_written(agent: Agent) -> None:
    nonce = os.urandom(32)
    # No index at all (setup never ran): no tag, the plain binding.
    untagged = agent.quote(nonce, pcrs=[0, 7])
    assert untagged["is_tag_provisioned"] is False and "asset_tag" not in untagged
    _verify(agent, untagged, secl_qualifying_data(nonce))

    written = agent.client.post("/v2/tag", json={"tag": _b64(TAG), "hardware_uuid": HOST_UUID.upper()})
    assert written.status_code == 200, written.json
    assert written.json == {"is_tag_provisioned": True, "asset_tag": _b64(TAG)}
    tagged = agent.quote(nonce, pcrs=[0, 7])
    assert tagged["is_tag_provisioned"] is True and base64.b64decode(tagged["asset_tag"]) == TAG
    _verify(agent, tagged, secl_qualifying_data(nonce, TAG))
    with pytest.raises(QuoteError) as unbound:  # the quote is not valid for the nonce alone
        _verify(agent, tagged, secl_qualifying_data(nonce))
    assert unbound.value.code == "quote-nonce-mismatch"

    # The owner writes another digest behind the agent's back: the next quote binds that one.
    with agent.tpm._session() as (tpm, _):
        tpm.nv_write(ASSET_TAG_NV_INDEX, OTHER)
    moved = agent.quote(nonce, pcrs=[0])
    assert base64.b64decode(moved["asset_tag"]) == OTHER
    _verify(agent, moved, secl_qualifying_data(nonce, OTHER))

    # Zeros remove the tag (SecL's "no tag" value).
    cleared = agent.client.post("/v2/tag", json={"tag": _b64(bytes(48))})
    assert cleared.status_code == 200 and cleared.json == {"is_tag_provisioned": False, "asset_tag": None}
    again = agent.quote(nonce, pcrs=[0])
    assert again["is_tag_provisioned"] is False
    _verify(agent, again, secl_qualifying_data(nonce))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid-tag"),
        ({"tag": "not base64!"}, 400, "invalid-tag"),
        ({"tag": _b64(b"x" * 32)}, 400, "invalid-tag"),
        ({"tag": _b64(b"x" * 49)}, 400, "invalid-tag"),
        ({"tag": 48}, 400, "invalid-tag"),
        ({"tag": _b64(TAG), "hardware_uuid": 7}, 400, "invalid-hardware-uuid"),
        ({"tag": _b64(TAG), "extra": 1}, 400, "unknown-field"),
        ([_b64(TAG)], 400, "invalid-json"),
        ({"tag": _b64(TAG), "hardware_uuid": "00000000-0000-4000-8000-000000000001"}, 409,
         "hardware-uuid-mismatch"),
    ],
)  # fmt: skip
def test_bad_tag_requests_are_refused_with_a_code(agent: Agent, body: object, status: int, code: str) -> None:
    response = agent.client.post("/v2/tag", json=body)
    assert response.status_code == status and response.json["code"] == code, response.json
    with agent.tpm._session() as (tpm, _):
        assert assettag.read_tag(tpm) is None  # nothing was written


def test_the_agent_app_answers_tag_routes_only_by_post(agent: Agent) -> None:
    assert agent.client.get("/v2/tag").status_code == 405
    config = agent_config(Path("/nonexistent"), "swtpm:host=127.0.0.1,port=1")
    down = create_app(config, AgentTPM.from_config(config)).test_client()
    response = down.post("/v2/tag", json={"tag": _b64(TAG)})
    assert response.status_code == 503 and response.json["code"] == "tpm-unreachable"


def test_an_owner_password_is_needed_to_define_and_write_but_not_to_read(
    swtpm: RunningSwtpm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = _tool(swtpm, "tpm2_changeauth", "-c", "o", "owner-secret")
    assert changed.returncode == 0, changed.stderr
    # Setup reports the refusal and goes on (asset tags are optional); nothing is defined.
    _asset_tag_index(agent_config(tmp_path, swtpm.tcti))
    assert "asset-tag NV index 0x01c10110 not defined [tpm-auth-failed]" in capsys.readouterr().err
    with TPMAdapter(swtpm.tcti) as tpm:
        assert tpm.nv_index(ASSET_TAG_NV_INDEX) is None
        with pytest.raises(TPMError) as refused:
            assettag.write_tag(tpm, TAG)
        assert refused.value.code == "tpm-auth-failed"
        assert assettag.define_index(tpm, owner_auth=b"owner-secret") == "defined"
        assettag.write_tag(tpm, TAG, owner_auth=b"owner-secret")
    with TPMAdapter(swtpm.tcti) as tpm:  # a fresh context: no owner password known, the read still works
        assert assettag.read_tag(tpm) == TAG

"""SecL Manifest XML (``secl.core.appmanifest``): every corpus manifest parses; hostile ones get named errors.

Corpus: ``intel-secl/build/linux/tagent/manifest_tpm20.xml`` (the default application manifest SecL
installs), ``pkg/tagent/test/resources/manifest_{tpm20,wlagent}.xml`` and
``pkg/lib/host-connector/test/sample_manifest.xml``. The expected entries are read from each file's text
with a regular expression, independently of the parser.
"""

from __future__ import annotations

import re

import pytest

from secl.core.appmanifest import (
    MAX_ENTRIES,
    MAX_MANIFEST_BYTES,
    DigestAlg,
    EntryKind,
    ManifestError,
    parse_manifest,
    wildcard_to_regex,
)
from tests.corpus import corpus_bytes

CORPUS_MANIFESTS = [
    "intel-secl/build/linux/tagent/manifest_tpm20.xml",
    "intel-secl/pkg/tagent/test/resources/manifest_tpm20.xml",
    "intel-secl/pkg/tagent/test/resources/manifest_wlagent.xml",
    "intel-secl/pkg/lib/host-connector/test/sample_manifest.xml",
]
UUID = "834076cd-f733-4cca-a417-113fac90adc7"


def _manifest(body: str, **attrs: str) -> bytes:
    root = {"Label": "app", "Uuid": UUID, "DigestAlg": "SHA384", **attrs}
    attributes = " ".join(f'{k}="{v}"' for k, v in root.items())
    return f'<Manifest xmlns="lib:wml:manifests:1.0" {attributes}>{body}</Manifest>'.encode()


@pytest.mark.parametrize("relative", CORPUS_MANIFESTS)
def test_corpus_manifest_parses(relative: str) -> None:
    text = corpus_bytes(relative).decode()
    manifest = parse_manifest(text.encode())
    expected = re.findall(r"<(File|Dir|Symlink) ([^>]*?)/?>", text)
    assert [(e.kind.value, e.path.text) for e in manifest.entries] == [
        (kind, re.search(r'Path="([^"]*)"', attrs).group(1)) for kind, attrs in expected
    ]
    assert [e.path.is_regex for e in manifest.entries] == ['SearchType="regex"' in a for _, a in expected]
    assert manifest.label == re.search(r'Label="([^"]*)"', text).group(1)
    assert manifest.uuid == re.search(r'Uuid="([^"]*)"', text).group(1)
    assert manifest.digest_alg is DigestAlg.SHA384


def test_default_manifest_regex_entries_search_from_their_literal_directory() -> None:
    manifest = parse_manifest(corpus_bytes(CORPUS_MANIFESTS[0]))
    sh = next(e for e in manifest.entries if e.path.text == r"/opt/trustagent/bin/.*\.sh")
    assert sh.path.search_root == "/opt/trustagent/bin"
    assert sh.path.matches("/opt/trustagent/bin/tagent.sh")
    assert sh.path.matches("/opt/trustagent/bin/sub/dir/x.sh")  # find -regex walks down
    assert not sh.path.matches("/opt/trustagent/bin/tagent.shx")
    assert not sh.path.matches("/opt/trustagent/binx/a.sh")


def test_dir_filters_search_anywhere_in_the_name_like_grep() -> None:
    manifest = parse_manifest(_manifest('<Dir Path="/d" Include="conf" Exclude="\\.bak$"/>'))
    entry = manifest.entries[0]
    assert entry.kind is EntryKind.DIR
    assert [n for n in ("a.conf", "conf.d", "x.conf.bak", "other") if entry.selects(n)] == [
        "a.conf",
        "conf.d",
    ]


def test_empty_filters_select_everything() -> None:
    entry = parse_manifest(_manifest('<Dir Path="/d" Include="" Exclude=""/>')).entries[0]
    assert all(entry.selects(n) for n in ("a", ".hidden", "b c"))


def test_wildcard_filters_are_anchored_shell_patterns() -> None:
    assert wildcard_to_regex("*.sh") == r"^.*\.sh$"
    entry = parse_manifest(
        _manifest('<Dir Path="/d" FilterType="wildcard" Include="*.s?" Exclude="x*"/>')
    ).entries[0]
    assert (entry.include, entry.exclude) == (r"^.*\.s.$", r"^x.*$")
    assert [n for n in ("a.sh", "a.so", "a.shx", "x.sh", "ab.sh") if entry.selects(n)] == [
        "a.sh",
        "a.so",
        "ab.sh",
    ]


def test_posix_bracket_classes_work_as_in_grep() -> None:
    entry = parse_manifest(_manifest('<Dir Path="/d" Include="^[[:digit:]]+$"/>')).entries[0]
    assert [n for n in ("123", "12a", "") if entry.selects(n)] == ["123"]


def test_sha256_manifests_and_lower_case_spelling() -> None:
    assert parse_manifest(_manifest("", DigestAlg="sha256")).digest_alg is DigestAlg.SHA256


def test_event_tag_is_label_dash_uuid() -> None:
    assert parse_manifest(_manifest("")).event_tag == f"app-{UUID}"


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE Manifest [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    f'<Manifest Label="&c;" Uuid="{UUID}" DigestAlg="SHA384"/>'
).encode()
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE Manifest [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    f'<Manifest Label="&x;" Uuid="{UUID}" DigestAlg="SHA384"/>'
).encode()
DOCTYPE_ONLY = f'<!DOCTYPE Manifest><Manifest Label="a" Uuid="{UUID}" DigestAlg="SHA384"/>'.encode()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (BILLION_LAUGHS, "manifest-xml-forbidden"),
        (EXTERNAL_ENTITY, "manifest-xml-forbidden"),
        (DOCTYPE_ONLY, "manifest-xml-forbidden"),
        (b"<Manifest", "manifest-malformed"),
        (b"", "manifest-malformed"),
        (b'<Measurement Label="a" DigestAlg="SHA384"/>', "manifest-malformed"),
        (_manifest("", DigestAlg="MD5"), "digest-alg-unsupported"),
        (_manifest("", DigestAlg=""), "digest-alg-unsupported"),
        (_manifest("", Uuid="../../etc"), "manifest-uuid-invalid"),
        (_manifest("", Label=""), "manifest-label-invalid"),
        (_manifest("", Extra="1"), "manifest-invalid"),
        (_manifest('<File Path="relative/path"/>'), "manifest-path-invalid"),
        (_manifest('<File Path=""/>'), "manifest-path-invalid"),
        (_manifest('<File Path="/opt/../../etc/shadow"/>'), "path-escapes-root"),
        (_manifest('<Symlink Path="/.."/>'), "path-escapes-root"),
        (_manifest('<File Path="/a/(" SearchType="regex"/>'), "regex-invalid"),
        (_manifest('<Dir Path="/a" Include="[z-a]"/>'), "regex-invalid"),
        (_manifest('<File Path="/a" SearchType="glob"/>'), "manifest-invalid"),
        (_manifest('<Dir Path="/a" FilterType="fnmatch"/>'), "manifest-invalid"),
        (_manifest('<Script Path="/a"/>'), "manifest-invalid"),
        (_manifest('<File Path="/a" Recursive="true"/>'), "manifest-invalid"),
        (_manifest('<File Path="/a">deadbeef</File>'), "manifest-invalid"),
        (_manifest('<Dir Path="/a" Include="' + "a" * 5000 + '"/>'), "manifest-invalid"),
    ],
)
def test_bad_manifests_get_named_errors(data: bytes, code: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)
    assert caught.value.code == code, caught.value


def test_huge_manifest_is_refused_before_parsing() -> None:
    body = '<File Path="/a"/>' * (MAX_MANIFEST_BYTES // 16)
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(body))
    assert caught.value.code == "manifest-too-large"
    assert "bytes" in str(caught.value)


def test_too_many_entries_are_refused() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest('<File Path="/a"/>' * (MAX_ENTRIES + 1)))
    assert caught.value.code == "manifest-too-large"
    assert "entries" in str(caught.value)


def test_many_entries_up_to_the_limit_parse() -> None:
    assert len(parse_manifest(_manifest('<File Path="/a"/>' * MAX_ENTRIES)).entries) == MAX_ENTRIES

"""The measuring engine (``secl.host.measure``) on trees built in tmp_path.

Every expected digest is computed here with hashlib from the content the test wrote and SecL's rules
(file = H(content); directory = H(sorted names, each + "\\n"); symlink = H(path + target); cumulative =
chain from zeros), never by secl code. The directory rule is also checked against SecL's own
measurements: five directory digests in the corpus are reproduced from the file names SecL's
measurement lists under them.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from secl.core.appmanifest import parse_manifest
from secl.core.measurementlog import parse_measurement_xml, render_measurement_xml
from secl.host.measure import MAX_LINKS, MeasureError, measure

UUID = "834076cd-f733-4cca-a417-113fac90adc7"


def manifest(body: str, alg: str = "SHA384", label: str = "app"):
    return parse_manifest(
        f'<Manifest xmlns="lib:wml:manifests:1.0" Label="{label}" Uuid="{UUID}" DigestAlg="{alg}">'
        f"{body}</Manifest>".encode()
    )


def chain(alg: str, digests: list[bytes]) -> str:
    value = bytes(hashlib.new(alg).digest_size)
    for d in digests:
        value = hashlib.new(alg, value + d).digest()
    return value.hex()


def write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    bin_ = root / "opt/app/bin"
    write(bin_ / "app", b"\x7fELF binary")
    write(bin_ / "run.sh", b"#!/bin/sh\necho run\n")
    write(bin_ / "stop.sh", b"#!/bin/sh\necho stop\n")
    write(bin_ / "debug.log", b"noise")
    write(bin_ / ".hidden", b"h")
    write(bin_ / "sub/deep.sh", b"deep")  # a directory: not listed by Dir, found by the regex search
    write(root / "opt/app/lib/big.bin", os.urandom(3 * 1024 * 1024 + 7))  # > the 1 MiB streaming buffer
    (bin_ / "current").symlink_to("run.sh")
    (bin_ / "abs").symlink_to("/opt/app/lib/big.bin")
    return root


def test_file_dir_symlink_and_regex_digests(tree: Path) -> None:
    m = manifest(
        '<File Path="/opt/app/bin/app"/>'
        '<Dir Path="/opt/app/bin" Include="" Exclude="\\.log$"/>'
        '<Symlink Path="/opt/app/bin/current"/>'
        '<File Path="/opt/app/bin/.*\\.sh" SearchType="regex"/>'
        '<File Path="/opt/app/lib/big.bin"/>'
        '<File Path="/opt/app/bin/abs"/>'
    )
    result = measure(m, tree)
    bin_ = tree / "opt/app/bin"
    big = (tree / "opt/app/lib/big.bin").read_bytes()
    expected = [
        ("File", "/opt/app/bin/app", hashlib.sha384(b"\x7fELF binary").digest()),
        ("Dir", "/opt/app/bin", hashlib.sha384(b".hidden\nabs\napp\ncurrent\nrun.sh\nstop.sh\n").digest()),
        ("Symlink", "/opt/app/bin/current", hashlib.sha384(b"/opt/app/bin/currentrun.sh").digest()),
        ("File", "/opt/app/bin/run.sh", hashlib.sha384((bin_ / "run.sh").read_bytes()).digest()),
        ("File", "/opt/app/bin/stop.sh", hashlib.sha384((bin_ / "stop.sh").read_bytes()).digest()),
        ("File", "/opt/app/bin/sub/deep.sh", hashlib.sha384(b"deep").digest()),
        ("File", "/opt/app/lib/big.bin", hashlib.sha384(big).digest()),
        # An absolute link target is resolved inside the root, never on the measuring host.
        ("File", "/opt/app/bin/abs", hashlib.sha384(big).digest()),
    ]
    assert [(e.kind.value, e.path, e.digest) for e in result.log.entries] == [
        (k, p, d.hex()) for k, p, d in expected
    ]
    assert result.log.cumulative_hash == chain("sha384", [d for _, _, d in expected])
    assert (result.log.entries[1].include, result.log.entries[1].exclude) == ("", "\\.log$")
    assert result.files == 6
    assert (
        result.bytes
        == len(big) * 2 + sum(len((bin_ / n).read_bytes()) for n in ("app", "run.sh", "stop.sh")) + 4
    )


def test_sha256_manifest_and_wildcard_filter(tree: Path) -> None:
    m = manifest(
        '<Dir Path="/opt/app/bin" FilterType="wildcard" Include="*.sh" Exclude="stop*"/>', alg="SHA256"
    )
    result = measure(m, tree)
    digest = hashlib.sha256(b"run.sh\n").digest()
    assert [(e.path, e.digest, e.include, e.exclude) for e in result.log.entries] == [
        ("/opt/app/bin", digest.hex(), r"^.*\.sh$", r"^stop.*$")
    ]
    assert result.log.cumulative_hash == chain("sha256", [digest])
    assert result.log.digest_alg == "SHA256"


def test_regex_dir_and_symlink_searches(tree: Path) -> None:
    m = manifest(
        '<Dir Path="/opt/app/.*" SearchType="regex" Include=".*"/><Symlink Path="/opt/app/bin/.*" SearchType="regex"/>'
    )
    result = measure(m, tree)
    assert [(e.kind.value, e.path) for e in result.log.entries] == [
        ("Dir", "/opt/app/bin"),
        ("Dir", "/opt/app/bin/sub"),
        ("Dir", "/opt/app/lib"),
        ("Symlink", "/opt/app/bin/abs"),
        ("Symlink", "/opt/app/bin/current"),
    ]
    assert result.log.entries[3].digest == hashlib.sha384(b"/opt/app/bin/abs/opt/app/lib/big.bin").hexdigest()
    assert result.log.entries[1].digest == hashlib.sha384(b"deep.sh\n").hexdigest()


def test_search_never_follows_links_it_meets(tree: Path) -> None:
    (tree / "opt/app/linked").symlink_to("bin")
    (tree / "opt/app/escape").symlink_to("/")
    paths = [e.path for e in measure(manifest('<File Path="/opt/.*" SearchType="regex"/>'), tree).log.entries]
    assert "/opt/app/bin/app" in paths
    assert not [p for p in paths if p.startswith(("/opt/app/linked/", "/opt/app/escape/"))]


def test_search_start_is_resolved_inside_the_root(tree: Path) -> None:
    # SecL runs find on "<root>/opt/app/linked/": the trailing slash makes the kernel follow that link.
    (tree / "opt/app/linked").symlink_to("bin")
    paths = [
        e.path
        for e in measure(manifest('<File Path="/opt/app/linked/.*" SearchType="regex"/>'), tree).log.entries
    ]
    assert paths == ["/opt/app/linked/.hidden", "/opt/app/linked/app", "/opt/app/linked/debug.log",
                     "/opt/app/linked/run.sh", "/opt/app/linked/stop.sh", "/opt/app/linked/sub/deep.sh"]  # fmt: skip


def test_search_from_a_missing_directory_finds_nothing(tree: Path) -> None:
    result = measure(manifest('<File Path="/nowhere/.*" SearchType="regex"/>'), tree)
    assert (result.log.entries, result.log.cumulative_hash) == ((), "00" * 48)


# SecL's measurements in the corpus (v3.3 UnknownVendor host, and the v1.0 workload agent): these
# directories held exactly the files the same measurement lists under them, so their Dir digests
# must come out of a tree with those names.
CORPUS_DIRS = [
    ("/opt/tbootxm/dracut_files", ["check", "install", "module-setup.sh"],
     "1d9c8eb15a49ea65fb96f2b919c42d5dfd30f4e4c1618205287345aeb4669d18113fe5bc87b033aeef2aeadc2e063232"),
    ("/opt/tbootxm/initrd_hooks", ["tcb"],
     "77b913422748a8e62f0720d739d54b2fa7856ebeb9e76fab75c41c375f2ad77b7b9ec5849b20d857e24a894a615d2de7"),
    ("/opt/tbootxm/mkinitrd_files", ["setup-measure_host.sh"],
     "6928eb666f6971af5da42ad785588fb9464465b12c78f7279f46f9f8e04ae428d4872e7813671a1390cc8ed433366247"),
    ("/opt/trustagent/bin", ["tagent"],
     "a5f6af1a79a22db40cdbcdca8bf0b2e00aa6f01a8d04f216c291719149c4d59d9102a4ea806503b3bdb3c7e236f59fb4"),
    ("/opt/workload-agent/bin", ["wlagent"],
     "e64e6d5afaad329d94d749e9b72c76e23fd3cb34655db10eadab4f858fb40b25ff08afa2aa6dbfbf081e11defdb58d5a"),
]  # fmt: skip


def test_directory_digests_reproduce_secl_measurements(tmp_path: Path) -> None:
    import json

    from tests.corpus import corpus_bytes

    secl_xmls = "".join(
        json.loads(corpus_bytes(p))["measurement_xmls"][i]
        for p, i in (
            ("intel-secl/pkg/lib/verifier/test_data/UnknownVendor/host_manifest.json", 0),
            ("intel-secl/pkg/lib/host-connector/test/sample_host_manifest.json", 0),
        )
    )
    body = ""
    for directory, names, digest in CORPUS_DIRS:
        assert f'Path="{directory}">{digest}</Dir>' in secl_xmls
        for name in names:
            write(tmp_path / directory.lstrip("/") / name, b"content does not matter")
        write(tmp_path / directory.lstrip("/") / "subdir/x", b"")  # directories are not listed
        body += f'<Dir Exclude="" FilterType="regex" Include=".*" Path="{directory}"/>'
    result = measure(manifest(body), tmp_path)
    assert [e.digest for e in result.log.entries] == [d for _, _, d in CORPUS_DIRS]


def test_result_round_trips_through_both_parsers(tree: Path) -> None:
    from secl.core.rules_software import parse_measurement_xml as rules_parser

    result = measure(
        manifest('<Dir Path="/opt/app/bin"/><File Path="/opt/app/bin/.*" SearchType="regex"/>'), tree
    )
    xml = render_measurement_xml(result.log)
    assert parse_measurement_xml(xml) == result.log == rules_parser(xml)
    assert rules_parser(xml).replay() == result.log.cumulative_hash


def test_thread_count_does_not_change_the_result(tree: Path) -> None:
    for i in range(50):
        write(tree / f"opt/many/f{i:03}", os.urandom(i * 100))
    m = manifest('<File Path="/opt/.*" SearchType="regex"/>')
    one, many = measure(m, tree, workers=1), measure(m, tree, workers=16)
    assert one.log == many.log
    assert len(one.log.entries) == 57  # regular files only, not the two links


def test_progress_reports_files_and_bytes(tree: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = measure(
        manifest('<File Path="/opt/app/.*" SearchType="regex"/>'),
        tree,
        progress=lambda f, b: seen.append((f, b)),
    )
    assert seen[-1] == (result.files, result.bytes) == (len(result.log.entries), result.bytes)
    assert [f for f, _ in seen] == list(range(1, result.files + 1))


def test_hashing_runs_on_several_threads(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import secl.host.measure as engine

    threads: set[str] = set()
    original = engine._hash_file

    def spy(*args):
        threads.add(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(engine, "_hash_file", spy)
    for i in range(8):
        write(tree / f"opt/par/big{i}", os.urandom(2 * 1024 * 1024))  # large files: one task each
    for i in range(300):
        write(tree / f"opt/par/small{i:03}", os.urandom(100))  # small files: batched
    result = measure(manifest('<File Path="/opt/par/.*" SearchType="regex"/>'), tree, workers=4)
    assert len({n for n in threads if n.startswith("secl-measure")}) > 1
    assert result.files == 308
    expected = [hashlib.sha384((tree / f"opt/par/{n}").read_bytes()).hexdigest()
                for n in sorted(p.name for p in (tree / "opt/par").iterdir())]  # fmt: skip
    assert [e.digest for e in result.log.entries] == expected


# --- confinement and bad trees --------------------------------------------------------------------------


def _error(tree: Path, body: str, **kwargs) -> MeasureError:
    with pytest.raises(MeasureError) as caught:
        measure(manifest(body), tree, **kwargs)
    return caught.value


def test_absolute_link_to_a_host_file_stays_in_the_root(tree: Path) -> None:
    (tree / "opt/app/passwd").symlink_to("/etc/passwd")  # exists on the host, not in the root
    error = _error(tree, '<File Path="/opt/app/passwd"/>')
    assert (error.code, error.path) == ("path-missing", "/opt/app/passwd")


def test_relative_link_climbing_out_of_the_root(tree: Path) -> None:
    (tree / "opt/app/out").symlink_to("../../../../../../../../etc/passwd")
    error = _error(tree, '<File Path="/opt/app/out"/>')
    assert (error.code, error.path) == ("path-escapes-root", "/opt/app/out")
    assert "above the root" in str(error)


def test_symlink_loops(tree: Path) -> None:
    (tree / "opt/a").symlink_to("b")
    (tree / "opt/b").symlink_to("a")
    (tree / "opt/self").symlink_to("self")
    assert _error(tree, '<File Path="/opt/a"/>').code == "symlink-loop"
    assert _error(tree, '<Dir Path="/opt/self"/>').code == "symlink-loop"
    assert _error(tree, '<File Path="/opt/self/x"/>').code == "symlink-loop"
    # A link to itself is measured fine as a Symlink: it is never followed.
    result = measure(manifest('<Symlink Path="/opt/self"/>'), tree)
    assert result.log.entries[0].digest == hashlib.sha384(b"/opt/selfself").hexdigest()


def test_long_but_finite_link_chain(tree: Path) -> None:
    for i in range(MAX_LINKS):
        (tree / f"opt/l{i}").symlink_to(f"l{i + 1}")
    (tree / f"opt/l{MAX_LINKS}").write_bytes(b"end")
    assert (
        measure(manifest('<File Path="/opt/l0"/>'), tree).log.entries[0].digest
        == hashlib.sha384(b"end").hexdigest()
    )
    (tree / f"opt/l{MAX_LINKS}").unlink()
    (tree / f"opt/l{MAX_LINKS}").symlink_to("end")
    (tree / "opt/end").write_bytes(b"end")
    assert _error(tree, '<File Path="/opt/l0"/>').code == "symlink-loop"


def test_wrong_kinds(tree: Path) -> None:
    os.mkfifo(tree / "opt/fifo")
    assert _error(tree, '<File Path="/opt/fifo"/>').code == "not-a-file"  # and does not block on the FIFO
    assert _error(tree, '<File Path="/opt/app/bin"/>').code == "not-a-file"
    assert _error(tree, '<Dir Path="/opt/app/bin/app"/>').code == "not-a-directory"
    assert _error(tree, '<Symlink Path="/opt/app/bin/app"/>').code == "not-a-symlink"
    assert _error(tree, '<File Path="/opt/app/bin/app/x"/>').code == "path-missing"
    # A FIFO inside a searched directory is not a regular file, so it is not opened either.
    assert [
        e.path for e in measure(manifest('<File Path="/opt/fi.*" SearchType="regex"/>'), tree).log.entries
    ] == []


def test_missing_paths_fail_unless_skipped(tree: Path) -> None:
    body = '<File Path="/opt/app/bin/app"/><File Path="/opt/gone"/><Dir Path="/opt/gone/dir"/>'
    error = _error(tree, body)
    assert (error.code, error.path) == ("path-missing", "/opt/gone")
    result = measure(manifest(body), tree, skip_missing=True)
    assert [e.path for e in result.log.entries] == ["/opt/app/bin/app"]
    assert result.skipped == ("/opt/gone", "/opt/gone/dir")


def test_ambiguous_names_are_refused(tree: Path) -> None:
    write(tree / "opt/app/bin/two\nlines", b"")
    error = _error(tree, '<Dir Path="/opt/app/bin"/>')
    assert (error.code, error.path) == ("name-has-newline", "/opt/app/bin")
    assert measure(
        manifest('<Dir Path="/opt/app/bin" Exclude="&#10;"/>'), tree
    ).log.entries  # filtered out: fine


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    error = _error(tmp_path / "absent", '<File Path="/a"/>')
    assert error.code == "root-invalid"

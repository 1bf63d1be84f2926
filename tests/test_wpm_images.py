"""secl-wpm's image encryption against the real tools: qemu-img writes and reads, cryptsetup checks.

Every image here is encrypted by the engine and then opened by an independent reader — ``cryptsetup``
(isLuks, luksDump, open --test-passphrase) and QEMU's own LUKS code (``qemu-img convert --image-opts``) —
and compared byte for byte with the original. Nothing is mocked: a missing qemu-img or cryptsetup fails
the run with the Debian package to install.

The test images are 8 MiB: random data, a run of zeros (so a sparse region must come back as zeros, not
as garbage decrypted from an unwritten sector) and a marker string that must not appear in ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from secl.wpm import qemuimg
from secl.wpm.cli import cli
from secl.wpm.errors import ImageError
from secl.wpm.image_flavor import image_flavor
from secl.wpm.imagekey import ImageKey
from secl.wpm.keysource import KeySource, acquire_key
from secl.wpm.luksimage import EncryptedFormat, EncryptedImage, PlainFormat, decrypt_image, encrypt_image
from secl.wpm.tools import find_tool

MIB = 1 << 20
MARKER = b"SECL-PLAINTEXT-MARKER-" * 8
FAST = 10  # ms of PBKDF2 per key slot in tests (PLATFORM-NOTES: keep tests off the 2 s default)
SECL_WPM = str(Path(sys.executable).with_name("secl-wpm"))


@pytest.fixture(scope="module", autouse=True)
def real_tools() -> None:
    for tool in ("qemu-img", "cryptsetup"):
        try:
            find_tool(tool)
        except ImageError as exc:
            pytest.fail(exc.message)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wpm")


@pytest.fixture(scope="module")
def key() -> ImageKey:
    return ImageKey(os.urandom(32))


@pytest.fixture(scope="module")
def key_file(workdir: Path, key: ImageKey) -> Path:
    """The raw 32 bytes, as an owner would keep them."""
    path = workdir / "image.key"
    path.write_bytes(base64.b64decode(key.passphrase))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def passphrase_file(workdir: Path, key: ImageKey) -> Path:
    """The passphrase as a file, for the independent readers (cryptsetup --key-file, qemu's secret)."""
    path = workdir / "passphrase"
    path.write_bytes(key.passphrase)
    return path


@pytest.fixture(scope="module")
def other_passphrase_file(workdir: Path) -> Path:
    path = workdir / "other-passphrase"
    path.write_bytes(ImageKey(os.urandom(32)).passphrase)
    return path


@pytest.fixture(scope="module")
def raw_image(workdir: Path) -> Path:
    path = workdir / "disk.raw"
    with path.open("wb") as f:
        f.write(os.urandom(3 * MIB))
        f.write(MARKER)
        f.write(os.urandom(MIB - len(MARKER)))
        f.truncate(8 * MIB)  # the last 4 MiB: a hole, zeros when read
    return path


@pytest.fixture(scope="module")
def qcow2_image(workdir: Path, raw_image: Path) -> Path:
    path = workdir / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw_image, path], check=True)
    return path


@pytest.fixture(scope="module")
def encrypted(
    workdir: Path, raw_image: Path, qcow2_image: Path, key: ImageKey
) -> dict[tuple[str, str], EncryptedImage]:
    """Each output format from each input format, encrypted once for the module (qemu-img's own LUKS
    calibration costs ~2.5 s per qcow2)."""
    results = {}
    for source in (raw_image, qcow2_image):
        for fmt in EncryptedFormat:
            target = workdir / f"{source.stem}-from-{source.suffix[1:]}.{fmt.value}"
            results[(source.suffix[1:], fmt.value)] = encrypt_image(
                source, target, key, format=fmt, iter_time_ms=FAST
            )
    return results


def qemu_read(image: Path, fmt: str, passphrase_file: Path, out: Path) -> bytes:
    """The guest's view of an encrypted image, read by QEMU's LUKS code with the passphrase from a file."""
    opts = (
        f"driver=luks,key-secret=s0,file.filename={image}"
        if fmt == "luks"
        else f"driver=qcow2,encrypt.key-secret=s0,file.filename={image}"
    )
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "--object",
            f"secret,id=s0,file={passphrase_file}",
            "--image-opts",
            opts,
            "-O",
            "raw",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def cryptsetup(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool("cryptsetup"), *map(str, args)], capture_output=True, text=True, check=False
    )


def partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


# --- the formats, read by the real tools ---------------------------------------------------------------


@pytest.mark.parametrize("source", ["raw", "qcow2"])
def test_luks1_volume_is_what_cryptsetup_reads(encrypted, source, passphrase_file, other_passphrase_file):
    image = encrypted[(source, "luks")].path
    assert cryptsetup("isLuks", "--type", "luks1", image).returncode == 0
    dump = cryptsetup("luksDump", image)
    assert dump.returncode == 0, dump.stderr
    fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in dump.stdout.splitlines())}
    assert fields["Version"] == "1"
    assert (fields["Cipher name"], fields["Cipher mode"], fields["Hash spec"]) == (
        "aes",
        "xts-plain64",
        "sha512",
    )
    assert fields["MK bits"] == "512"
    assert fields["Payload offset"] == "4096"
    assert "Key Slot 0: ENABLED" in dump.stdout and "Key Slot 1: DISABLED" in dump.stdout

    accepted = cryptsetup(
        "open", "--test-passphrase", "--disable-locks", "--key-file", passphrase_file, image
    )
    assert accepted.returncode == 0, accepted.stderr
    refused = cryptsetup(
        "open", "--test-passphrase", "--disable-locks", "--key-file", other_passphrase_file, image
    )
    assert refused.returncode == 2, refused  # cryptsetup: 2 = no key available with this passphrase
    assert "No key available with this passphrase" in refused.stderr


@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
@pytest.mark.parametrize("source", ["raw", "qcow2"])
def test_qemu_reads_back_exactly_the_original_bytes(  # noqa: PLR0917 (pytest fixtures)
    encrypted, raw_image, passphrase_file, tmp_path, source, fmt
):
    image = encrypted[(source, fmt)]
    assert image.virtual_size == 8 * MIB
    ciphertext = image.path.read_bytes()
    assert MARKER[:32] not in ciphertext
    assert qemu_read(image.path, fmt, passphrase_file, tmp_path / "plain.raw") == raw_image.read_bytes()


@pytest.mark.parametrize("jobs", [2, 3])
def test_a_volume_written_in_windows_by_parallel_qemu_img_reads_back_whole(
    key, tmp_path, passphrase_file, jobs
):
    """160 MiB: two windows of 80 MiB, each written by its own qemu-img at once, encrypting and decrypting;
    data straddles the boundary and ends the disk. (jobs=3 still makes two: no window under 64 MiB.)"""
    source = tmp_path / "big.raw"
    with source.open("wb") as f:
        for offset in (0, 80 * MIB - 512 * 1024, 160 * MIB - MIB):
            f.seek(offset)
            f.write(os.urandom(MIB))
    watcher = ChildWatcher()
    watcher.start()
    try:
        image = encrypt_image(source, tmp_path / "big.luks", key, iter_time_ms=FAST, jobs=jobs)
        # And back, in windows too: the plain raw disk is byte for byte the original, its zeros holes.
        plain = decrypt_image(image.path, tmp_path / "back.raw", key, jobs=jobs)
    finally:
        watcher.stop.set()
        watcher.join()
    converts = [
        s["cmdline"] for s in watcher.seen.values() if s["comm"] == "qemu-img" and b"convert" in s["cmdline"]
    ]
    half = str(80 * MIB).encode()
    for opts in (b"--image-opts", b"--target-image-opts"):
        windows = sorted(
            re.search(opts + rb"\0driver=raw,offset=(\d+),size=(\d+),", c).groups() for c in converts
        )
        assert windows == [(b"0", half), (b"0", half), (half, half), (half, half)]  # encrypt's and decrypt's

    compare = subprocess.run(
        ["qemu-img", "compare", "--object", f"secret,id=s0,file={passphrase_file}", "--image-opts",
         f"driver=raw,file.filename={source}", f"driver=luks,key-secret=s0,file.filename={image.path}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert compare.returncode == 0, compare.stdout + compare.stderr
    assert image.sha256 == hashlib.sha256(image.path.read_bytes()).digest()
    same = subprocess.run(["cmp", str(source), str(plain.path)], capture_output=True, text=True, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert plain.path.stat().st_blocks * 512 < 16 * MIB


def test_encrypted_qcow2_is_a_luks_qcow2(encrypted):
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", encrypted[("raw", "qcow2")].path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert info["format"] == "qcow2" and info["encrypted"] is True
    enc = info["format-specific"]["data"]["encrypt"]
    assert (enc["format"], enc["cipher-alg"], enc["cipher-mode"], enc["ivgen-alg"], enc["hash-alg"]) == (
        "luks",
        "aes-256",
        "xts",
        "plain64",
        "sha512",
    )
    # Sparse: the 4 MiB hole of the input is not in the file.
    assert encrypted[("raw", "qcow2")].path.stat().st_size < 7 * MIB


def test_a_key_added_by_cryptsetup_opens_in_qemu_too(encrypted, passphrase_file, raw_image, tmp_path):
    """The volume is plain LUKS1: key management with cryptsetup carries over to QEMU."""
    copy = tmp_path / "copy.luks"
    copy.write_bytes(encrypted[("raw", "luks")].path.read_bytes())
    second = tmp_path / "second"
    second.write_bytes(ImageKey(os.urandom(32)).passphrase)
    added = cryptsetup(
        "luksAddKey", "--batch-mode", "--disable-locks", "--pbkdf-force-iterations", "1000",
        "--key-file", passphrase_file, copy, second,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert qemu_read(copy, "luks", second, tmp_path / "plain.raw") == raw_image.read_bytes()


@pytest.mark.parametrize("source", ["raw", "qcow2"])
@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_digest_is_the_sha256_of_the_encrypted_file(encrypted, source, fmt):
    image = encrypted[(source, fmt)]
    assert image.sha256 == hashlib.sha256(image.path.read_bytes()).digest()
    assert image.digest == base64.b64encode(image.sha256).decode()


# --- decrypting for the owner --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_decrypt_round_trips_to_identical_content(encrypted, key, raw_image, tmp_path, fmt):
    source = encrypted[("qcow2", fmt)].path
    as_raw = decrypt_image(source, tmp_path / "plain.raw", key, format=PlainFormat.RAW)
    assert as_raw.path.read_bytes() == raw_image.read_bytes()
    default = decrypt_image(source, tmp_path / "plain.out", key)
    assert default.format is (PlainFormat.RAW if fmt == "luks" else PlainFormat.QCOW2)
    compare = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", default.format.value, raw_image, default.path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compare.returncode == 0, compare.stdout + compare.stderr


@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_wrong_key_fails_with_one_clear_line_and_leaves_nothing(encrypted, tmp_path, fmt):
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    out = tmp_path / "out.raw"
    result = CliRunner().invoke(
        cli, ["decrypt-image", str(encrypted[("raw", fmt)].path), str(out), "--key-file", str(wrong)]
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"secl-wpm: error: {encrypted[('raw', fmt)].path}: the key does not open this image "
        "(no LUKS key slot accepts it)"
    ]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [wrong]


def test_decrypting_a_plain_image_is_refused(raw_image, key, tmp_path):
    with pytest.raises(ImageError) as err:
        decrypt_image(raw_image, tmp_path / "out", key)
    assert err.value.code == "not-encrypted"
    assert list(tmp_path.iterdir()) == []


# --- failures leave nothing behind ---------------------------------------------------------------------


def test_failure_after_the_header_was_written_removes_the_partial_output(workdir, key, tmp_path):
    """A qcow2 whose backing file is gone: cryptsetup has formatted the output when qemu-img fails."""
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            str(tmp_path / "gone.raw"),
            "-F",
            "raw",
            str(overlay),
            "8M",
        ],
        check=True,
    )
    out = tmp_path / "out.luks"
    with pytest.raises(ImageError) as err:
        encrypt_image(overlay, out, key, iter_time_ms=FAST)
    assert err.value.code == "qemu-img-failed"
    assert "gone.raw" in err.value.message
    assert not out.exists()
    assert partials(tmp_path) == []


def test_a_failing_window_stops_them_all_and_leaves_nothing(key, tmp_path):
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", str(tmp_path / "gone.raw"), "-F", "raw",
         str(overlay), "256M"],
        check=True,
    )  # fmt: skip
    with pytest.raises(ImageError) as err:
        encrypt_image(overlay, tmp_path / "out.luks", key, iter_time_ms=FAST, jobs=4)
    assert err.value.code == "qemu-img-failed" and "gone.raw" in err.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.qcow2"]
    assert children_named(os.getpid(), "qemu-img") == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB file system (tmpfs: needs root, as the suite does), too small for the 8 MiB test image."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (run the tests as root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.mark.parametrize(
    ("fmt", "code"), [(EncryptedFormat.LUKS, "no-space"), (EncryptedFormat.QCOW2, "qemu-img-failed")]
)
def test_a_full_disk_fails_cleanly(raw_image, key, tiny_disk, fmt, code):
    """LUKS1 volumes are allocated before encrypting, so a small disk fails at once; qcow2 fails midway."""
    with pytest.raises(ImageError) as err:
        encrypt_image(raw_image, tiny_disk / "out", key, format=fmt, iter_time_ms=FAST)
    assert err.value.code == code
    if fmt is EncryptedFormat.QCOW2:
        assert "No space left on device" in err.value.message
    assert list(tiny_disk.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_encryption_leaves_no_output_and_no_child(raw_image, key_file, tmp_path, signum):
    """Ctrl-C or kill while qemu-img runs (qcow2: its LUKS calibration alone takes seconds)."""
    out = tmp_path / "out.qcow2"
    proc = subprocess.Popen(
        [
            SECL_WPM,
            "encrypt-image",
            str(raw_image),
            str(out),
            "--key-file",
            str(key_file),
            "--format",
            "qcow2",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (partials(tmp_path) and children_named(proc.pid, "qemu-img")) and time.monotonic() < deadline:
        time.sleep(0.02)
    qemu_img = children_named(proc.pid, "qemu-img")
    assert partials(tmp_path) and qemu_img, "the encryption never started"
    proc.send_signal(signum)  # to secl-wpm alone: it must stop qemu-img itself
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "secl-wpm: interrupted; nothing was written"
    assert list(tmp_path.iterdir()) == []
    assert not Path(f"/proc/{qemu_img[0]}").exists()


def test_existing_output_is_kept_unless_forced(raw_image, key, tmp_path):
    out = tmp_path / "out.luks"
    out.write_bytes(b"precious")
    with pytest.raises(ImageError) as err:
        encrypt_image(raw_image, out, key, iter_time_ms=FAST)
    assert err.value.code == "output-exists"
    assert out.read_bytes() == b"precious"
    encrypt_image(raw_image, out, key, iter_time_ms=FAST, overwrite=True)
    assert cryptsetup("isLuks", "--type", "luks1", out).returncode == 0


def luks_volume(path: Path, version: int, passphrase_file: Path) -> Path:
    path.write_bytes(bytes(20 * MIB))
    formatted = cryptsetup(
        "luksFormat", "--batch-mode", "--disable-locks", "--type", f"luks{version}", "--pbkdf", "pbkdf2",
        "--pbkdf-force-iterations", "1000", "--key-file", passphrase_file, path,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stderr
    return path


def test_inputs_we_do_not_encrypt_are_refused(key, tmp_path, passphrase_file):
    vmdk = tmp_path / "input.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "1M"], check=True)
    luks1 = luks_volume(tmp_path / "input.luks1", 1, passphrase_file)
    luks2 = luks_volume(tmp_path / "input.luks2", 2, passphrase_file)  # QEMU 7.2 probes this as raw
    for source, code in (
        (vmdk, "unsupported-format"),
        (luks1, "already-encrypted"),
        (luks2, "already-encrypted"),
    ):
        with pytest.raises(ImageError) as err:
            encrypt_image(source, tmp_path / "out", key, iter_time_ms=FAST)
        assert err.value.code == code, source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.luks1", "input.luks2", "input.vmdk"]


def test_a_luks2_volume_is_named_as_such(key, tmp_path, passphrase_file):
    volume = luks_volume(tmp_path / "v.img", 2, passphrase_file)
    with pytest.raises(ImageError) as err:
        decrypt_image(volume, tmp_path / "out", key)
    assert err.value.code == "unsupported-encryption"
    assert err.value.message == f"{volume}: a LUKS2 volume; QEMU 7.2 opens LUKS1 only, and so does secl-wpm"


def test_a_raw_disk_named_raw_is_not_probed(key, tmp_path, passphrase_file):
    """A raw disk whose first sector is a qcow2 header is encrypted as the raw bytes it is with --in-format raw."""
    disguised = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disguised), "1G"], check=True)
    with disguised.open("r+b") as f:
        f.truncate(MIB)
    image = encrypt_image(
        disguised, tmp_path / "out.luks", key, source_format=PlainFormat.RAW, iter_time_ms=FAST
    )
    assert image.virtual_size == MIB
    assert qemu_read(image.path, "luks", passphrase_file, tmp_path / "back.raw") == disguised.read_bytes()


# --- where the key goes (and does not) -----------------------------------------------------------------


def children_named(parent: int, name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == parent and comm == name:
            found.append(int(entry.name))
    return found


class ChildWatcher(threading.Thread):
    """Samples the command line, environment and descriptors of this process's children while they run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.seen: dict[int, dict[str, object]] = {}

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            for comm in ("qemu-img", "cryptsetup"):
                for pid in children_named(me, comm):
                    if pid in self.seen:
                        continue
                    try:
                        proc = Path(f"/proc/{pid}")
                        fds = {fd.name: os.readlink(fd) for fd in (proc / "fd").iterdir()}
                        self.seen[pid] = {
                            "comm": comm,
                            "cmdline": (proc / "cmdline").read_bytes(),
                            "environ": (proc / "environ").read_bytes(),
                            "fds": fds,
                        }
                    except OSError:
                        pass
            time.sleep(0.001)


@pytest.mark.parametrize("fmt", list(EncryptedFormat))
def test_the_passphrase_is_never_on_a_command_line_or_in_an_environment(key, tmp_path, fmt):
    source = tmp_path / "big.raw"
    with source.open("wb") as f:
        f.truncate(128 * MIB)  # zeros still cost qemu-img a second of encryption: time to watch it
    watcher = ChildWatcher()
    watcher.start()
    try:
        encrypt_image(source, tmp_path / "out", key, format=fmt, iter_time_ms=FAST)
    finally:
        watcher.stop.set()
        watcher.join()
    seen = [s for s in watcher.seen.values() if s["comm"] == "qemu-img" and b"convert" in s["cmdline"]]
    assert seen, "never saw qemu-img convert running"
    raw = base64.b64decode(key.passphrase)
    for sample in watcher.seen.values():
        for secret in (key.passphrase, raw, raw.hex().encode(), base64.b64encode(key.passphrase)):
            assert secret not in sample["cmdline"]
            assert secret not in sample["environ"]
    # The secret object points at an inherited descriptor, and that descriptor is a memfd, not a file.
    cmdline = seen[0]["cmdline"].split(b"\0")
    secret_arg = next(a for a in cmdline if a.startswith(b"secret,"))
    fd = secret_arg.rsplit(b"/", 1)[1].decode()
    assert secret_arg == f"secret,id=sec0,file=/proc/self/fd/{fd}".encode()
    assert seen[0]["fds"][fd] == "/memfd:secl-wpm-passphrase (deleted)"


def test_the_argv_built_for_qemu_img_holds_no_secret(key):
    with key.passphrase_fd() as fd:
        argv = qemuimg.convert_argv(
            ["--image-opts", "driver=raw,file.filename=/x"], secret_fd=fd, progress=True
        )
        assert os.pread(fd, 100, 0) == key.passphrase  # the memfd holds exactly the passphrase
    joined = "\0".join(argv).encode()
    assert key.passphrase not in joined and b"data=" not in joined
    assert argv[1:5] == ["convert", "-p", "--object", f"secret,id=sec0,file=/proc/self/fd/{fd}"]
    assert repr(key) == str(key) == "ImageKey(<redacted>)"


def test_no_key_in_logs_or_output_and_no_key_file_anywhere(  # noqa: PLR0917 (pytest fixtures)
    raw_image, key, key_file, tmp_path, caplog, monkeypatch
):
    """Verbose logs show every command run, and none of them the key; no temporary file is made for it."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    caplog.set_level("DEBUG")
    caplog.set_level("DEBUG", logger="secl")  # another test's central may have set secl's level
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    runner = CliRunner()
    encrypted = runner.invoke(
        cli, ["-v", "encrypt-image", str(raw_image), str(out_dir / "disk.luks"), "--key-file", str(key_file),
              "--iter-time", str(FAST)],
    )  # fmt: skip
    assert encrypted.exit_code == 0, encrypted.output
    decrypted = runner.invoke(
        cli, ["-v", "decrypt-image", str(out_dir / "disk.luks"), str(out_dir / "disk.raw"), "--key-file", str(key_file)]
    )  # fmt: skip
    assert decrypted.exit_code == 0, decrypted.output
    logged = caplog.text + encrypted.output + decrypted.output
    assert "running /usr/bin/qemu-img convert --object secret,id=sec0,file=/proc/self/fd/" in logged
    assert "luksFormat" in logged
    raw = base64.b64decode(key.passphrase)
    for secret in (key.passphrase.decode(), raw.hex(), base64.b64encode(key.passphrase).decode()):
        assert secret not in logged
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in out_dir.iterdir()) == ["disk.luks", "disk.raw"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_are_private_to_their_owner(raw_image, key, tmp_path, umask):
    old = os.umask(umask)
    try:
        enc = encrypt_image(raw_image, tmp_path / "disk.luks", key, iter_time_ms=FAST)
        dec = decrypt_image(enc.path, tmp_path / "disk.raw", key)
    finally:
        os.umask(old)
    for path in (enc.path, dec.path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 & ~umask


# --- keys ----------------------------------------------------------------------------------------------


def test_key_from_a_descriptor_and_in_base64(tmp_path, key):
    read, write = os.pipe()
    os.write(write, base64.b64decode(key.passphrase))
    os.close(write)
    assert acquire_key(KeySource(key_fd=read)) == key
    text = tmp_path / "key.b64"
    text.write_bytes(key.passphrase + b"\n")
    assert acquire_key(KeySource(key_file=text)) == key


def test_key_fd_through_the_command_line(raw_image, key, tmp_path, passphrase_file):
    out = tmp_path / "disk.luks"
    read, write = os.pipe()
    os.write(write, key.passphrase)  # base64 through a pipe, as another program would hand it over
    os.close(write)
    result = subprocess.run(
        [
            SECL_WPM,
            "encrypt-image",
            str(raw_image),
            str(out),
            "--key-fd",
            str(read),
            "--iter-time",
            str(FAST),
        ],
        pass_fds=(read,),
        capture_output=True,
        text=True,
        check=False,
    )
    os.close(read)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar
    assert (
        cryptsetup(
            "open", "--test-passphrase", "--disable-locks", "--key-file", passphrase_file, out
        ).returncode
        == 0
    )


@pytest.mark.parametrize("content", [os.urandom(31), os.urandom(33), b"not base64 at all", b""])
def test_a_malformed_key_is_one_clear_line(raw_image, tmp_path, content):
    bad = tmp_path / "bad.key"
    bad.write_bytes(content)
    result = CliRunner().invoke(
        cli, ["encrypt-image", str(raw_image), str(tmp_path / "out"), "--key-file", str(bad)]
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"secl-wpm: error: key file {bad}: not an AES-256 key (expected 32 raw bytes or their base64)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.key"]


def test_the_key_options_are_exclusive(raw_image, key_file, tmp_path):
    none = CliRunner().invoke(cli, ["encrypt-image", str(raw_image), str(tmp_path / "o")])
    both = CliRunner().invoke(
        cli,
        ["encrypt-image", str(raw_image), str(tmp_path / "o"), "--key-file", str(key_file), "--key-fd", "0"],
    )
    for result in (none, both):
        assert result.exit_code == 2
        assert "exactly one of --key-file, --key-fd and --central" in result.stderr


# --- tools, progress, help -----------------------------------------------------------------------------


def test_a_missing_tool_names_its_debian_package(raw_image, key_file, tmp_path):
    result = subprocess.run(
        [SECL_WPM, "encrypt-image", str(raw_image), str(tmp_path / "o"), "--key-file", str(key_file)],
        env={"PATH": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert (
        result.stderr == "secl-wpm: error: qemu-img is not installed: install the Debian package qemu-utils\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_on_a_terminal_only(raw_image, key_file, tmp_path):
    primary, secondary = pty.openpty()
    out = tmp_path / "disk.luks"
    proc = subprocess.Popen(
        [
            SECL_WPM,
            "encrypt-image",
            str(raw_image),
            str(out),
            "--key-file",
            str(key_file),
            "--iter-time",
            str(FAST),
        ],
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    terminal = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        terminal += chunk
    stdout = proc.communicate(timeout=30)[0]
    os.close(primary)
    assert proc.returncode == 0
    text = terminal.decode()
    assert "\rencrypting [" in text and "100%" in text and "8/8 MiB" in text
    assert "\rdigest [" in text
    assert stdout.decode().startswith(f"{out}: LUKS1 volume, 8388608 bytes of disk, sha256 ")


def test_help_explains_formats_and_passphrase():
    top = CliRunner().invoke(cli, ["--help"]).output
    assert "base64 of the 32-byte key" in top
    enc = CliRunner().invoke(cli, ["encrypt-image", "--help"]).output
    for text in (
        "--key-file",
        "--key-fd",
        "--format",
        "LUKS1 volume",
        "--iter-time",
        "--flavor-out",
        "--key-url",
    ):
        assert text in enc
    dec = CliRunner().invoke(cli, ["decrypt-image", "--help"]).output
    assert "wrong key fails" in dec.replace("\n", " ").replace("  ", " ")


# --- the image flavor ----------------------------------------------------------------------------------


def test_encrypt_writes_secl_image_flavor(raw_image, key_file, tmp_path):
    out = tmp_path / "disk.luks"
    flavor_file = tmp_path / "flavor.json"
    url = "https://central.example:8443/kbs/v1/keys/8c3f5e2a-0b1d-4b55-9f7e-1d8a2b3c4d5e/transfer"
    result = CliRunner().invoke(
        cli,
        [
            "encrypt-image",
            str(raw_image),
            str(out),
            "--key-file",
            str(key_file),
            "--iter-time",
            str(FAST),
            "--key-url",
            url,
            "--label",
            "cirros-enc",
            "--flavor-out",
            str(flavor_file),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(flavor_file.read_text())
    flavor = doc["flavor"]
    # SecL v4's ImageFlavor: {"flavor": {meta, encryption_required, encryption, integrity_enforced}}
    assert list(doc) == ["flavor"]
    assert list(flavor) == ["meta", "encryption_required", "encryption", "integrity_enforced"]
    assert list(flavor["meta"]) == ["id", "description"]
    uuid.UUID(flavor["meta"]["id"])
    assert flavor["meta"]["description"] == {"flavor_part": "IMAGE", "label": "cirros-enc"}
    assert flavor["encryption_required"] is True and flavor["integrity_enforced"] is False
    assert flavor["encryption"] == {
        "key_url": url,
        "digest": base64.b64encode(hashlib.sha256(out.read_bytes()).digest()).decode(),
    }


def test_image_flavor_matches_secl_sample_shape():
    """The field names and nesting of SecL's workload-service test flavor (its IMAGE example)."""
    secl_sample = {
        "flavor": {
            "meta": {
                "id": "d6129610-4c8f-4ac4-8823-df4e925688c3",
                "description": {"flavor_part": "IMAGE", "label": "label_image-test-3"},
            },
            "encryption_required": True,
            "encryption": {
                "key_url": "https://kbs.server.com:443/v1/keys/60a9fe49-612f-4b66-bf86-b75c7873f3b3/transfer",
                "digest": "3JiqO+O4JaL2qQxpzRhTHrsFpDGIUDV8fTWsXnjHVKY=",
            },
            "integrity_enforced": False,
        }
    }
    ours = image_flavor(
        label="label_image-test-3",
        key_url=secl_sample["flavor"]["encryption"]["key_url"],
        digest=secl_sample["flavor"]["encryption"]["digest"],
        flavor_id=uuid.UUID("d6129610-4c8f-4ac4-8823-df4e925688c3"),
    )
    assert json.dumps(ours) == json.dumps(secl_sample)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flavor-out", "f.json"], "add --key-url"),
        (["--key-url", "https://k/x"], "add --flavor-out"),
        (["--key-url", "kbs/keys/1", "--flavor-out", "f.json"], "not an absolute http(s) URL"),
    ],
)
def test_flavor_options_are_checked_before_any_work(raw_image, key_file, tmp_path, args, message):
    result = CliRunner().invoke(
        cli, ["encrypt-image", str(raw_image), str(tmp_path / "o"), "--key-file", str(key_file), *args]
    )
    assert result.exit_code in {1, 2}
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_secl_wpm_pulls_in_no_central_no_daemon_no_flask():
    """An image owner installs only the core distribution: the command must not even import the rest."""
    code = (
        "import sys, secl.wpm.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy', 'libvirt'}\n"
        "             or (m + '.').startswith(('secl.central.', 'secl.trustagent.', 'secl.workloadagent.', 'secl.hooks.')))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

"""The dracut module 90secl-measure: a real ``dracut`` builds an initramfs with it, and the hook runs the
initramfs's own secl-measure against a mounted root, extending a real swtpm's PCR 15.

Nothing touches /boot or this machine's initramfs: dracut writes into a temporary file, with
``--no-kernel --no-hostonly``, a private configuration, and a private copy of dracut's module tree
(``dracutbasedir``, symlinks to /usr/lib/dracut plus our module) so the module need not be installed
system-wide. The image is unpacked into a temporary directory, a tree standing for the real root is put at
its ``/sysroot``, and the hook is run inside that directory with ``chroot``: only the initramfs's files
(its interpreter, stdlib, secl and tpm2-pytss, libtss2) are there, so the measuring code provably comes from
the initramfs, not from the root being measured.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from secl.core.appeventlog import parse_event_log, replay
from secl.core.hashalg import HashAlg
from secl.core.measurementlog import parse_measurement_xml
from secl.core.pcrevents import PcrRef
from secl.host.tpm import TPMAdapter
from tests.swtpm import RunningSwtpm

pytestmark = pytest.mark.swtpm

MODULE = Path(__file__).resolve().parent.parent / "daemons/trustagent/dracut/90secl-measure"
SECL_MEASURE = Path(sys.executable).with_name("secl-measure")
HOOK = "usr/lib/dracut/hooks/pre-pivot/50-secl-measure-hook.sh"
UUID_A = "834076cd-f733-4cca-a417-113fac90adc7"
UUID_B = "7a9ac586-40f9-43b2-976b-26667431efca"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install dracut-core cpio (scripts/setup.sh does)")
    return path


@pytest.fixture(scope="module")
def initramfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An initramfs built by dracut with only bash and secl-measure, unpacked; yields the unpacked root."""
    dracut, cpio = _tool("dracut"), _tool("cpio")
    work = tmp_path_factory.mktemp("dracut")
    base = work / "dracut-base"
    shutil.copytree("/usr/lib/dracut", base, symlinks=True, copy_function=os.symlink)
    (base / "modules.d/90secl-measure").symlink_to(MODULE)
    (work / "conf.d").mkdir()
    conf = work / "dracut.conf"
    conf.write_text(f"secl_measure_command={SECL_MEASURE}\n")
    image = work / "initrd.img"
    built = subprocess.run(
        [dracut, "--no-kernel", "--no-hostonly", "--no-hostonly-cmdline", "--no-early-microcode",
         "--kver", os.uname().release, "--conf", str(conf), "--confdir", str(work / "conf.d"),
         "--tmpdir", str(work), "-m", "bash secl-measure", "--no-compress", "--force", str(image)],
        env={**os.environ, "dracutbasedir": str(base)}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0 and image.is_file(), built.stdout + built.stderr
    listing = subprocess.run(
        [_tool("lsinitrd"), str(image)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert HOOK in listing and "etc/secl-measure.conf" in listing, listing[-3000:]
    root = work / "root"
    root.mkdir()
    with image.open("rb") as stream:
        subprocess.run([cpio, "-idmu", "--quiet"], stdin=stream, cwd=root, timeout=120, check=True)
    yield root


def test_image_holds_the_module_and_what_it_runs(initramfs: Path) -> None:
    hook = initramfs / HOOK
    assert hook.read_text() == (MODULE / "secl-measure-hook.sh").read_text() and os.access(hook, os.X_OK)
    conf = (initramfs / "etc/secl-measure.conf").read_text()
    assert f"secl_conf_measure={SECL_MEASURE}" in conf
    assert "secl_conf_manifest_dir=/var/lib/secl/trustagent/manifests" in conf
    assert "secl_conf_tcti=device:/dev/tpmrm0" in conf
    # The command, its interpreter and the TSS it loads are the initramfs's own.
    assert (initramfs / str(SECL_MEASURE).lstrip("/")).is_file()
    assert (initramfs / str(Path(os.__file__).resolve()).lstrip("/")).is_file()
    tctis = [p.name for p in initramfs.glob("usr/lib/*/libtss2-tcti-device.so*")]
    assert tctis, "libtss2-tcti-device is missing from the initramfs"


def test_the_file_list_holds_every_package_secl_measure_imports() -> None:
    # Without dracut: the list module-setup.sh installs must carry secl-measure's own packages (the trust
    # agent's command, secl.host's engine and TPM adapter, secl.core) and its third-party imports.
    command = [sys.executable, "-m", "secl.trustagent.initrdfiles"]
    listed = subprocess.run(command, capture_output=True, timeout=120, check=True).stdout.decode().split("\0")
    for module in ("secl.trustagent.measure_cli", "secl.host.measure", "secl.host.tpm", "secl.core.appmanifest",
                   "click", "tpm2_pytss", "cryptography", "defusedxml"):  # fmt: skip
        file = importlib.import_module(module).__file__
        assert file is not None and str(Path(file).resolve()) in listed, module


def _chroot(initramfs: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(initramfs), *args],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def _manifest(directory: Path, uuid: str, label: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"manifest_{uuid}.xml").write_text(
        f'<Manifest xmlns="lib:wml:manifests:1.0" Label="{label}" Uuid="{uuid}" DigestAlg="SHA384">'
        f"{body}</Manifest>"
    )


@pytest.fixture
def sysroot(initramfs: Path) -> Iterator[Path]:
    """The real root, as the initramfs sees it mounted at /sysroot; /run of the initramfs emptied."""
    root = initramfs / "sysroot"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(initramfs / "run/secl", ignore_errors=True)
    (root / "opt/app/bin").mkdir(parents=True)
    (root / "opt/app/bin/app").write_bytes(b"application")
    (root / "opt/app/bin/tool.sh").write_bytes(b"#!/bin/sh\n")
    manifests = root / "var/lib/secl/trustagent/manifests"
    _manifest(manifests, UUID_A, "app", '<Dir Path="/opt/app/bin" Include=".*" Exclude=""/>'
              '<File Path="/opt/app/bin/.*" SearchType="regex"/>')  # fmt: skip
    _manifest(manifests, UUID_B, "gone", '<File Path="/opt/gone/file"/><File Path="/opt/app/bin/app"/>')
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_hook_measures_the_mounted_root_into_pcr15(
    initramfs: Path, sysroot: Path, swtpm: RunningSwtpm
) -> None:
    env = {"NEWROOT": "/sysroot", "SECL_TCTI": swtpm.tcti}
    ran = _chroot(initramfs, "/bin/sh", f"/{HOOK}", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = initramfs / "run/secl"
    assert (run / "measure.err").read_text().count("warning") == 1, (run / "measure.err").read_text()
    assert "/opt/gone/file does not exist" in (run / "measure.err").read_text()
    logs = {p.name: parse_measurement_xml(p.read_text()) for p in (run / "measurements").iterdir()}
    assert set(logs) == {f"measurement_{UUID_A}.xml", f"measurement_{UUID_B}.xml"}
    app = logs[f"measurement_{UUID_A}.xml"]
    assert [e.path for e in app.entries] == ["/opt/app/bin", "/opt/app/bin/app", "/opt/app/bin/tool.sh"]
    assert (
        dict((e.path, e.digest) for e in app.entries)["/opt/app/bin/app"]
        == hashlib.sha384(b"application").hexdigest()
    )
    # Missing files are left out (the verifier names them), as SecL's initrd tool does.
    assert [e.path for e in logs[f"measurement_{UUID_B}.xml"].entries] == ["/opt/app/bin/app"]
    # PCR 15 of the swtpm holds exactly the logged events, in the manifests' file name order.
    events = parse_event_log((run / "measure-log.json").read_bytes())
    ((entry, tags),) = [(e, [t for ev in e.events for t in ev.tags]) for e in events]
    assert tags == [f"gone-{UUID_B}", f"app-{UUID_A}"]
    with TPMAdapter(swtpm.tcti) as tpm:
        pcr15 = tpm.read_pcrs({HashAlg.SHA256: [15]})[HashAlg.SHA256][15]
    assert replay(events)[PcrRef(15, "SHA256")] == pcr15
    assert entry.events[1].measurement == hashlib.sha256(bytes.fromhex(app.cumulative_hash)).hexdigest()
    # Once per boot: running pre-pivot again measures nothing more.
    again = _chroot(initramfs, "/bin/sh", f"/{HOOK}", env=env)
    assert again.returncode == 0
    with TPMAdapter(swtpm.tcti) as tpm:
        assert tpm.read_pcrs({HashAlg.SHA256: [15]})[HashAlg.SHA256][15] == pcr15
    assert json.loads((run / "measure-log.json").read_text())[0]["tpm_events"].__len__() == 2


def test_hook_never_stops_the_boot(initramfs: Path, sysroot: Path) -> None:
    # No TPM reachable: the measurement fails, the hook says why and returns 0 (switch-root goes on).
    ran = _chroot(
        initramfs,
        "/bin/sh",
        f"/{HOOK}",
        env={"NEWROOT": "/sysroot", "SECL_TCTI": "swtpm:host=127.0.0.1,port=1"},
    )
    assert ran.returncode == 0, ran.stderr
    assert "secl-measure: failed with status 4" in ran.stderr, ran.stderr
    assert "cannot open the TPM" in (initramfs / "run/secl/measure.err").read_text()

"""``secl-measure``: measure files named by SecL manifests, extend PCR 15 and log the event.

Run at boot from the initrd against the real root before switch-root (the dracut module), or by hand.
For each manifest: parse it, measure the tree under ``--root``, write the Measurement XML, extend PCR 15
(SHA-256 bank) with SHA-256 of the CumulativeHash and append the event to the application event log the
trust agent serves. ``--no-extend`` only measures and writes the XML.

Exit status: 0 every manifest was measured (and recorded); 2 the command line is wrong; 3 a manifest or
a path it names could not be read or is refused; 4 the TPM or the event log could not be used. With
several manifests each failure is one stderr line and the others are still measured.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from secl.core.appmanifest import MAX_MANIFEST_BYTES, Manifest, ManifestError, parse_manifest
from secl.core.measurementlog import MeasurementLogError, render_measurement_xml
from secl.host.measure import MeasureError, MeasureResult, measure
from secl.host.measurelog import MeasurementStoreError, measurement_path, record, write_measurement
from secl.host.tpm import TPMAdapter, TPMError
from secl.trustagent.config import ConfigError, TrustAgentConfig, load_config

PROG = "secl-measure"
EXIT_INPUT = 3
EXIT_TPM = 4


class _Failed(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Target:
    """One manifest and where its Measurement XML goes: a file, a directory (which gets
    ``measurement_<uuid>.xml``, SecL's name), or stdout (``output`` None)."""

    manifest: Path
    output: Path | None
    into_directory: bool = False

    def destination(self, uuid: str) -> Path | None:
        if self.output is not None and self.into_directory:
            return measurement_path(self.output, uuid)
        return self.output


def _error(message: str) -> None:
    click.echo(f"{PROG}: error: {message}", err=True)


def _read_manifest(path: Path) -> Manifest:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise _Failed(f"{path}: cannot read: {exc.strerror or exc}", EXIT_INPUT) from None
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        raise _Failed(f"{path}: [{exc.code}] {exc}", EXIT_INPUT) from None
    if not manifest.uuid:
        raise _Failed(
            f"{path}: [manifest-uuid-missing] the Manifest has no Uuid; the PCR 15 event tag and the "
            "measurement file name need one",
            EXIT_INPUT,
        )
    return manifest


class _Progress:
    """A one-line, self-overwriting progress report on stderr, at most five times a second."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = 0.0

    def __call__(self, files: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.last = now
            click.echo(f"\r{self.label}: {files} files, {total / 1e6:.1f} MB", err=True, nl=False)

    def done(self) -> None:
        if self.last:
            click.echo("\r\033[K", err=True, nl=False)


def _measure_one(
    target: _Target,
    root: Path,
    *,
    tpm: TPMAdapter | None,
    event_log: Path,
    skip_missing: bool,
    workers: int | None,
) -> str:
    manifest = _read_manifest(target.manifest)
    progress = _Progress(manifest.label) if sys.stderr.isatty() else None
    try:
        result: MeasureResult = measure(
            manifest, root, workers=workers, skip_missing=skip_missing, progress=progress
        )
        xml = render_measurement_xml(result.log)
    except (MeasureError, MeasurementLogError) as exc:
        raise _Failed(f"{target.manifest}: [{exc.code}] {exc}", EXIT_INPUT) from None
    finally:
        if progress is not None:
            progress.done()
    for path in result.skipped:
        click.echo(f"{PROG}: warning: {target.manifest}: {path} does not exist; left out", err=True)
    output = target.destination(manifest.uuid)
    if output is None:
        click.echo(xml)
    else:
        try:
            write_measurement(output, xml)
        except MeasurementStoreError as exc:
            raise _Failed(str(exc), EXIT_INPUT) from None
    summary = (
        f"{manifest.event_tag}: {len(result.log.entries)} entries, {result.files} files "
        f"({result.bytes / 1e6:.1f} MB), cumulative {result.log.cumulative_hash[:16]}…"
    )
    if tpm is not None:
        try:
            event = record(tpm, result.log, event_log)
        except TPMError as exc:
            raise _Failed(
                f"{target.manifest}: extending PCR 15 failed [{exc.code}]: {exc}", EXIT_TPM
            ) from None
        except MeasurementStoreError as exc:
            raise _Failed(f"{target.manifest}: PCR 15 extended but not logged: {exc}", EXIT_TPM) from None
        summary += f"; PCR 15 (SHA256) extended with {event.measurement[:16]}…, logged in {event_log}"
    if output is not None:
        summary += f"; {output}"
    return summary


def _targets(
    manifest: Path | None, manifest_dir: Path | None, output: str | None, config: TrustAgentConfig
) -> list[_Target]:
    if (manifest is None) == (manifest_dir is None):
        raise click.UsageError("give exactly one of --manifest FILE or --manifest-dir DIR")
    if manifest_dir is not None:
        if output == "-":
            raise click.UsageError("--output - (stdout) takes a single --manifest")
        try:
            files = sorted(p for p in manifest_dir.iterdir() if p.suffix == ".xml" and p.is_file())
        except OSError as exc:
            raise _Failed(f"{manifest_dir}: cannot list: {exc.strerror or exc}", EXIT_INPUT) from None
        if not files:
            raise _Failed(f"{manifest_dir}: no *.xml manifests", EXIT_INPUT)
        return [_Target(f, Path(output) if output else config.measurement_dir, True) for f in files]
    assert manifest is not None
    if output == "-":
        return [_Target(manifest, None)]
    if output is None:
        return [_Target(manifest, config.measurement_dir, True)]
    return [_Target(manifest, Path(output), Path(output).is_dir())]


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=(
        "Examples:\n\n"
        "\b\n"
        "  # at boot, from the initrd, every deployed manifest against the real root:\n"
        "  secl-measure --manifest-dir /sysroot/var/lib/secl/trustagent/manifests --root /sysroot\n"
        "\b\n"
        "  # what a manifest measures on this host now, without touching the TPM:\n"
        "  secl-measure --manifest app.xml --root / --output - --no-extend\n"
        "\n"
        "Exit status: 0 measured (and recorded); 2 bad command line; 3 a manifest or a path it names could "
        "not be read or was refused (missing file, unreadable file, path escaping the root, symlink loop, "
        "DTD or entities in the XML); 4 the TPM or the event log could not be used."
    ),
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="One SecL Manifest XML (lib:wml:manifests:1.0).",
)
@click.option(
    "--manifest-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Measure every *.xml manifest in DIR, in name order (each extends PCR 15 once).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="The file system the manifest paths are resolved in; links are followed only inside it.",
)
@click.option(
    "--output",
    default=None,
    help="Where the Measurement XML goes: a FILE (with --manifest), an existing DIR (gets measurement_<uuid>.xml), or - for stdout. Default: measurement_dir from the trust agent configuration (/run/secl/measurements).",
)
@click.option(
    "--event-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The application event log to append to (SecL measure-log JSON). Default: application_event_log from the configuration (/run/secl/measure-log.json).",
)
@click.option(
    "--tcti",
    default=None,
    help="TPM to extend PCR 15 in, as a TCTI string. Default: tcti from the configuration (auto: the /dev/tpmrmN udev lists).",
)
@click.option("--no-extend", is_flag=True, help="Only measure and write the XML: no PCR 15 extend, no event.")
@click.option(
    "--skip-missing",
    is_flag=True,
    help="Leave out (with a warning) literal paths that do not exist, as SecL's tool does, so the verifier names them; default: refuse.",
)
@click.option(
    "--workers", type=click.IntRange(1, 256), default=None, help="Hashing threads (default: one per CPU)."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Trust agent configuration (default: /etc/secl/trustagent.toml or $SECL_TRUSTAGENT_CONFIG).",
)
def cli(
    *,
    manifest: Path | None,
    manifest_dir: Path | None,
    root: Path,
    output: str | None,
    event_log: Path | None,
    tcti: str | None,
    no_extend: bool,
    skip_missing: bool,
    workers: int | None,
    config_path: Path | None,
) -> None:  # fmt: skip
    """Measure the files and directories SecL manifests name, extend PCR 15 and log the event.

    For each manifest: every File is hashed (content), every Dir hashed as the sorted list of its
    selected entry names, every Symlink as its path and target; the digests chain into the
    CumulativeHash (DigestAlg SHA384 or SHA256). The Measurement XML is written in SecL's format;
    then PCR 15 of the SHA-256 bank is extended with SHA-256(CumulativeHash), and the event
    (0x90000001 APPLICATION_AGENT_MEASUREMENT, tag <Label>-<Uuid>) is appended to the event log
    the trust agent serves.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        targets = _targets(manifest, manifest_dir, output, config)
        tpm = None if no_extend else _open_tpm(tcti or config.tcti)
    except _Failed as exc:
        _error(str(exc))
        sys.exit(exc.status)
    statuses = []
    try:
        for target in targets:
            try:
                summary = _measure_one(
                    target, root, tpm=tpm, event_log=event_log or config.application_event_log,
                    skip_missing=skip_missing, workers=workers,
                )  # fmt: skip
            except _Failed as exc:
                _error(str(exc))
                statuses.append(exc.status)
                continue
            if target.output is not None:
                click.echo(summary)
    finally:
        if tpm is not None:
            tpm.close()
    if statuses:
        sys.exit(max(statuses))


def _open_tpm(tcti: str) -> TPMAdapter:
    try:
        return TPMAdapter(tcti)
    except TPMError as exc:
        raise _Failed(f"cannot open the TPM through {tcti!r} [{exc.code}]: {exc}", EXIT_TPM) from None


def main() -> None:
    # tpm2-tss logs its own warnings to stderr (a refused connection is five lines); our error line says
    # what failed. TSS2_LOG=all+WARNING (or more) in the environment brings them back for debugging.
    os.environ.setdefault("TSS2_LOG", "all+NONE")
    cli(prog_name=PROG)


if __name__ == "__main__":
    main()

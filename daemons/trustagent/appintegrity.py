"""The trust agent's side of application integrity: the manifest directory, measuring on request, and the
measurements a quote carries.

- **Manifest directory** (setting ``manifest_dir``): the SecL Manifest XMLs the initrd measures at every
  boot (the dracut module runs ``secl-measure --manifest-dir`` on it in the real root). Each is stored as
  ``manifest_<Uuid>.xml``, mode 0640. Two kinds live there: the *default* manifests that ``setup``
  installs (SecL's reserved labels ``ISecL_Default_*``: the secl agents' own files, rendered from package
  data with this host's install paths and a Uuid of its own), and those the central deploys
  (``POST /v2/deploy/manifest``). A deployed manifest may not carry a reserved label, nor the Uuid (hence
  the file name) of a default manifest: it would replace what the installation measures.
- **Measuring now** (``POST /v2/host/application-measurement``): a posted manifest measured against
  ``measurement_root`` (``/``), without touching PCR 15: the central makes a SOFTWARE flavor of it.
- **Quote evidence**: the Measurement XMLs of this boot (``measurement_dir``) and the PCR 15 events
  (``application_event_log``), read as they are; the verifier ties them to the quoted PCR 15.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
import sysconfig
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import secl.core
import secl.host
import secl.trustagent
from secl import __version__
from secl.core.appmanifest import MAX_MANIFEST_BYTES, Manifest, ManifestError, parse_manifest
from secl.core.measurementlog import MeasurementLogError, render_measurement_xml
from secl.core.softwareflavor import is_default_software_label
from secl.host.measure import MeasureError, measure
from secl.host.measurelog import (
    MeasurementStoreError,
    read_app_event_log,
    read_measurements,
    write_measurement,
)
from secl.trustagent.errors import AgentAPIError

__all__ = [
    "DEFAULT_MANIFESTS",
    "ApplicationIntegrityError",
    "QuoteMeasurements",
    "deploy_manifest",
    "install_default_manifests",
    "manifest_file",
    "measure_now",
    "quote_measurements",
    "render_default_manifest",
]

#: Package data (``secl.trustagent/manifests``): the default manifests setup installs.
DEFAULT_MANIFESTS = ("secl-trustagent.xml",)
FILE_MODE = 0o640
DIRECTORY_MODE = 0o750


class ApplicationIntegrityError(AgentAPIError):
    """A manifest is refused or cannot be stored or measured; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(status, code, message)


def manifest_file(directory: Path, manifest_uuid: str) -> Path:
    return directory / f"manifest_{manifest_uuid}.xml"


def _parse(data: bytes) -> Manifest:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ApplicationIntegrityError(
            f"the manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}", code="manifest-too-large"
        )
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        raise ApplicationIntegrityError(str(exc), code=exc.code) from None


def _stored_manifests(directory: Path) -> dict[Path, Manifest | None]:
    """The manifests in ``directory`` (None: a file that no longer parses); none if it does not exist."""
    try:
        paths = sorted(p for p in directory.glob("*.xml") if p.is_file())
    except OSError:
        return {}
    found: dict[Path, Manifest | None] = {}
    for path in paths:
        try:
            found[path] = parse_manifest(path.read_bytes())
        except (OSError, ManifestError):
            found[path] = None
    return found


def deploy_manifest(directory: Path, data: bytes) -> Manifest:
    """Validate and store a manifest for the next boot, as ``manifest_<Uuid>.xml`` (0640, atomic).

    Raises :class:`ApplicationIntegrityError`: 400 for a manifest that does not parse, has no Uuid or
    carries a reserved default label; 409 when its Uuid is a default manifest's; 500 when it cannot be
    written.
    """
    manifest = _parse(data)
    if not manifest.uuid:
        raise ApplicationIntegrityError(
            "the Manifest has no Uuid: the measurement file and the PCR 15 event tag need one",
            code="manifest-uuid-missing",
        )
    if is_default_software_label(manifest.label):
        raise ApplicationIntegrityError(
            f"Label {manifest.label!r} is reserved for the manifests the installation ships; deploy "
            "your own manifests under another label",
            code="manifest-label-reserved",
        )
    target = manifest_file(directory, manifest.uuid)
    for path, stored in _stored_manifests(directory).items():
        if stored is not None and stored.uuid == manifest.uuid and is_default_software_label(stored.label):
            raise ApplicationIntegrityError(
                f"Uuid {manifest.uuid} belongs to the default manifest {path.name} ({stored.label}); "
                "a deployed manifest may not replace it",
                code="manifest-clobbers-default",
                status=409,
            )
    try:
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        write_measurement(target, data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApplicationIntegrityError("the manifest must be UTF-8", code="manifest-encoding") from None
    except (OSError, MeasurementStoreError) as exc:
        raise ApplicationIntegrityError(
            f"cannot store the manifest: {exc}", code="manifest-store-failed", status=500
        ) from None
    return manifest


def measure_now(data: bytes, root: Path) -> str:
    """Measure a posted manifest against ``root`` now; return SecL's Measurement XML (PCR 15 untouched).

    A path the manifest names that is missing or unreadable is an error (409, the measure error's code):
    a flavor made from a partial measurement would accept a host missing those files.
    """
    manifest = _parse(data)
    if not manifest.uuid:
        # SecL's central posts manifests without a Uuid and gives the flavor one: do the same.
        manifest = dataclasses.replace(manifest, uuid=str(uuid.uuid4()))
    try:
        return render_measurement_xml(measure(manifest, root).log)
    except MeasureError as exc:
        raise ApplicationIntegrityError(str(exc), code=exc.code, status=409) from None
    except MeasurementLogError as exc:
        raise ApplicationIntegrityError(str(exc), code=exc.code, status=409) from None


@dataclass(frozen=True)
class QuoteMeasurements:
    """What a quote answer carries for application integrity, and why part of it is missing (if so)."""

    measurement_xmls: tuple[str, ...]
    measure_log: list[dict[str, Any]]
    problem: str | None = None


def quote_measurements(measurement_dir: Path, event_log: Path) -> QuoteMeasurements:
    """The Measurement XMLs of this boot and the PCR 15 events (SecL's measure-log JSON entries)."""
    problems = []
    try:
        xmls = read_measurements(measurement_dir)
    except MeasurementStoreError as exc:
        xmls, problems = (), [str(exc)]
    try:
        logs = read_app_event_log(event_log)
    except MeasurementStoreError as exc:
        logs, problems = (), [*problems, str(exc)]
    entries = [{"pcr": log.pcr.to_json(), "tpm_events": [e.to_json() for e in log.events]} for log in logs]
    return QuoteMeasurements(xmls, entries, "; ".join(problems) or None)


# --- default manifests ------------------------------------------------------------------------------------


def _package_dir(module: Any) -> Path:
    return Path(module.__file__).resolve().parent


def _scripts_dir() -> Path:
    """Where this installation's console scripts are (a venv's bin, /usr/bin, /usr/local/bin)."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    found = shutil.which("secl-measure")
    if found:
        candidates.append(Path(found).resolve().parent)
    for candidate in candidates:
        if (candidate / "secl-measure").is_file():
            return candidate
    return candidates[0]


def render_default_manifest(name: str, manifest_uuid: str) -> str:
    """The default manifest ``name`` with this installation's paths and ``manifest_uuid`` filled in."""
    template = resources.files("secl.trustagent").joinpath("manifests", name).read_text()
    trustagent, core = str(_package_dir(secl.trustagent)), str(_package_dir(secl.core))
    host = str(_package_dir(secl.host))  # the agent's TPM adapter and measuring engine live there
    values = {
        "@UUID@": manifest_uuid,
        "@VERSION@": __version__,
        "@TRUSTAGENT_RE@": re.escape(trustagent),
        "@TRUSTAGENT@": trustagent,
        "@HOST_RE@": re.escape(host),
        "@HOST@": host,
        "@CORE_RE@": re.escape(core),
        "@CORE@": core,
        "@BIN@": str(_scripts_dir()),
    }
    for placeholder, value in values.items():
        template = template.replace(placeholder, escape(value, {'"': "&quot;"}))
    parse_manifest(template)  # a broken template or an unrepresentable install path fails setup, not boot
    return template


def install_default_manifests(directory: Path) -> list[tuple[Path, str]]:
    """Install (or refresh) the default manifests in ``directory``; idempotent.

    A default manifest keeps the Uuid it was first installed with (the flavors and PCR 15 event tags of
    earlier boots name it); it is rewritten only when this installation's paths or version changed.
    Returns ``(path, "installed" | "updated" | "unchanged")`` per default manifest.
    """
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIRECTORY_MODE)
    stored = _stored_manifests(directory)
    outcomes = []
    for name in DEFAULT_MANIFESTS:
        label = parse_manifest(render_default_manifest(name, str(uuid.UUID(int=0)))).label
        prefix = label.split("_v", 1)[0]
        existing = next(
            ((p, m) for p, m in stored.items() if m is not None and m.label.split("_v", 1)[0] == prefix),
            None,
        )
        manifest_uuid = existing[1].uuid if existing and existing[1] else str(uuid.uuid4())
        text = render_default_manifest(name, manifest_uuid)
        target = manifest_file(directory, manifest_uuid)
        if existing is not None and existing[0] == target and target.read_text() == text:
            outcomes.append((target, "unchanged"))
            continue
        write_measurement(target, text)
        if existing is not None and existing[0] != target:
            existing[0].unlink(missing_ok=True)
        outcomes.append((target, "updated" if existing else "installed"))
    return outcomes

"""SecL flavor templates, and the flavors they make from a golden host's manifest.

A template (``build/linux/hvs/schema/flavor-template.json`` in SecL) is ``{id, label, condition[],
flavor_parts: {PART: {meta, pcr_rules[]}}}``; a rule names a PCR with a bank preference list and says how
the flavor checks it: ``pcr_matches`` (the value), ``eventlog_equals`` (the whole log, minus events with
``excluding_tags``) or ``eventlog_includes`` (the events carrying one of these *tags*).

Flavor creation follows SecL's HVS (``GetPcrRulesMap``/``GetPcrDetails``/``GetMetaSectionDetails``):

- the rules of every applicable template are merged per PCR index: the later template's bank list wins,
  ``pcr_matches`` is or-ed, ``eventlog_equals`` sticks once set (a later ``excluding_tags`` replaces the
  earlier), a later ``eventlog_includes`` replaces the earlier, and equals plus includes on one PCR is an
  error;
- per PCR the first bank of the preference list the manifest has a value for is used; a PCR with no value
  in any listed bank is left out; its value becomes ``measurement``;
- ``eventlog_includes`` keeps the PCR's events with a listed tag (case-sensitive, as in SecL: the default
  UEFI template's "shim"/"kek" do not match the agent's "Shim"/"KEK" tags), and is omitted when none
  matches; ``eventlog_equals`` keeps the events without an excluded tag, and is omitted when the manifest
  has no events for the PCR.

Two deliberate differences: SecL appends every untagged event *twice* to ``eventlog_equals`` (a bug its
set-based comparison hides; the corpus's UnknownVendor PLATFORM flavor shows it), we list each event
once; and SecL makes a flavor for a part even when no template defines it (an empty flavor that proves
nothing beyond the AIK), we make flavors only for parts an applicable template defines. PCRs are listed
in index order (SecL's order is Go's random map order).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from secl.core.errors import EvidenceError
from secl.core.flavor import Flavor, load_json, parse_flavor
from secl.core.hostmanifest import HostManifest
from secl.core.manifestbuild import host_manifest_to_json
from secl.core.pcrevents import SeclJSONError, TpmEvent, freeze, normalize_bank, thaw
from secl.core.templatecondition import Condition, TemplateConditionError, compile_condition
from secl.core.vendor import host_vendor

__all__ = [
    "TEMPLATE_PARTS",
    "FlavorTemplate",
    "FlavorTemplateError",
    "PartTemplate",
    "PcrRule",
    "applicable_templates",
    "create_flavors",
    "host_vendor",
    "parse_flavor_template",
]

TEMPLATE_PARTS = ("PLATFORM", "OS", "HOST_UNIQUE")  # the parts SecL builds from templates


class FlavorTemplateError(EvidenceError):
    """A flavor template is malformed, or its rules cannot be combined."""

    code = "flavor-template-invalid"


@dataclass(frozen=True)
class PcrRule:
    """One ``pcr_rules[]`` entry. ``excluding_tags``/``includes`` are None when the template omits them."""

    index: int
    banks: tuple[str, ...]
    pcr_matches: bool = False
    eventlog_equals: bool = False
    excluding_tags: tuple[str, ...] | None = None
    includes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PartTemplate:
    """One ``flavor_parts`` entry: meta copied into the flavor's description, and the PCR rules."""

    meta: Mapping[str, Any]
    pcr_rules: tuple[PcrRule, ...]


@dataclass(frozen=True)
class FlavorTemplate:
    id: str
    label: str
    conditions: tuple[Condition, ...] = field(compare=False)
    flavor_parts: Mapping[str, PartTemplate]
    condition_sources: tuple[str, ...] = ()

    def applies_to(self, manifest_json: Mapping[str, Any]) -> bool:
        """Whether every condition selects something in the manifest's JSON (SecL's test)."""
        return all(c.matches(manifest_json) for c in self.conditions)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FlavorTemplateError(f"{where}: expected a list of strings")
    return tuple(dict.fromkeys(value))  # SecL keeps them in a set: duplicates collapse


def _rule(obj: object, where: str) -> PcrRule:
    if not isinstance(obj, Mapping):
        raise FlavorTemplateError(f"{where}: expected an object")
    unknown = set(obj) - {"pcr", "pcr_matches", "eventlog_equals", "eventlog_includes"}
    if unknown:
        raise FlavorTemplateError(f"{where}: unknown members {sorted(unknown)}")
    pcr = obj.get("pcr")
    if (
        not isinstance(pcr, Mapping)
        or not isinstance(pcr.get("index"), int)
        or isinstance(pcr["index"], bool)
    ):
        raise FlavorTemplateError(f"{where}.pcr: expected {{index: 0..23, bank: [...]}}")
    if not 0 <= pcr["index"] <= 23:
        raise FlavorTemplateError(f"{where}.pcr.index: {pcr['index']} is outside 0..23")
    raw_banks = pcr.get("bank")
    raw_banks = [raw_banks] if isinstance(raw_banks, str) else raw_banks  # SecL's own test template
    try:
        banks = tuple(
            normalize_bank(b, where=f"{where}.pcr.bank") for b in _strings(raw_banks, f"{where}.pcr.bank")
        )
    except SeclJSONError as exc:
        raise FlavorTemplateError(exc.message) from None
    if not banks:
        raise FlavorTemplateError(f"{where}.pcr.bank: at least one bank is required")
    matches = obj.get("pcr_matches", False)
    if not isinstance(matches, bool):
        raise FlavorTemplateError(f"{where}.pcr_matches: expected true or false")
    equals, includes = obj.get("eventlog_equals"), obj.get("eventlog_includes")
    if equals is not None and includes is not None:
        raise FlavorTemplateError(f"{where}: eventlog_equals and eventlog_includes on one PCR")
    excluding = None
    if equals is not None:
        if not isinstance(equals, Mapping) or set(equals) - {"excluding_tags"}:
            raise FlavorTemplateError(f"{where}.eventlog_equals: expected {{excluding_tags?: [...]}}")
        if equals.get("excluding_tags") is not None:
            excluding = _strings(equals["excluding_tags"], f"{where}.eventlog_equals.excluding_tags")
    return PcrRule(
        pcr["index"],
        banks,
        matches,
        equals is not None,
        excluding,
        None if includes is None else _strings(includes, f"{where}.eventlog_includes"),
    )


def parse_flavor_template(doc: Mapping[str, Any] | bytes | str) -> FlavorTemplate:
    """Parse and check a template (SecL's schema); conditions are compiled, so unsupported XPath fails here."""
    if isinstance(doc, bytes | str):
        doc = load_json(doc, what="flavor template", error=FlavorTemplateError)
    if not isinstance(doc, Mapping):
        raise FlavorTemplateError("flavor template: expected a JSON object")
    label, template_id = doc.get("label"), doc.get("id", "")
    if not isinstance(label, str) or not label:
        raise FlavorTemplateError("flavor template: label must be a non-empty string")
    if not isinstance(template_id, str):
        raise FlavorTemplateError("flavor template: id must be a string")
    sources = doc.get("condition")
    if not isinstance(sources, list) or not sources or not all(isinstance(c, str) for c in sources):
        raise FlavorTemplateError(f"template {label}: condition must be a non-empty list of strings")
    try:
        conditions = tuple(compile_condition(c) for c in sources)
    except TemplateConditionError as exc:
        raise FlavorTemplateError(f"template {label}: {exc.message}", code=exc.code) from None
    raw_parts = doc.get("flavor_parts")
    if not isinstance(raw_parts, Mapping) or not raw_parts:
        raise FlavorTemplateError(f"template {label}: flavor_parts must be a non-empty object")
    parts = {}
    for name, part in raw_parts.items():
        where = f"template {label}: flavor_parts.{name}"
        # The schema requires meta, but SecL's own default-ima.json omits it: accept its absence.
        if not isinstance(part, Mapping) or not isinstance(part.get("meta", {}), Mapping):
            raise FlavorTemplateError(f"{where}: expected {{meta: {{...}}, pcr_rules: [...]}}")
        rules = part.get("pcr_rules")
        if not isinstance(rules, list) or not rules:
            raise FlavorTemplateError(f"{where}.pcr_rules: expected a non-empty list")
        parts[name] = PartTemplate(
            freeze(dict(part.get("meta", {}))),
            tuple(_rule(r, f"{where}.pcr_rules[{i}]") for i, r in enumerate(rules)),
        )
    return FlavorTemplate(template_id, label, conditions, freeze(parts), tuple(sources))


def applicable_templates(
    manifest: HostManifest, templates: Iterable[FlavorTemplate]
) -> tuple[FlavorTemplate, ...]:
    """The templates whose every condition holds for this host (evaluated on SecL's manifest JSON)."""
    doc = host_manifest_to_json(manifest)
    return tuple(t for t in templates if t.applies_to(doc))


def _merged_rules(part: str, templates: Sequence[FlavorTemplate]) -> dict[int, PcrRule]:
    merged: dict[int, PcrRule] = {}
    for template in templates:
        part_template = template.flavor_parts.get(part)
        for rule in part_template.pcr_rules if part_template else ():
            old = merged.get(rule.index, PcrRule(rule.index, rule.banks))
            equals = old.eventlog_equals or rule.eventlog_equals
            includes = rule.includes if rule.includes is not None else old.includes
            if equals and includes is not None:
                raise FlavorTemplateError(
                    f"{part} PCR {rule.index}: templates combine eventlog_equals and eventlog_includes",
                    code="flavor-template-rules-conflict",
                )
            excluding = rule.excluding_tags if rule.excluding_tags is not None else old.excluding_tags
            merged[rule.index] = PcrRule(
                rule.index, rule.banks, old.pcr_matches or rule.pcr_matches, equals, excluding, includes
            )
    return merged


def _pcr_entry(manifest: HostManifest, rule: PcrRule) -> dict[str, Any] | None:
    bank = next((b for b in rule.banks if manifest.pcr_value(b, rule.index)), None)
    if bank is None:
        return None
    entry: dict[str, Any] = {
        "pcr": {"index": rule.index, "bank": bank},
        "measurement": manifest.pcr_value(bank, rule.index),
    }
    if rule.pcr_matches:
        entry["pcr_matches"] = True
    events: tuple[TpmEvent, ...] = manifest.event_log(bank, rule.index) or ()
    if events and rule.includes is not None:
        wanted = set(rule.includes)
        included = [e.to_json() for e in events if wanted.intersection(e.tags)]
        if included:
            entry["eventlog_includes"] = included
    if events and rule.eventlog_equals:
        excluded = set(rule.excluding_tags or ())
        kept = [e.to_json() for e in events if not excluded.intersection(e.tags)]
        entry["eventlog_equals"] = {"events": kept}
        if rule.excluding_tags:
            entry["eventlog_equals"]["exclude_tags"] = list(rule.excluding_tags)
    return entry


def _flag(value: object) -> bool:
    # SecL v3 agents write "true"/"false" strings, v4+ booleans.
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _s(info: Mapping[str, Any], key: str) -> str:
    return str(info.get(key) or "").strip()


def _label(*names: str) -> str:
    # SecL removes all white space inside each field, then joins the fields with "_".
    return "_".join("".join(name.split()) for name in names)


def _features(info: Mapping[str, Any]) -> dict[str, Any]:
    return dict(info.get("hardware_features") or {})


def _feature_names(info: Mapping[str, Any]) -> list[str]:
    feats, names = _features(info), []
    cbnt, uefi = feats.get("CBNT") or {}, feats.get("UEFI") or {}
    if _flag(cbnt.get("enabled")):
        names += ["CBNT", str((cbnt.get("meta") or {}).get("profile", ""))]
    names += [n for n in ("TPM", "TXT") if _flag((feats.get(n) or {}).get("enabled"))]
    if _flag(uefi.get("enabled")):
        names.append("UEFI")
    if _flag((uefi.get("meta") or {}).get("secure_boot_enabled")):
        names.append("SecureBootEnabled")
    return names


def _hardware(manifest: HostManifest, info: Mapping[str, Any]) -> dict[str, Any]:
    feats = _features(info)
    banks = [b for b in ("SHA1", "SHA256", "SHA384") if any(r.bank == b for r in manifest.pcr_values)]
    tpm = feats.get("TPM") or {}
    feature: dict[str, Any] = {
        "TPM": {
            "enabled": str(_flag(tpm.get("enabled"))).lower(),
            "meta": {"tpm_version": str((tpm.get("meta") or {}).get("tpm_version", "")), "pcr_banks": banks},
        }
    }
    for name in ("TXT", "CBNT", "UEFI", "BMC", "PFR"):
        if name in feats:
            section = feats[name] or {}
            feature[name] = {"enabled": str(_flag(section.get("enabled"))).lower()}
            meta = section.get("meta") or {}
            if name == "CBNT":
                feature[name]["meta"] = {"profile": meta.get("profile", ""), "msr": meta.get("msr", "")}
            elif name == "UEFI":
                feature[name]["meta"] = {"secure_boot_enabled": _flag(meta.get("secure_boot_enabled"))}
    return {
        "processor_info": _s(info, "processor_info"),
        # SecL v3 agents spelled it "process_flags".
        "processor_flags": _s(info, "processor_flags") or _s(info, "process_flags"),
        "feature": feature,
    }


def _description(
    part: str, info: Mapping[str, Any], *, source: str, stamp: str, prefix: str
) -> dict[str, Any]:
    bios_name, bios_version = _s(info, "bios_name"), _s(info, "bios_version")
    os_name, os_version = _s(info, "os_name"), _s(info, "os_version")
    tpm_meta = (_features(info).get("TPM") or {}).get("meta") or {}
    desc: dict[str, Any] = {
        "flavor_part": part,
        "tboot_installed": _flag(info.get("tboot_installed")),
        "tpm_version": str(tpm_meta.get("tpm_version", "")).strip(),
    }
    if source:
        desc["source"] = source
    if part == "PLATFORM":
        desc.update(bios_name=bios_name, bios_version=bios_version)
        desc["label"] = _label(prefix, bios_name, bios_version, "_".join(_feature_names(info)), stamp)
    elif part == "OS":
        desc.update(os_name=os_name, os_version=os_version)
        vmm_name, vmm_version = _s(info, "vmm_name"), _s(info, "vmm_version")
        desc.update({k: v for k, v in (("vmm_name", vmm_name), ("vmm_version", vmm_version)) if v})
        desc["label"] = _label(prefix, os_name, os_version, vmm_name, vmm_version, stamp)
    else:
        try:
            hardware_uuid = str(uuid.UUID(_s(info, "hardware_uuid")))
        except ValueError:
            raise FlavorTemplateError(
                f"HOST_UNIQUE: host hardware UUID {_s(info, 'hardware_uuid')!r} is not a UUID",
                code="flavor-template-host-invalid",
            ) from None
        desc.update(
            hardware_uuid=hardware_uuid, bios_name=bios_name, bios_version=bios_version,
            os_name=os_name, os_version=os_version,
        )  # fmt: skip
        desc["label"] = _label(prefix, hardware_uuid, stamp)
    return desc


def create_flavors(
    manifest: HostManifest,
    templates: Iterable[FlavorTemplate],
    *,
    source: str | None = None,
    label_prefix: str | None = None,
    parts: Sequence[str] = TEMPLATE_PARTS,
    now: datetime | None = None,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> list[Flavor]:
    """Make the flavors of ``parts`` for this golden host from the templates that apply to it.

    ``source`` defaults to the host name; ``label_prefix`` (default: the vendor, as SecL) starts each
    label, which ends with the time ``now`` (default: the current time). Flavors come back unsigned.
    """
    unknown = set(parts) - set(TEMPLATE_PARTS)
    if unknown:
        raise FlavorTemplateError(f"templates make only {TEMPLATE_PARTS} flavors, not {sorted(unknown)}")
    applied = applicable_templates(manifest, templates)
    info = manifest.host_info
    vendor = host_vendor(info)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
    src = source if source is not None else _s(info, "host_name")
    template_ids = [t.id for t in applied if t.id]
    flavors = []
    for part in parts:
        defining = [t for t in applied if part in t.flavor_parts]
        if not defining:
            continue
        rules = _merged_rules(part, applied)
        pcrs = [e for e in (_pcr_entry(manifest, rules[i]) for i in sorted(rules)) if e is not None]
        desc = _description(part, info, source=src, stamp=stamp, prefix=label_prefix or vendor)
        for template in defining:
            desc.update(thaw(template.flavor_parts[part].meta))
        desc["flavor_template_ids"] = template_ids
        doc: dict[str, Any] = {
            "meta": {"id": str(new_id()), "description": desc, "vendor": vendor},
            "bios": {"bios_name": _s(info, "bios_name"), "bios_version": _s(info, "bios_version")},
        }
        if part == "PLATFORM":
            doc["hardware"] = _hardware(manifest, info)
        doc["pcrs"] = pcrs
        flavors.append(parse_flavor(doc))
    return flavors

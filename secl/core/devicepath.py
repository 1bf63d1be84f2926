"""EFI device paths (UEFI 2.x chapter 10) as text, the way tpm2-tools prints them.

Pure: bytes in, text out, :class:`EventLogError` for malformed paths. Node lengths are checked before use,
and a node shorter than its header is refused rather than looped on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from secl.core.efireader import EFIReader as _Reader
from secl.core.efireader import ascii_text as _ascii
from secl.core.efireader import format_guid
from secl.core.efireader import utf16_text as _utf16
from secl.core.errors import EventLogError

_BBS_TYPES = {1: "Floppy", 2: "HD", 3: "CDROM", 4: "PCMCIA", 5: "USB", 6: "Network"}
_IP_PROTOCOLS = {6: "TCP", 17: "UDP"}


def _vendor(prefix: str) -> Callable[[_Reader], str]:
    def node(r: _Reader) -> str:
        guid, data = r.guid(), r.rest()
        return f"{prefix}({guid},{data.hex()})" if data else f"{prefix}({guid})"

    return node


def _acpi(r: _Reader) -> str:
    hid, uid = r.uint(4), r.uint(4)
    if hid & 0xFFFF != 0x41D0:  # Not a compressed "PNP" EISA id.
        return f"Acpi({hid:#x},{uid:#x})"
    roots = {0x0A03: "PciRoot", 0x0A08: "PcieRoot"}
    return f"{roots[hid >> 16]}({uid:#x})" if hid >> 16 in roots else f"Acpi(PNP{hid >> 16:04X},{uid:#x})"


def _pci(r: _Reader) -> str:
    function, device = r.uint(1), r.uint(1)
    return f"Pci({device:#x},{function:#x})"


def _mac(r: _Reader) -> str:
    address, if_type = r.take(32), r.uint(1)
    # Ethernet (0) and 802.3 (1) use six bytes of the 32-byte field; tpm2-tools prints IfType in decimal.
    return f"MAC({address[: 6 if if_type in (0, 1) else 32].hex()},{if_type})"


def _ipv4(r: _Reader) -> str:
    local, remote = ipaddress.IPv4Address(r.take(4)), ipaddress.IPv4Address(r.take(4))
    r.take(4)  # Local and remote ports are not part of the UEFI text form.
    protocol, static = r.uint(2), r.uint(1)
    text = (
        f"IPv4({remote},{_IP_PROTOCOLS.get(protocol, hex(protocol))},{'Static' if static else 'DHCP'},{local}"
    )
    if r.remaining >= 8:  # Gateway and subnet mask were added in UEFI 2.3.
        text += f",{ipaddress.IPv4Address(r.take(4))},{ipaddress.IPv4Address(r.take(4))}"
    return text + ")"


def _ipv6(r: _Reader) -> str:
    local, remote = ipaddress.IPv6Address(r.take(16)), ipaddress.IPv6Address(r.take(16))
    r.take(4)
    protocol, origin = r.uint(2), r.uint(1)
    origins = {0: "Static", 1: "StatelessAutoConfigure", 2: "StatefulAutoConfigure"}
    return (
        f"IPv6({remote},{_IP_PROTOCOLS.get(protocol, hex(protocol))},{origins.get(origin, origin)},{local})"
    )


def _nvme(r: _Reader) -> str:
    namespace, eui = r.uint(4), r.take(8)
    return f"NVMe({namespace:#x},{'-'.join(f'{b:02X}' for b in reversed(eui))})"


def _hard_drive(r: _Reader) -> str:
    number, start, size, signature = r.uint(4), r.uint(8), r.uint(8), r.take(16)
    r.uint(1)  # The partition format (MBR/GPT) is implied by the signature type below.
    kind = r.uint(1)
    if kind == 2:
        sig = f"GPT,{format_guid(signature)}"
    elif kind == 1:
        sig = f"MBR,{int.from_bytes(signature[:4], 'little'):#010x}"
    else:
        sig = f"{kind},0"
    return f"HD({number},{sig},{start:#x},{size:#x})"


def _offset(r: _Reader) -> str:
    r.take(4)  # Reserved.
    return f"Offset({r.uint(8):#x},{r.uint(8):#x})"


def _bbs(r: _Reader) -> str:
    device_type, status = r.uint(2), r.uint(2)
    description = _ascii(r.rest().split(b"\0", 1)[0])
    return f"BBS({_BBS_TYPES.get(device_type, hex(device_type))},{description},{status:#x})"


# (type, subtype) -> formatter of the node body. USB, SATA and SCSI numbers are decimal and "SCSI" and
# "FvVol" are spelled as tpm2-tools prints them; the UEFI text form uses hex, "Scsi" and "Fv".
_NODES: dict[tuple[int, int], Callable[[_Reader], str]] = {
    (1, 1): _pci,
    (1, 3): lambda r: f"MemoryMapped({r.uint(4):#x},{r.uint(8):#x},{r.uint(8):#x})",
    (1, 4): _vendor("VenHw"),
    (1, 5): lambda r: f"Ctrl({r.uint(4):#x})",
    (2, 1): _acpi,
    (2, 3): lambda r: f"AcpiAdr({r.uint(4):#x})",
    (3, 2): lambda r: f"SCSI({r.uint(2)},{r.uint(2)})",
    (3, 5): lambda r: f"USB({r.uint(1)},{r.uint(1)})",
    (3, 10): _vendor("VenMsg"),
    (3, 11): _mac,
    (3, 12): _ipv4,
    (3, 13): _ipv6,
    (3, 17): lambda r: f"Unit({r.uint(1):#x})",
    (3, 18): lambda r: f"Sata({r.uint(2)},{r.uint(2)},{r.uint(2)})",
    (3, 23): _nvme,
    (3, 24): lambda r: f"Uri({_ascii(r.rest())})",
    (4, 1): _hard_drive,
    (4, 2): lambda r: f"CDROM({r.uint(4):#x},{r.uint(8):#x},{r.uint(8):#x})",
    (4, 3): _vendor("VenMedia"),
    (4, 4): lambda r: f"File({_utf16(r.rest())})",
    (4, 5): lambda r: f"Media({r.guid()})",
    (4, 6): lambda r: f"FvFile({r.guid()})",
    (4, 7): lambda r: f"FvVol({r.guid()})",
    (4, 8): _offset,
    (5, 1): _bbs,
}
_END = 0x7F
_END_INSTANCE, _END_ENTIRE = 0x01, 0xFF


def _node_text(node_type: int, subtype: int, body: bytes, offset: int) -> str:
    formatter = _NODES.get((node_type, subtype))
    if formatter is None:
        return f"Path({node_type},{subtype},{body.hex()})"
    try:
        return formatter(_Reader(body, f"device path node ({node_type},{subtype}) at offset {offset}"))
    except EventLogError as exc:
        raise EventLogError(exc.message, code="efi-device-path-invalid") from exc


def read_device_path(data: bytes, start: int = 0) -> tuple[str, int]:
    """Return the text of the device path at ``start`` and the offset just past its end node."""
    instances: list[list[str]] = [[]]
    pos = start
    while pos < len(data):
        if len(data) - pos < 4:
            raise EventLogError(
                f"device path node header truncated at offset {pos}", code="efi-device-path-invalid"
            )
        node_type, subtype, length = (
            data[pos],
            data[pos + 1],
            int.from_bytes(data[pos + 2 : pos + 4], "little"),
        )
        # A length below the header size would never advance: reject it rather than loop forever.
        if length < 4 or pos + length > len(data):
            raise EventLogError(
                f"device path node at offset {pos} has length {length} ({len(data) - pos} bytes left)",
                code="efi-device-path-invalid",
            )
        body, pos = data[pos + 4 : pos + length], pos + length
        if node_type == _END and subtype == _END_ENTIRE:
            break
        if node_type == _END and subtype == _END_INSTANCE:
            instances.append([])
        else:
            instances[-1].append(_node_text(node_type, subtype, body, pos - length))
    return ",".join("/".join(nodes) for nodes in instances), pos


def device_path_to_text(data: bytes) -> str:
    """Render an EFI_DEVICE_PATH_PROTOCOL up to its end-of-entire-path node; '' for no data."""
    return read_device_path(data)[0]

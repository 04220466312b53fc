"""Where a Linux guest finds the device: sysfs identity nodes and the seed's user-mode files.

The device knows nothing of the Linux layer: it lists (path, content,
mappable) triples and the emulator publishes them as virtual files. A
`mappable` maps its window into the guest when the guest `mmap`s the file;
every mapping aliases the one device (MMIO with the same registers, RAM
over the same host buffer).
"""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Callable, Iterator

from .control import PAGE

if TYPE_CHECKING:
    from .backdoor import BackdoorDevice

VENDOR, DEVICE, CLASS = 0x1AF4, 0x1004, 0x050000
SLOT = "0000:00:04.0"
SYSFS_DIRS = (f"/sys/devices/pci0000:00/{SLOT}", f"/sys/bus/pci/devices/{SLOT}")
PROT_READ, PROT_WRITE = 1, 2


class ControlResource:
    """`resource0` (one page) or the user-mode `BASE-control` file (two pages)."""

    def __init__(self, device: "BackdoorDevice", pages: int, name: str) -> None:
        self.device, self.pages, self.name = device, pages, name

    @property
    def size(self) -> int:
        return self.pages * PAGE

    def map_into(self, emu, address: int, size: int, prot: int, offset: int) -> int:
        if offset or size > self.pages * PAGE:
            raise OSError(errno.EINVAL, "beyond the control window")
        emu.memory.unmap(address, size)
        self.device.map_control(address, size, self.name, two_pages=self.pages == 2)
        return address


class DataResource:
    """`resource1` or the user-mode `BASE-data` file."""

    def __init__(self, device: "BackdoorDevice", name: str) -> None:
        self.device, self.name = device, name

    @property
    def size(self) -> int:
        return self.device.data.size

    def map_into(self, emu, address: int, size: int, prot: int, offset: int) -> int:
        if offset + size > self.device.data.size:
            raise OSError(errno.EINVAL, "beyond the data window")
        emu.memory.unmap(address, size)
        self.device.map_data(address, size, prot & (PROT_READ | PROT_WRITE), self.name, offset)
        return address


def _text(value: int, width: int) -> Callable[[], bytes]:
    line = f"{value:#0{width + 2}x}\n".encode()
    return lambda: line


def device_nodes(device: "BackdoorDevice", user_base: str | None) -> Iterator[tuple[str, Callable[[], bytes], object]]:
    """The virtual files that expose `device`: (guest path, content, mappable or None)."""
    for directory in SYSFS_DIRS:
        yield f"{directory}/vendor", _text(VENDOR, 4), None
        yield f"{directory}/device", _text(DEVICE, 4), None
        yield f"{directory}/class", _text(CLASS, 6), None
        yield f"{directory}/resource0", lambda: b"", ControlResource(device, 1, f"{directory}/resource0")
        yield f"{directory}/resource1", lambda: b"", DataResource(device, f"{directory}/resource1")
    if user_base:
        control, data = f"{user_base}-control", f"{user_base}-data"
        yield control, device.control_file_bytes, ControlResource(device, 2, os.path.basename(control))
        yield data, device.data.snapshot, DataResource(device, os.path.basename(data))

"""Map an ELF image (and its interpreter) into an address space and build the start-up stack."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..memory import PROT_EXEC, PROT_READ, PROT_WRITE, AddressSpace, page_down, page_up
from .elf import ElfImage, NotExecutable, Segment, read_elf
from .stack import StackLayout, build_stack

__all__ = ["ElfImage", "NotExecutable", "LoadedImage", "read_elf", "load_image", "mapped_image",
           "build_stack", "StackLayout"]


def _perms(flags: int) -> int:
    return ((PROT_READ if flags & 4 else 0) | (PROT_WRITE if flags & 2 else 0)
            | (PROT_EXEC if flags & 1 else 0))


@dataclass(frozen=True)
class LoadedImage:
    """Where an image landed: what auxv and the modules table need."""

    image: ElfImage
    base: int  # load bias added to every p_vaddr (0 for ET_EXEC)
    start: int
    end: int
    entry: int
    phdr: int


def load_image(space: AddressSpace, write, image: ElfImage, base: int | None = None) -> LoadedImage:
    """Map every PT_LOAD segment of `image` at `base` (chosen by the caller or by mmap rules)."""
    low, high = image.span
    if image.is_pie:
        if base is None:
            base = space.find_free(page_up(high) - page_down(low)) - page_down(low)
    else:
        base = 0
    name = os.path.abspath(image.path)
    fd = os.open(image.path, os.O_RDONLY)
    try:
        for segment in image.segments:
            _map_segment(space, write, fd, segment, base, name)
    finally:
        os.close(fd)
    phdr = _phdr_address(image) + base
    return LoadedImage(image, base, page_down(low) + base, page_up(high) + base,
                       image.entry + base, phdr)


def _map_segment(space: AddressSpace, write, fd: int, segment: Segment, base: int, name: str) -> None:
    start = page_down(segment.vaddr + base)
    end = page_up(segment.vaddr + base + segment.memsz)
    perms = _perms(segment.flags)
    page = start
    while page < end:
        region = space.find(page)
        if region is None:
            # Up to the next mapped region (not page by page: a segment may span gigabytes).
            run_end = min([r.start for r in space.regions if page < r.start < end] + [end])
            space.map(page, run_end - page, perms, name, segment.offset + page - (segment.vaddr + base))
            page = run_end
        else:
            # A page shared with the previous segment gets both segments' rights.
            top = min(region.end, end)
            space.protect(page, top - page, region.perms | perms)
            page = top
    if segment.filesz:
        data = os.pread(fd, segment.filesz, segment.offset)
        write(segment.vaddr + base, data)


def _phdr_address(image: ElfImage) -> int:
    """The virtual address of the program header table (for AT_PHDR)."""
    for segment in image.segments:
        if segment.offset <= image.phoff < segment.offset + segment.filesz:
            return segment.vaddr + image.phoff - segment.offset
    return image.segments[0].vaddr + image.phoff


def mapped_image(image: ElfImage, address: int, offset: int) -> LoadedImage | None:
    """Where `image` lies when its file page at `offset` is mapped at `address` (ld.so's mmap of a
    PT_LOAD segment), or None if no segment starts on that file page."""
    for segment in image.segments:
        if page_down(segment.offset) == offset:
            base = address - page_down(segment.vaddr)
            low, high = image.span
            return LoadedImage(image, base, page_down(low) + base, page_up(high) + base,
                               image.entry + base, _phdr_address(image) + base)
    return None

"""Which code pages ran, and how many blocks each (a user-style batch plugin: numpy, no per-block Python)."""
import numpy as np

from bdemu import Plugin


class PageMap(Plugin):
    """Which code pages ran, and how many blocks each."""

    def __init__(self, **options):
        super().__init__(**options)
        self.pages = {}

    def on_block_batch(self, emu, pcs, sizes):
        pages, counts = np.unique(pcs >> np.uint64(12), return_counts=True)
        for page, count in zip(pages.tolist(), counts.tolist()):
            self.pages[page] = self.pages.get(page, 0) + count

    def on_exit(self, emu, result):
        for page in sorted(self.pages):
            print(f"pagemap: {page << 12:#x} {self.pages[page]}", file=emu.output)

"""The native block counter (bdemu/_native/core.c `bd_block_count`) against a plain Counter.

The C hook is called directly through ctypes with made-up block streams, so
the cases a guest rarely produces on demand are covered: long runs of one
block (its repeat fast path), a table that grows in the middle of such a run,
and blocks that share a pc but differ in size.
"""
from __future__ import annotations

import ctypes
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bdemu import Emulator, Plugin
from bdemu._native import BLOCK_BUFFER, BLOCK_COUNT, BlockCounter, BlockStream
from conftest import ROOT, sample

_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
count_block = _HOOK(BLOCK_COUNT)
buffer_block = _HOOK(BLOCK_BUFFER)


def counted(stream: list[tuple[int, int]], capacity: int) -> dict[tuple[int, int], int]:
    counter = BlockCounter(None, capacity=capacity)
    state = ctypes.addressof(counter.state)
    for pc, size in stream:
        count_block(None, pc, size, state)
    pcs, sizes, counts = counter.snapshot()
    assert list(zip(pcs.tolist(), sizes.tolist())) == sorted(zip(pcs.tolist(), sizes.tolist()))
    return dict(zip(zip(pcs.tolist(), sizes.tolist()), counts.tolist()))


@st.composite
def block_streams(draw):
    """Runs of one block, from a pool where some blocks share a pc (differing sizes)."""
    pcs = draw(st.lists(st.integers(0, 1 << 64 - 1), min_size=1, max_size=40))
    pool = [(pc, size) for pc in pcs for size in draw(st.sets(st.integers(1, 300), min_size=1, max_size=2))]
    runs = draw(st.lists(st.tuples(st.sampled_from(pool), st.integers(1, 20)), min_size=1, max_size=80))
    return [block for block, times in runs for _ in range(times)]


@settings(max_examples=200, deadline=None)
@given(block_streams(), st.sampled_from([2, 4, 64]))
def test_counts_match_a_counter_while_the_table_grows(stream, capacity):
    assert counted(stream, capacity) == Counter(stream)


def test_a_repeated_block_keeps_counting_after_the_table_grew_under_it():
    # Capacity 4 grows when the third distinct block arrives; that block then repeats.
    stream = [(0x1000, 4), (0x2000, 8), (0x3000, 2)] * 2 + [(0x3000, 2)] * 50 + [(0x1000, 4)] * 3
    assert counted(stream, 4) == Counter(stream)


def test_a_same_pc_with_another_size_is_another_block():
    stream = [(0x1000, 4)] * 3 + [(0x1000, 6)] * 2 + [(0x1000, 4)]
    assert counted(stream, 8) == {(0x1000, 4): 4, (0x1000, 6): 2}


def test_guest_counts_equal_the_ordered_stream():
    """On a real guest: on_block_counts agrees block by block with on_block_batch."""
    class Both(Plugin):
        def __init__(self):
            self.stream: Counter = Counter()
            self.counts: dict = {}

        def on_block_batch(self, emu, pcs, sizes):
            self.stream.update(zip(pcs.tolist(), sizes.tolist()))

        def on_block_counts(self, emu, pcs, sizes, counts):
            self.counts = dict(zip(zip(pcs.tolist(), sizes.tolist()), counts.tolist()))

    path = str(ROOT / sample("x86_64", "compute"))
    emu = Emulator(path, argv=[path, "2000"], env={})
    plugin = emu.add_plugin(Both())
    assert emu.run(capture_output=True).exit_code == 0
    assert plugin.counts == dict(plugin.stream) and max(plugin.counts.values()) >= 2000
    assert np.int64(sum(plugin.counts.values())) == sum(plugin.stream.values())


def test_batches_a_plugin_keeps_stay_as_delivered():
    """Batches are views of the C buffer: one kept by the sink must not be overwritten by later blocks."""
    kept, seen = [], []

    def sink(pcs, sizes):
        seen.append(pcs.tolist())
        if len(seen) % 2:  # keep every other batch (a view of it), look at the rest only
            kept.append((len(seen) - 1, pcs[1:], sizes))

    stream = BlockStream(None, sink, capacity=8)
    state = ctypes.addressof(stream.state)
    blocks = [(0x1000 + 16 * i, 1 + i % 7) for i in range(50)]
    for pc, size in blocks:
        buffer_block(None, pc, size, state)
    stream.drain()
    assert sum(seen, []) == [pc for pc, _ in blocks]
    for index, pcs, sizes in kept:
        assert pcs.tolist() == seen[index][1:]
        assert sizes.tolist() == [size for _, size in blocks[8 * index:8 * index + len(sizes)]]

"""The native core seen from Python: C hook functions that gather hot events into numpy arrays.

`TraceStream` is `bdemu record`'s own: one C state numbers blocks (as ids of
distinct blocks, a one-block loop as a repeat count) and memory accesses
with a single `seq` counter, and `RunEncoder` cuts its block stream into
loop runs (see bdemu/trace/recorder.py).

The C functions (core.c, built at install as `bdemu._native._core`) are
registered with `uc_hook_add` through ctypes, so Unicorn calls them with no
Python on the way. Each gathers into arrays owned here; when an array fills,
the C hook calls back into Python (a ctypes callback takes the GIL), the batch
goes to the plugins, and the guest carries on inside the same `emu_start`.

Why a callback rather than `uc_emu_stop` and a restart: measured on Unicorn
2.1.4 (compute sample, stop every 7th block), `uc_emu_stop` in a block hook
leaves the pc at the start of that block *without running it*, so restarting
at the pc reports the block a second time (exactly one duplicate per
restart; instruction counts stay exact). A stop/restart design would have to
drop the last record of each batch, and each restart would also reset
`emu_start`'s instruction count (`--max-insns`) and cost ~6 us. The callback
has none of these problems and costs one Python call per batch. An exception raised
while draining is stored the way the Unicorn binding stores hook exceptions
(`uc._hook_exception` + `emu_stop`), so it comes out of `emu_start`.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Callable

import numpy as np

from . import _core

_lib = ctypes.CDLL(_core.__file__)
_u64p, _u32p = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint32)
FLUSH = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

#: Addresses of the C hook functions, for `uc_hook_add`.
BLOCK_BUFFER = ctypes.cast(_lib.bd_block_buffer, ctypes.c_void_p).value
BLOCK_COUNT = ctypes.cast(_lib.bd_block_count, ctypes.c_void_p).value
MEM_BUFFER = ctypes.cast(_lib.bd_mem_buffer, ctypes.c_void_p).value
BLOCK_NOP = ctypes.cast(_lib.bd_block_nop, ctypes.c_void_p).value

#: One memory access as the C hook stores it.
MEM_DTYPE = np.dtype([("pc", "=u8"), ("address", "=u8"), ("value", "=u8"),
                      ("size", "=u4"), ("write", "=u4")])


class _BlockBuffer(ctypes.Structure):
    _fields_ = [("pcs", _u64p), ("sizes", _u32p), ("n", ctypes.c_uint64), ("cap", ctypes.c_uint64),
                ("flush", FLUSH)]


class _BlockTable(ctypes.Structure):
    _fields_ = [("pcs", _u64p), ("sizes", _u32p), ("counts", _u64p), ("mask", ctypes.c_uint64),
                ("used", ctypes.c_uint64), ("grow", FLUSH), ("last_pc", ctypes.c_uint64),
                ("last_slot", ctypes.c_uint64), ("last_size", ctypes.c_uint32),
                ("reg_read", ctypes.c_void_p), ("mode_reg", ctypes.c_int64), ("modes", _u64p)]


class _MemBuffer(ctypes.Structure):
    _fields_ = [("records", ctypes.c_void_p), ("n", ctypes.c_uint64), ("cap", ctypes.c_uint64),
                ("flush", FLUSH), ("reg_read", ctypes.c_void_p), ("pc_reg", ctypes.c_int64)]


_lib.bd_table_rehash.argtypes = [ctypes.POINTER(_BlockTable), ctypes.POINTER(_BlockTable)]
_lib.bd_table_rehash.restype = None
_lib.bd_table_find.argtypes = [ctypes.POINTER(_BlockTable), ctypes.c_uint64, ctypes.c_uint32]
_lib.bd_table_find.restype = ctypes.c_int64


def add_hook(uc, kind: int, function: int, state: ctypes.Structure, begin: int = 1, end: int = 0) -> int:
    """Register C hook `function` (an address above) for `kind` with `state` as its user data."""
    from ..regs import add_hook as add_uc_hook
    return add_uc_hook(uc, kind, function, begin, end, user_data=ctypes.addressof(state))


def remove_hook(uc, handle: int) -> None:
    from unicorn.unicorn_py3.unicorn import uclib
    uclib.uc_hook_del(uc._uch, handle)


def reg_read_address() -> int:
    """Address of libunicorn's `uc_reg_read`, for the memory hook's pc."""
    from unicorn.unicorn_py3.unicorn import uclib
    return ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p).value


def _ptr(array: np.ndarray, kind):
    return array.ctypes.data_as(kind)


def _guarded(uc, drain: Callable[[], None]) -> Callable[[int], None]:
    """A flush callback that never lets an exception escape into C (see the module docstring)."""
    from ..regs import fail

    def callback(_self) -> None:
        try:
            drain()
        except BaseException as error:  # noqa: BLE001 - re-raised by Uc.emu_start
            fail(uc, error)
    return callback


class BlockStream:
    """The ordered stream of executed blocks, delivered as (pcs, sizes) batches to `sink`.

    A batch is a view of the buffer the C hook fills, not a copy (copying cost
    more than the hook itself). If the sink keeps a reference to it, the C hook
    gets fresh arrays for the next batch, so what a plugin kept never changes.
    """

    def __init__(self, uc, sink: Callable[[np.ndarray, np.ndarray], None], capacity: int = 1 << 16):
        self._sink = sink
        self._callback = FLUSH(_guarded(uc, self.drain))
        self.state = _BlockBuffer(None, None, 0, capacity, self._callback)
        self._use_new_buffers()

    def _use_new_buffers(self) -> None:
        capacity = self.state.cap
        self.pcs = np.zeros(capacity, np.uint64)
        self.sizes = np.zeros(capacity, np.uint32)
        self.state.pcs, self.state.sizes = _ptr(self.pcs, _u64p), _ptr(self.sizes, _u32p)
        self._unshared = (sys.getrefcount(self.pcs), sys.getrefcount(self.sizes))

    def drain(self) -> None:
        n = self.state.n
        if n:
            self.state.n = 0
            try:
                self._sink(self.pcs[:n], self.sizes[:n])
            finally:
                if (sys.getrefcount(self.pcs), sys.getrefcount(self.sizes)) != self._unshared:
                    self._use_new_buffers()  # the sink kept (a view of) this batch


class BlockCounter:
    """Execution counts per distinct (pc, size), kept in a C hash table that grows by doubling.

    With `mode_reg` (a Unicorn register id) the table also keeps that register's value from
    when each block first ran (`mode_of`): which instruction set its code is in (ARM/Thumb).
    """

    def __init__(self, uc, capacity: int = 1 << 12, mode_reg: int | None = None):
        self._callback = FLUSH(_guarded(uc, self._grow))
        self._modes = mode_reg is not None
        self._arrays = self._allocate(capacity)
        self.state = _BlockTable(*self._pointers(self._arrays)[:3], capacity - 1, 0, self._callback)
        if self._modes:
            self.state.reg_read, self.state.mode_reg = reg_read_address(), mode_reg
            self.state.modes = self._pointers(self._arrays)[3]

    def _allocate(self, capacity: int):
        return (np.zeros(capacity, np.uint64), np.zeros(capacity, np.uint32), np.zeros(capacity, np.uint64),
                np.zeros(capacity if self._modes else 0, np.uint64))

    @staticmethod
    def _pointers(arrays):
        pcs, sizes, counts, modes = arrays
        return _ptr(pcs, _u64p), _ptr(sizes, _u32p), _ptr(counts, _u64p), _ptr(modes, _u64p) if len(modes) else None

    def _grow(self) -> None:
        capacity = (self.state.mask + 1) * 2
        arrays = self._allocate(capacity)
        pointers = self._pointers(arrays)
        bigger = _BlockTable(*pointers[:3], capacity - 1, 0, self._callback)
        bigger.modes = pointers[3]
        _lib.bd_table_rehash(ctypes.byref(self.state), ctypes.byref(bigger))
        self.state.pcs, self.state.sizes, self.state.counts = bigger.pcs, bigger.sizes, bigger.counts
        self.state.modes = pointers[3]
        self.state.mask, self.state.used = bigger.mask, bigger.used
        self.state.last_size = 0  # the last counted block's slot moved: it is looked up again
        self._arrays = arrays

    def mode_of(self, pc: int, size: int) -> int | None:
        """The mode register's value when block (pc, size) first ran; None if unknown."""
        if not self._modes:
            return None
        slot = _lib.bd_table_find(ctypes.byref(self.state), pc, size)
        return None if slot < 0 else int(self._arrays[3][slot])

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pcs, sizes, counts) of every block executed so far, sorted by pc."""
        pcs, sizes, counts, _ = self._arrays
        used = counts != 0
        pcs, sizes, counts = pcs[used], sizes[used], counts[used]
        order = np.lexsort((sizes, pcs))
        return pcs[order], sizes[order], counts[order]


class _AddressSet(ctypes.Structure):
    _fields_ = [("addresses", _u64p), ("mask", ctypes.c_uint64), ("hit_address", ctypes.c_uint64), ("hit", FLUSH)]


BLOCK_WATCH = ctypes.cast(_lib.bd_block_watch, ctypes.c_void_p).value
_lib.bd_watch_add.argtypes = [ctypes.POINTER(_AddressSet), ctypes.c_uint64]
_lib.bd_watch_add.restype = ctypes.c_int


class AddressWatch:
    """A block hook (C `bd_block_watch`) that calls `hit(address)` when a block starts at one of
    the watched addresses; others cost a hash probe. `watch` may change the set at any time."""

    def __init__(self, uc, hit: Callable[[int], None]) -> None:
        self._hit = hit
        self._callback = FLUSH(_guarded(uc, self._on_hit))
        self.state = _AddressSet(None, 0, 0, self._callback)
        self.watch(())

    def watch(self, addresses) -> None:
        """Watch exactly these (nonzero) addresses."""
        wanted = {address for address in addresses if address}
        capacity = 64
        while capacity < 2 * len(wanted):
            capacity *= 2
        table = np.zeros(capacity, np.uint64)
        state = _AddressSet(_ptr(table, _u64p), capacity - 1, 0, self._callback)
        for address in wanted:
            _lib.bd_watch_add(ctypes.byref(state), address)
        self.state.addresses, self.state.mask = state.addresses, state.mask
        self._table = table

    def _on_hit(self) -> None:
        self._hit(self.state.hit_address)


class MemStream:
    """Every guest memory access in order (reads after they happen, with the value read)."""

    def __init__(self, uc, sink: Callable[[np.ndarray], None], reg_read: int, pc_reg: int,
                 capacity: int = 1 << 16):
        self._sink = sink
        self._callback = FLUSH(_guarded(uc, self.drain))
        self.state = _MemBuffer(None, 0, capacity, self._callback, reg_read, pc_reg)
        self._use_new_buffer()

    def _use_new_buffer(self) -> None:
        self.records = np.zeros(self.state.cap, MEM_DTYPE)
        self.state.records = self.records.ctypes.data
        self._unshared = sys.getrefcount(self.records)

    def drain(self) -> None:
        """Like `BlockStream.drain`: the batch is a view, and a kept one is never written again."""
        n = self.state.n
        if n:
            self.state.n = 0
            try:
                self._sink(self.records[:n])
            finally:
                if sys.getrefcount(self.records) != self._unshared:
                    self._use_new_buffer()


#: The columns of the trace stream's memory accesses (`write`: 1 for a write, 0 for a read).
MEM_COLUMNS = {"seq": np.uint64, "pc": np.uint64, "address": np.uint64, "value": np.uint64,
               "size": np.uint8, "write": np.uint8}
_SLOT_DTYPE = np.dtype([("pc", "=u8"), ("size", "=u4"), ("id1", "=u4")])
TRACE_BLOCK = ctypes.cast(_lib.bd_trace_block, ctypes.c_void_p).value
TRACE_MEM = ctypes.cast(_lib.bd_trace_mem, ctypes.c_void_p).value
NO_BLOCK = (1 << 64) - 1  # `last_pc` when the next block cannot repeat the last entry


class _TraceStream(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("ids", _u32p), ("seqs", _u64p), ("n", ctypes.c_uint64),
                ("cap", ctypes.c_uint64), ("flush", FLUSH), ("slots", ctypes.c_void_p), ("mask", ctypes.c_uint64),
                ("pcs", _u64p), ("sizes", _u32p), ("strides", _u32p),
                ("nids", ctypes.c_uint64), ("idcap", ctypes.c_uint64), ("grow", FLUSH), ("fresh", FLUSH),
                *((f"mem_{name}", ctypes.c_void_p) for name in MEM_COLUMNS),
                ("mn", ctypes.c_uint64), ("mcap", ctypes.c_uint64),
                ("reg_read", ctypes.c_void_p), ("pc_reg", ctypes.c_int64), ("repeats", _u32p),
                ("last_repeat", ctypes.c_void_p), ("last_pc", ctypes.c_uint64), ("last_size", ctypes.c_uint32),
                ("last_stride", ctypes.c_uint32), ("mode_reg", ctypes.c_int64), ("modes", _u64p)]


_lib.bd_stream_rehash.argtypes = [ctypes.POINTER(_TraceStream)]
_lib.bd_stream_rehash.restype = None
_lib.bd_encode_runs.restype = ctypes.c_uint64
_lib.bd_encode_runs.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                ctypes.c_uint64, ctypes.c_void_p] + [ctypes.c_void_p] * 5
_lib.bd_expand_runs.restype = ctypes.c_uint64
_lib.bd_expand_runs.argtypes = ([ctypes.c_void_p] * 4 + [ctypes.c_uint64] + [ctypes.c_void_p] * 6 + [ctypes.c_uint64]
                                + [ctypes.c_void_p] * 7)


class BlockRuns:
    """A block stream cut into runs of a repeated pattern (see `RunEncoder.encode`)."""

    __slots__ = ("first", "reps", "span", "starts", "lengths")

    def __init__(self, first, reps, span, starts, lengths) -> None:
        self.first, self.reps, self.span, self.starts, self.lengths = first, reps, span, starts, lengths


class RunEncoder:
    """Cuts block streams into loop runs (C `bd_encode_runs`), reusing its buffers between calls."""

    def __init__(self) -> None:
        self._last = np.full(1 << 10, np.iinfo(np.uint64).max, np.uint64)  # per block id; kept all-ones
        self._out = [np.empty(0, np.uint64) for _ in range(5)]

    def encode(self, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray, end: int,
               ids_known: int) -> BlockRuns:
        """Run k repeats entries starts[k] .. starts[k]+lengths[k]-1 `reps[k]` times from seq
        `first[k]`, `span[k]` numbers apart (fresh arrays). `ids_known`: every id is below it."""
        if len(self._last) < ids_known:
            self._last = np.full(max(ids_known, 2 * len(self._last)), np.iinfo(np.uint64).max, np.uint64)
        n = len(ids)
        if len(self._out[0]) < n:
            self._out = [np.empty(n, np.uint64) for _ in range(5)]
        ids = np.ascontiguousarray(ids, np.uint32)
        seqs = np.ascontiguousarray(seqs, np.uint64)
        repeats = np.ascontiguousarray(repeats, np.uint32)
        count = _lib.bd_encode_runs(ids.ctypes.data, seqs.ctypes.data, repeats.ctypes.data, n, end,
                                    self._last.ctypes.data,
                                    *(a.ctypes.data for a in self._out))
        starts, lengths, reps, first, span = (a[:count].copy() for a in self._out)
        return BlockRuns(first, reps, span, starts, lengths)

    def rows(self, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray, end: int, ids_known: int,
             strides: np.ndarray | None, executions: np.ndarray) -> tuple[dict, dict]:
        """The stream as `block_steps` and `block_runs` columns (C `bd_expand_runs`: entries run once
        are steps, the rest runs), adding each id's executions to `executions` (uint64, in place)."""
        ids = np.ascontiguousarray(ids, np.uint32)
        seqs = np.ascontiguousarray(seqs, np.uint64)
        repeats = np.ascontiguousarray(repeats, np.uint32)
        runs = self.encode(ids, seqs, repeats, end, ids_known)
        if strides is not None:
            strides = np.ascontiguousarray(strides, np.uint32)
        assert executions.dtype == np.uint64 and executions.flags.c_contiguous and len(executions) >= ids_known
        n = len(ids)
        steps = {"seq": np.empty(n, np.uint64), "id": np.empty(n, np.uint32)}
        loops = {"seq": np.empty(n, np.uint64), "reps": np.empty(n, np.int64), "span": np.empty(n, np.uint64),
                 "id": np.empty(n, np.uint32)}
        nsteps = ctypes.c_uint64(0)
        count = _lib.bd_expand_runs(ids.ctypes.data, seqs.ctypes.data, repeats.ctypes.data,
                                    None if strides is None else strides.ctypes.data, len(runs.reps),
                                    *(a.ctypes.data for a in (runs.starts, runs.lengths, runs.reps, runs.first,
                                                              runs.span)),
                                    executions.ctypes.data, n, steps["seq"].ctypes.data, steps["id"].ctypes.data,
                                    ctypes.addressof(nsteps), *(a.ctypes.data for a in loops.values()))
        if count == np.iinfo(np.uint64).max:  # cannot happen: runs cover disjoint stretches of the stream
            raise RuntimeError("block runs expand to more rows than the stream has entries")
        # copies: slices would keep every buffer's full-size arrays alive until the rows are inserted
        return ({name: a[:nsteps.value].copy() for name, a in steps.items()},
                {name: a[:count].copy() for name, a in loops.items()})


def _nothing() -> None:
    pass


class TraceStream:
    """Blocks (as ids into a table of distinct (pc, size)) and memory accesses, numbered in C.

    `sink(ids, seqs, repeats, end, accesses, release)` receives each batch:
    block ids and seqs in execution order and how often each ran back to back
    (entry k: block ids[k] ran repeats[k] times from seq seqs[k], its stride
    apart), `end` (the next seq: it closes the last entry's step), the
    accesses (a dict of MEM_COLUMNS arrays) and `release`. The block arrays
    are views of a buffer the stream no longer writes (it switched to a spare
    one), so another thread may read them; `release()` gives the buffer back.
    `fresh(id)`, if given, runs once per new block id before the block is
    counted, and may set `strides[id]`. With `mode_reg`, `modes[id]` is that
    register's value when block `id` first ran (as in `BlockCounter`).
    """

    def __init__(self, uc, sink: Callable, fresh: Callable[[int], None] | None = None,
                 capacity: int = 1 << 18, mem_capacity: int = 1 << 16, pc_reg: int = 0,
                 mode_reg: int | None = None) -> None:
        self.ids = np.zeros(capacity, np.uint32)
        self.seqs = np.zeros(capacity, np.uint64)
        self.repeats = np.zeros(capacity, np.uint32)
        self._spare: list[tuple[np.ndarray, ...]] = []
        self.mem = {name: np.zeros(mem_capacity, kind) for name, kind in MEM_COLUMNS.items()}
        self._sink = sink
        self._fresh = fresh
        self._callbacks = [FLUSH(_guarded(uc, self.drain)), FLUSH(_guarded(uc, self._grow)),
                           FLUSH(_guarded(uc, self._new)) if fresh else FLUSH()]
        self._slots = np.zeros(1 << 10, _SLOT_DTYPE)
        self._table = self._allocate(256)
        self.state = _TraceStream(
            0, _ptr(self.ids, _u32p), _ptr(self.seqs, _u64p), 0, capacity, self._callbacks[0],
            self._slots.ctypes.data, len(self._slots) - 1, *self._table_pointers(), 0, 256,
            self._callbacks[1], self._callbacks[2], *(a.ctypes.data for a in self.mem.values()), 0,
            mem_capacity,
            reg_read_address(), pc_reg, _ptr(self.repeats, _u32p), None, NO_BLOCK, 0, 0,
            -1 if mode_reg is None else mode_reg)
        self._modes = np.zeros(256 if mode_reg is not None else 0, np.uint64)
        if mode_reg is not None:
            self.state.modes = _ptr(self._modes, _u64p)

    @staticmethod
    def _allocate(capacity: int):
        return np.zeros(capacity, np.uint64), np.zeros(capacity, np.uint32), np.zeros(capacity, np.uint32)

    def _table_pointers(self):
        pcs, sizes, strides = self._table
        return _ptr(pcs, _u64p), _ptr(sizes, _u32p), _ptr(strides, _u32p)

    def _grow(self) -> None:
        state = self.state
        if state.nids >= state.idcap:
            bigger = self._allocate(state.idcap * 2)
            for new, old in zip(bigger, self._table):
                new[:len(old)] = old
            self._table = bigger
            state.pcs, state.sizes, state.strides = self._table_pointers()
            if len(self._modes):
                modes = np.zeros(state.idcap * 2, np.uint64)
                modes[:len(self._modes)] = self._modes
                self._modes, state.modes = modes, _ptr(modes, _u64p)
            state.idcap *= 2
        if (state.nids + 1) * 2 > state.mask:
            self._slots = np.zeros(len(self._slots) * 2, _SLOT_DTYPE)
            state.slots, state.mask = self._slots.ctypes.data, len(self._slots) - 1
            _lib.bd_stream_rehash(ctypes.byref(state))

    def _new(self) -> None:
        self._fresh(self.state.nids - 1)

    @property
    def blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """(pc, size) of every block id so far (views: valid until the table grows)."""
        n = self.state.nids
        return self._table[0][:n], self._table[1][:n]

    @property
    def strides(self) -> np.ndarray:
        return self._table[2]

    @property
    def modes(self) -> np.ndarray | None:
        """Mode register value per block id (see the class docstring); None without `mode_reg`."""
        return self._modes[:self.state.nids] if len(self._modes) else None

    def take_seq(self) -> int:
        """Number a live event (a syscall...): the next seq, after every block and access so far."""
        state = self.state
        seq = state.seq
        state.seq = seq + 1
        state.last_pc = NO_BLOCK  # the next block starts a new entry
        return seq

    def drain(self) -> None:
        state = self.state
        n, mn = state.n, state.mn
        if n or mn:
            buffers = self.ids, self.seqs, self.repeats
            if n:  # write on into a spare buffer (a new one if all are still being read)
                self.ids, self.seqs, self.repeats = (self._spare.pop() if self._spare else
                                                     tuple(np.empty_like(b) for b in buffers))
                state.ids, state.seqs = _ptr(self.ids, _u32p), _ptr(self.seqs, _u64p)
                state.repeats = _ptr(self.repeats, _u32p)
            state.n = state.mn = 0
            state.last_pc = NO_BLOCK
            self._sink(*(b[:n] for b in buffers), state.seq, {k: a[:mn].copy() for k, a in self.mem.items()},
                       (lambda: self._spare.append(buffers)) if n else _nothing)


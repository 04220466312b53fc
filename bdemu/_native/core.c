/* bdemu's native core: Unicorn hook functions that count and buffer events in C.
 *
 * Python registers these functions with uc_hook_add (through ctypes) and passes
 * one of the structs below as user_data; the arrays they point to are numpy
 * arrays owned by Python. When a buffer fills, the hook calls the struct's
 * `flush` callback (a ctypes callback: it takes the GIL, hands the batch to the
 * plugins and resets `n`) and the guest simply continues: no emu_stop, no
 * restart. The extension does not link against libunicorn; the one Unicorn
 * function it calls (uc_reg_read, for the pc of a memory access) arrives as a
 * function pointer.
 *
 * The struct layouts are mirrored by ctypes Structures in bdemu/_native/__init__.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <time.h>

typedef void (*flush_fn)(void *self);
typedef int (*reg_read_fn)(void *uc, int regid, void *value);

typedef struct {
    uint64_t *pcs;
    uint32_t *sizes;
    uint64_t n;
    uint64_t cap;
    flush_fn flush;
} block_buffer;

typedef struct {
    uint64_t *pcs;
    uint32_t *sizes;
    uint64_t *counts;
    uint64_t mask;  /* capacity - 1, capacity a power of two */
    uint64_t used;
    flush_fn grow;  /* called when the table is half full: Python allocates, bd_table_rehash moves */
    /* The block counted last and its slot, so a block that runs again (a loop) skips the hash
     * lookup. last_size 0 means none: Unicorn never reports a block of size 0 to block hooks. */
    uint64_t last_pc;
    uint64_t last_slot;
    uint32_t last_size;
    /* ISAs with two instruction sets (ARM/Thumb): the value of register mode_reg when each block
     * first ran, so its code can be decoded in the right one later. modes NULL: not wanted. */
    reg_read_fn reg_read;
    int64_t mode_reg;
    uint64_t *modes;
} block_table;

typedef struct {
    uint64_t pc;
    uint64_t address;
    uint64_t value;
    uint32_t size;
    uint32_t write;
} mem_record;

typedef struct {
    mem_record *records;
    uint64_t n;
    uint64_t cap;
    flush_fn flush;
    reg_read_fn reg_read;
    int64_t pc_reg;
} mem_buffer;

/* UC_HOOK_BLOCK: append (pc, size) to the ordered block stream. */
void bd_block_buffer(void *uc, uint64_t address, uint32_t size, block_buffer *b)
{
    (void)uc;
    uint64_t n = b->n;
    b->pcs[n] = address;
    b->sizes[n] = size;
    b->n = ++n;
    if (n >= b->cap)
        b->flush(b);
}

static inline uint64_t slot_of(uint64_t address, uint64_t mask)
{
    uint64_t h = address * 0x9E3779B97F4A7C15ull;
    return (h ^ (h >> 29)) & mask;
}

static void table_insert(block_table *t, uint64_t address, uint32_t size, uint64_t count, uint64_t mode)
{
    uint64_t mask = t->mask, i = slot_of(address, mask);
    while (t->counts[i] != 0) {
        if (t->pcs[i] == address && t->sizes[i] == size) {
            t->counts[i] += count;
            return;
        }
        i = (i + 1) & mask;
    }
    t->pcs[i] = address;
    t->sizes[i] = size;
    t->counts[i] = count;
    if (t->modes)
        t->modes[i] = mode;
    t->used++;
}

/* The register's value now, for the mode of a block running for the first time. */
static inline uint64_t read_mode(void *uc, reg_read_fn reg_read, int64_t regid)
{
    uint64_t value = 0;
    reg_read(uc, (int)regid, &value);
    return value;
}

/* UC_HOOK_BLOCK: count executions per distinct (pc, size) in an open-addressing table.
 * Most executions repeat the block just counted (a one-block loop): one compare, one increment. */
void bd_block_count(void *uc, uint64_t address, uint32_t size, block_table *t)
{
    if (address == t->last_pc && size == t->last_size) {
        t->counts[t->last_slot]++;
        return;
    }
    uint64_t mask = t->mask, i = slot_of(address, mask);
    t->last_pc = address;
    t->last_size = size;
    while (t->counts[i] != 0) {
        if (t->pcs[i] == address && t->sizes[i] == size) {
            t->counts[i]++;
            t->last_slot = i;
            return;
        }
        i = (i + 1) & mask;
    }
    t->pcs[i] = address;
    t->sizes[i] = size;
    t->counts[i] = 1;
    if (t->modes)
        t->modes[i] = read_mode(uc, t->reg_read, t->mode_reg);
    t->last_slot = i;
    if (++t->used * 2 > mask)
        t->grow(t);
}

/* Move every entry of `old` into the (empty, larger) table `new`. */
void bd_table_rehash(block_table *old, block_table *new)
{
    for (uint64_t i = 0; i <= old->mask; i++)
        if (old->counts[i] != 0)
            table_insert(new, old->pcs[i], old->sizes[i], old->counts[i], old->modes ? old->modes[i] : 0);
}

/* The slot of block (pc, size) in the table, or -1 if it never ran. */
int64_t bd_table_find(const block_table *t, uint64_t pc, uint32_t size)
{
    uint64_t mask = t->mask, i = slot_of(pc, mask);
    while (t->counts[i] != 0) {
        if (t->pcs[i] == pc && t->sizes[i] == size)
            return (int64_t)i;
        i = (i + 1) & mask;
    }
    return -1;
}

/* UC_HOOK_MEM_READ_AFTER | UC_HOOK_MEM_WRITE: append (pc, address, size, value, is_write). */
void bd_mem_buffer(void *uc, int type, uint64_t address, int size, int64_t value, mem_buffer *b)
{
    mem_record *r = &b->records[b->n];
    uint64_t pc = 0;
    b->reg_read(uc, (int)b->pc_reg, &pc);
    r->pc = pc;
    r->address = address;
    r->value = (uint64_t)value;
    r->size = (uint32_t)size;
    r->write = (type == 17); /* UC_MEM_WRITE */
    if (++b->n >= b->cap)
        b->flush(b);
}

/* ---- The trace stream: `bdemu record`'s whole hot path in C. ----
 *
 * One struct is the user data of both a UC_HOOK_BLOCK and (with --mem) a
 * UC_HOOK_MEM_READ_AFTER|UC_HOOK_MEM_WRITE hook, so blocks and accesses share
 * one `seq` counter and their order is exact. A block is stored as a uint32 id
 * into a per-recording table of distinct (pc, size) pairs plus its seq; the
 * table is an open-addressing hash kept here, its arrays owned by Python.
 * Each block advances `seq` by its id's stride (1, or 1 + its instruction
 * count with --insns: Python fills `strides[id]` from `fresh`, called once per
 * new id); each access by 1. A block that runs again at once, with nothing
 * numbered in between, only increments its entry's `repeats`: a one-block loop
 * costs no hash lookup and no buffer space. Whatever else takes a number (an
 * access, a live event from Python) or empties the buffer sets `last_pc` to
 * NO_BLOCK, so the repeat test is two compares.
 */
#define NO_BLOCK UINT64_MAX

typedef struct {
    uint64_t pc;
    uint32_t size;
    uint32_t id1;          /* id + 1; 0: empty slot */
} block_slot;

typedef struct {
    uint64_t seq;          /* the next event's number */
    uint32_t *ids;         /* block stream: id and seq of each executed block */
    uint64_t *seqs;
    uint64_t n, cap;
    flush_fn flush;        /* block or access buffer full */
    block_slot *slots;     /* hash of (pc, size) -> id */
    uint64_t mask;
    uint64_t *pcs;         /* id -> pc, size, seq stride */
    uint32_t *sizes;
    uint32_t *strides;
    uint64_t nids, idcap;
    flush_fn grow;         /* nids reached idcap or the hash is half full: Python enlarges */
    flush_fn fresh;        /* optional: a new id appeared (Python sets strides[id]) */
    uint64_t *mem_seq;     /* accesses, one array per column */
    uint64_t *mem_pc;
    uint64_t *mem_address;
    uint64_t *mem_value;
    uint8_t *mem_size;
    uint8_t *mem_write;
    uint64_t mn, mcap;
    reg_read_fn reg_read;
    int64_t pc_reg;
    uint32_t *repeats;     /* block stream: how often the block ran back to back (a one-block loop) */
    uint32_t *last_repeat; /* &repeats[n - 1]: the entry a repeat of the last block counts in */
    uint64_t last_pc;      /* the last block; NO_BLOCK once anything else was numbered or the buffer changed */
    uint32_t last_size, last_stride;
    int64_t mode_reg;      /* as in block_table: id -> that register's value when the block first ran */
    uint64_t *modes;       /* NULL: not wanted */
} trace_stream;

static inline uint64_t slot_of_block(uint64_t pc, uint32_t size, uint64_t mask)
{
    uint64_t h = (pc ^ ((uint64_t)size << 48)) * 0x9E3779B97F4A7C15ull;
    return (h ^ (h >> 29)) & mask;
}

/* Put id into the hash table (which has room). */
static void stream_place(trace_stream *s, uint32_t id)
{
    uint64_t i = slot_of_block(s->pcs[id], s->sizes[id], s->mask);
    while (s->slots[i].id1 != 0)
        i = (i + 1) & s->mask;
    s->slots[i].pc = s->pcs[id];
    s->slots[i].size = s->sizes[id];
    s->slots[i].id1 = id + 1;
}

/* After Python gave the stream bigger (zeroed) slots: hash every known id again. */
void bd_stream_rehash(trace_stream *s)
{
    for (uint64_t id = 0; id < s->nids; id++)
        stream_place(s, (uint32_t)id);
}

/* A block that is not a repeat of the last one: look up its id, append an entry. Kept out
 * of line so the repeat path of bd_trace_block saves no registers. */
static void __attribute__((noinline)) trace_new_entry(void *uc, trace_stream *s, uint64_t address, uint32_t size)
{
    uint64_t n = s->n;
    uint64_t mask = s->mask, i = slot_of_block(address, size, mask);
    uint32_t id;
    for (;;) {
        block_slot *slot = &s->slots[i];
        if (slot->pc == address && slot->size == size && slot->id1 != 0) {
            id = slot->id1 - 1;
            break;
        }
        if (slot->id1 == 0) {  /* first execution of this block */
            if (s->nids >= s->idcap || (s->nids + 1) * 2 > mask)
                s->grow(s);
            id = (uint32_t)s->nids++;
            s->pcs[id] = address;
            s->sizes[id] = size;
            s->strides[id] = 1;
            if (s->modes)
                s->modes[id] = read_mode(uc, s->reg_read, s->mode_reg);
            stream_place(s, id);
            if (s->fresh)
                s->fresh(s);
            break;
        }
        i = (i + 1) & mask;
    }
    uint32_t stride = s->strides[id];
    s->ids[n] = id;
    s->seqs[n] = s->seq;
    s->repeats[n] = 1;
    s->seq += stride;
    s->last_repeat = &s->repeats[n];
    s->last_pc = address;
    s->last_size = size;
    s->last_stride = stride;
    s->n = ++n;
    if (n >= s->cap)
        s->flush(s);
}

/* UC_HOOK_BLOCK: the block's id and seq into the stream. */
void bd_trace_block(void *uc, uint64_t address, uint32_t size, trace_stream *s)
{
    /* The same block again and nothing numbered since: count it in the last entry. */
    if (address == s->last_pc && size == s->last_size && *s->last_repeat != UINT32_MAX) {
        ++*s->last_repeat;
        s->seq += s->last_stride;
        return;
    }
    trace_new_entry(uc, s, address, size);
}

/* UC_HOOK_MEM_READ_AFTER | UC_HOOK_MEM_WRITE: the access, numbered after the block that makes it. */
void bd_trace_mem(void *uc, int type, uint64_t address, int size, int64_t value, trace_stream *s)
{
    uint64_t m = s->mn, pc = 0;
    s->reg_read(uc, (int)s->pc_reg, &pc);
    s->mem_seq[m] = s->seq++;
    s->mem_pc[m] = pc;
    s->mem_address[m] = address;
    s->mem_value[m] = (uint64_t)value;
    s->mem_size[m] = (uint8_t)size;
    s->mem_write[m] = (type == 17); /* UC_MEM_WRITE */
    s->last_pc = NO_BLOCK;
    if ((s->mn = m + 1) >= s->mcap)
        s->flush(s);
}

/* The stop gate (bdemu/stopgate.py says why): stop the engine at a block's start, when another
 * thread raised `requested` or the deadline (CLOCK_MONOTONIC ns, 0: none) passed; the clock is
 * read every GATE_CHECK_EVERY blocks. */
typedef int (*emu_stop_fn)(void *uc);

typedef struct {
    volatile int32_t requested;
    uint32_t countdown;
    uint64_t deadline_ns;
    volatile int32_t fired;  /* 1: the deadline stopped it, 2: a request did */
    int32_t pad;
    emu_stop_fn emu_stop;
} stop_gate;

#define GATE_CHECK_EVERY 512

void bd_stop_gate(void *uc, uint64_t address, uint32_t size, stop_gate *g)
{
    (void)address; (void)size;
    if (g->requested) {
        g->requested = 0;
        g->fired = 2;
        g->emu_stop(uc);
        return;
    }
    if (g->deadline_ns && --g->countdown == 0) {
        struct timespec now;
        g->countdown = GATE_CHECK_EVERY;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec >= g->deadline_ns) {
            g->deadline_ns = 0;
            g->fired = 1;
            g->emu_stop(uc);
        }
    }
}

/* ---- Function hooks: blocks starting at watched addresses call back into Python. ----
 * An open-addressing set of addresses (0: empty slot), owned by Python, which grows it and
 * may add to it at any time: every block is tested, so an address added mid-run needs no
 * retranslation. A hit stores the address and calls `hit`. */
typedef struct {
    uint64_t *addresses;
    uint64_t mask;
    uint64_t hit_address;
    flush_fn hit;
} address_set;

void bd_block_watch(void *uc, uint64_t address, uint32_t size, address_set *s)
{
    (void)uc; (void)size;
    uint64_t i = slot_of(address, s->mask);
    for (uint64_t found; (found = s->addresses[i]) != 0; i = (i + 1) & s->mask) {
        if (found == address) {
            s->hit_address = address;
            s->hit(s);
            return;
        }
    }
}

/* Add address (nonzero) to the set, which has room; 0 if it was there already. */
int bd_watch_add(address_set *s, uint64_t address)
{
    uint64_t i = slot_of(address, s->mask);
    for (uint64_t found; (found = s->addresses[i]) != 0; i = (i + 1) & s->mask)
        if (found == address)
            return 0;
    s->addresses[i] = address;
    return 1;
}

/* UC_HOOK_BLOCK that does nothing: the cost floor of a native hook (benchmarks). */
void bd_block_nop(void *uc, uint64_t address, uint32_t size, void *user)
{
    (void)uc; (void)address; (void)size; (void)user;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bdemu._native._core",
    "bdemu's native hook functions; loaded with ctypes from this module's file.", -1, NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModule_Create(&module);
}

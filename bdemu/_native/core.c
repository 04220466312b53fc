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

static void table_insert(block_table *t, uint64_t address, uint32_t size, uint64_t count)
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
    t->used++;
}

/* UC_HOOK_BLOCK: count executions per distinct (pc, size) in an open-addressing table. */
void bd_block_count(void *uc, uint64_t address, uint32_t size, block_table *t)
{
    (void)uc;
    uint64_t mask = t->mask, i = slot_of(address, mask);
    while (t->counts[i] != 0) {
        if (t->pcs[i] == address && t->sizes[i] == size) {
            t->counts[i]++;
            return;
        }
        i = (i + 1) & mask;
    }
    t->pcs[i] = address;
    t->sizes[i] = size;
    t->counts[i] = 1;
    if (++t->used * 2 > mask)
        t->grow(t);
}

/* Move every entry of `old` into the (empty, larger) table `new`. */
void bd_table_rehash(block_table *old, block_table *new)
{
    for (uint64_t i = 0; i <= old->mask; i++)
        if (old->counts[i] != 0)
            table_insert(new, old->pcs[i], old->sizes[i], old->counts[i]);
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

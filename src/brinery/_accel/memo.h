/* brinery._accel: the pickler's memo, a hash table from object address to
 * memo index.
 *
 * Open addressing on the object's address. The first probe keeps address
 * order (objects allocated one after the other land in neighbouring
 * slots, so a pickle of many fresh objects walks the table instead of
 * jumping around it); collisions then probe like a dict does.
 *
 * The table owns a reference to every key, as CPython's pickler does: an
 * object created while pickling (a reduce value, a state dict) must stay
 * alive until the end of the dump, or its address could be reused by
 * another object and give a false memo hit.
 *
 * The first MEMO_SMALL entries live inline in the struct, in a plain
 * array searched linearly (`mask` is 0 then): pickling a small object
 * neither allocates nor clears a table. Large tables are handed back to a
 * `memo_spares` store (owned by the module state) when cleared, already
 * zeroed, so that dumping similar data again reuses them instead of
 * asking the system for fresh pages every time.
 */
#ifndef BRINERY_MEMO_H
#define BRINERY_MEMO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define MEMO_SMALL 16              /* inline entries, searched linearly */
#define MEMO_SPARE_MIN_BITS 12     /* spare tables: 2**12 .. 2**20 slots */
#define MEMO_SPARE_MAX_BITS 20

typedef struct {
    PyObject *key;                 /* owned; NULL for an empty slot */
    Py_ssize_t value;              /* the memo index */
} memo_entry;

/* Zeroed tables kept for reuse, one per size. */
typedef struct {
    memo_entry *tables[MEMO_SPARE_MAX_BITS - MEMO_SPARE_MIN_BITS + 1];
} memo_spares;

typedef struct {
    memo_entry *table;             /* `small` or a PyMem block */
    size_t mask;                   /* number of slots - 1; 0: linear */
    Py_ssize_t used;               /* number of keys */
    memo_spares *spares;           /* may be NULL */
    memo_entry small[MEMO_SMALL];
} memo_table;

void memo_init(memo_table *memo, memo_spares *spares);
/* Drop every key (their references); keep no storage. */
void memo_clear(memo_table *memo);
/* memo_clear for a memo about to be discarded, which nothing else can
 * reach any more: the table is not reset. */
void memo_release(memo_table *memo);
/* Insert key -> value (key not present yet). 0, or -1 with MemoryError. */
int memo_insert(memo_table *memo, PyObject *key, Py_ssize_t value);
/* key -> value, replacing the value if key is present. */
int memo_set(memo_table *memo, PyObject *key, Py_ssize_t value);
int memo_traverse(memo_table *memo, visitproc visit, void *arg);
void memo_spares_free(memo_spares *spares);

#define MEMO_PERTURB_SHIFT 5

static inline size_t
memo_hash(const void *key)
{
    /* objects are 16-byte aligned: the low 4 bits say nothing */
    return (size_t)((uintptr_t)key >> 4);
}

/* The entries to scan: table[0 .. *n), skipping NULL keys. */
static inline memo_entry *
memo_slots(const memo_table *memo, size_t *n)
{
    *n = memo->mask == 0 ? (size_t)memo->used : memo->mask + 1;
    return memo->table;
}

/* The memo index of key, or -1. */
static inline Py_ssize_t
memo_get(const memo_table *memo, const PyObject *key)
{
    size_t mask = memo->mask;
    if (mask == 0) {
        for (Py_ssize_t k = 0; k < memo->used; k++) {
            if (memo->small[k].key == key) {
                return memo->small[k].value;
            }
        }
        return -1;
    }
    size_t hash = memo_hash(key);
    size_t i = hash & mask;
    const memo_entry *e = &memo->table[i];
    if (e->key == key) {
        return e->value;
    }
    if (e->key == NULL) {
        return -1;
    }
    for (size_t perturb = hash;;) {
        perturb >>= MEMO_PERTURB_SHIFT;
        i = (i * 5 + perturb + 1) & mask;
        e = &memo->table[i];
        if (e->key == key) {
            return e->value;
        }
        if (e->key == NULL) {
            return -1;
        }
    }
}

#endif /* BRINERY_MEMO_H */

/* brinery._accel: the pickler's memo, a hash table from object address to
 * memo index.
 *
 * Open addressing with linear probing on the object's address. The table
 * owns a reference to every key, as CPython's pickler does: an object
 * created while pickling (a reduce value, a state dict) must stay alive
 * until the end of the dump, or its address could be reused by another
 * object and give a false memo hit.
 *
 * A small table lives inline in the struct, so that pickling a small
 * object allocates nothing for the memo.
 */
#ifndef BRINERY_MEMO_H
#define BRINERY_MEMO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define MEMO_SMALL 32            /* inline slots (a power of two) */

typedef struct {
    PyObject *key;               /* owned; NULL for an empty slot */
    Py_ssize_t value;            /* the memo index */
} memo_entry;

typedef struct {
    memo_entry *table;           /* `small` or a PyMem block */
    size_t mask;                 /* number of slots - 1 */
    unsigned int shift;          /* 64 - log2(number of slots) */
    Py_ssize_t used;             /* number of keys */
    memo_entry small[MEMO_SMALL];
} memo_table;

void memo_init(memo_table *memo);
/* Drop every key (their references) and free the storage. */
void memo_clear(memo_table *memo);
/* Insert key -> value (key not present yet). 0, or -1 with MemoryError. */
int memo_insert(memo_table *memo, PyObject *key, Py_ssize_t value);
/* key -> value, replacing the value if key is present. */
int memo_set(memo_table *memo, PyObject *key, Py_ssize_t value);
int memo_traverse(memo_table *memo, visitproc visit, void *arg);

static inline size_t
memo_slot(const memo_table *memo, const void *key)
{
    /* Fibonacci hashing: addresses are multiples of 16, so their low bits
     * carry nothing; the top bits of the product mix all of them. */
    return (size_t)(((uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15ull)
                    >> memo->shift);
}

/* The memo index of key, or -1. */
static inline Py_ssize_t
memo_get(const memo_table *memo, const PyObject *key)
{
    size_t i = memo_slot(memo, key);
    for (;;) {
        const memo_entry *e = &memo->table[i];
        if (e->key == key) {
            return e->value;
        }
        if (e->key == NULL) {
            return -1;
        }
        i = (i + 1) & memo->mask;
    }
}

#endif /* BRINERY_MEMO_H */

/* brinery._accel: the pickler's memo table (see memo.h). */
#include "memo.h"

#include <string.h>

static void
memo_reset_small(memo_table *memo)
{
    memset(memo->small, 0, sizeof(memo->small));
    memo->table = memo->small;
    memo->mask = MEMO_SMALL - 1;
    memo->shift = 64 - 5;          /* log2(MEMO_SMALL) == 5 */
    memo->used = 0;
}

void
memo_init(memo_table *memo)
{
    memo_reset_small(memo);
}

void
memo_clear(memo_table *memo)
{
    memo_entry *table = memo->table;
    if (table == NULL) {             /* never initialised (zeroed) */
        memo_reset_small(memo);
        return;
    }
    if (memo->used == 0 && table == memo->small) {
        return;
    }
    /* Detach the keys first: a key's destructor may run code that uses
     * the memo again. */
    size_t n = memo->mask + 1;
    if (table == memo->small) {
        memo_entry saved[MEMO_SMALL];
        memcpy(saved, table, sizeof(saved));
        memo_reset_small(memo);
        for (size_t i = 0; i < MEMO_SMALL; i++) {
            Py_XDECREF(saved[i].key);
        }
        return;
    }
    memo_reset_small(memo);
    for (size_t i = 0; i < n; i++) {
        Py_XDECREF(table[i].key);
    }
    PyMem_Free(table);
}

static int
memo_resize(memo_table *memo, size_t nslots)
{
    memo_entry *old = memo->table;
    size_t old_n = memo->mask + 1;
    memo_entry *table = PyMem_Calloc(nslots, sizeof(memo_entry));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    unsigned int bits = 0;
    while (((size_t)1 << bits) < nslots) {
        bits++;
    }
    memo->table = table;
    memo->mask = nslots - 1;
    memo->shift = 64 - bits;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i].key != NULL) {
            size_t j = memo_slot(memo, old[i].key);
            while (table[j].key != NULL) {
                j = (j + 1) & memo->mask;
            }
            table[j] = old[i];
        }
    }
    if (old != memo->small) {
        PyMem_Free(old);
    }
    return 0;
}

int
memo_insert(memo_table *memo, PyObject *key, Py_ssize_t value)
{
    /* Keep the load factor at most 1/2: probes stay short. */
    if ((size_t)(memo->used + 1) * 2 > memo->mask + 1) {
        size_t n = (memo->mask + 1) * 2;
        if (n > PY_SSIZE_T_MAX / sizeof(memo_entry) / 2) {
            PyErr_NoMemory();
            return -1;
        }
        if (memo_resize(memo, n) < 0) {
            return -1;
        }
    }
    size_t i = memo_slot(memo, key);
    while (memo->table[i].key != NULL) {
        i = (i + 1) & memo->mask;
    }
    Py_INCREF(key);
    memo->table[i].key = key;
    memo->table[i].value = value;
    memo->used++;
    return 0;
}

int
memo_set(memo_table *memo, PyObject *key, Py_ssize_t value)
{
    size_t i = memo_slot(memo, key);
    for (;;) {
        memo_entry *e = &memo->table[i];
        if (e->key == key) {
            e->value = value;
            return 0;
        }
        if (e->key == NULL) {
            return memo_insert(memo, key, value);
        }
        i = (i + 1) & memo->mask;
    }
}

int
memo_traverse(memo_table *memo, visitproc visit, void *arg)
{
    size_t n = memo->mask + 1;
    for (size_t i = 0; i < n; i++) {
        Py_VISIT(memo->table[i].key);
    }
    return 0;
}

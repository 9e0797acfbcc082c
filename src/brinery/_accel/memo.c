/* brinery._accel: the pickler's memo table (see memo.h). */
#include "memo.h"

#include <string.h>

static void
memo_reset_small(memo_table *memo)
{
    memo->table = memo->small;
    memo->mask = 0;
    memo->used = 0;
}

void
memo_init(memo_table *memo, memo_spares *spares)
{
    memo->spares = spares;
    memo_reset_small(memo);
}

static int
size_bits(size_t nslots)
{
    int bits = 0;
    while (((size_t)1 << bits) < nslots) {
        bits++;
    }
    return bits;
}

/* A zeroed table of nslots slots: a spare one if there is, else new. */
static memo_entry *
table_new(memo_table *memo, size_t nslots)
{
    int bits = size_bits(nslots);
    if (memo->spares != NULL && bits >= MEMO_SPARE_MIN_BITS
        && bits <= MEMO_SPARE_MAX_BITS) {
        memo_entry **slot = &memo->spares->tables[bits - MEMO_SPARE_MIN_BITS];
        memo_entry *table = *slot;
        if (table != NULL) {
            *slot = NULL;
            return table;
        }
    }
    memo_entry *table = PyMem_Calloc(nslots, sizeof(memo_entry));
    if (table == NULL) {
        PyErr_NoMemory();
    }
    return table;
}

/* Give back a zeroed table. */
static void
table_release(memo_table *memo, memo_entry *table, size_t nslots)
{
    int bits = size_bits(nslots);
    if (memo->spares != NULL && bits >= MEMO_SPARE_MIN_BITS
        && bits <= MEMO_SPARE_MAX_BITS) {
        memo_entry **slot = &memo->spares->tables[bits - MEMO_SPARE_MIN_BITS];
        if (*slot == NULL) {
            *slot = table;
            return;
        }
    }
    PyMem_Free(table);
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
    if (table == memo->small) {
        memo_entry saved[MEMO_SMALL];
        Py_ssize_t used = memo->used;
        memcpy(saved, table, (size_t)used * sizeof(memo_entry));
        memo_reset_small(memo);
        for (Py_ssize_t i = 0; i < used; i++) {
            Py_DECREF(saved[i].key);
        }
        return;
    }
    size_t n = memo->mask + 1;
    memo_reset_small(memo);
    for (size_t i = 0; i < n; i++) {
        PyObject *key = table[i].key;
        if (key != NULL) {
            table[i].key = NULL;
            Py_DECREF(key);
        }
    }
    table_release(memo, table, n);
}

void
memo_release(memo_table *memo)
{
    memo_entry *table = memo->table;
    size_t n;
    memo_slots(memo, &n);
    for (size_t i = 0; i < n; i++) {
        PyObject *key = table[i].key;
        if (key != NULL) {
            Py_DECREF(key);
        }
    }
    if (table != memo->small) {
        memset(table, 0, n * sizeof(memo_entry));
        table_release(memo, table, n);
    }
    memo_reset_small(memo);
}

static memo_entry *
find_slot(memo_entry *table, size_t mask, const PyObject *key)
{
    size_t hash = memo_hash(key);
    size_t i = hash & mask;
    memo_entry *e = &table[i];
    if (e->key == NULL || e->key == key) {
        return e;
    }
    for (size_t perturb = hash;;) {
        perturb >>= MEMO_PERTURB_SHIFT;
        i = (i * 5 + perturb + 1) & mask;
        e = &table[i];
        if (e->key == NULL || e->key == key) {
            return e;
        }
    }
}

static int
memo_resize(memo_table *memo, size_t nslots)
{
    memo_entry *old = memo->table;
    size_t old_n;
    memo_slots(memo, &old_n);
    memo_entry *table = table_new(memo, nslots);
    if (table == NULL) {
        return -1;
    }
    memo->table = table;
    memo->mask = nslots - 1;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i].key != NULL) {
            *find_slot(table, memo->mask, old[i].key) = old[i];
        }
    }
    if (old != memo->small) {
        memset(old, 0, old_n * sizeof(memo_entry));
        table_release(memo, old, old_n);
    }
    return 0;
}

int
memo_insert(memo_table *memo, PyObject *key, Py_ssize_t value)
{
    if (memo->mask == 0) {
        if (memo->used < MEMO_SMALL) {
            memo->small[memo->used].key = Py_NewRef(key);
            memo->small[memo->used].value = value;
            memo->used++;
            return 0;
        }
        if (memo_resize(memo, 8 * MEMO_SMALL) < 0) {
            return -1;
        }
    }
    /* Keep the load factor at most 2/3 (the table is cleared after each
     * dump: a sparser one costs more to clear than its probes save). Grow
     * fast while small, so that a large memo is rebuilt few times. */
    size_t nslots = memo->mask + 1;
    if ((size_t)(memo->used + 1) * 3 > nslots * 2) {
        size_t n = nslots * (nslots < ((size_t)1 << 14) ? 4 : 2);
        if (n > (size_t)PY_SSIZE_T_MAX / sizeof(memo_entry)) {
            PyErr_NoMemory();
            return -1;
        }
        if (memo_resize(memo, n) < 0) {
            return -1;
        }
    }
    memo_entry *e = find_slot(memo->table, memo->mask, key);
    Py_INCREF(key);
    e->key = key;
    e->value = value;
    memo->used++;
    return 0;
}

int
memo_set(memo_table *memo, PyObject *key, Py_ssize_t value)
{
    if (memo->mask == 0) {
        for (Py_ssize_t k = 0; k < memo->used; k++) {
            if (memo->small[k].key == key) {
                memo->small[k].value = value;
                return 0;
            }
        }
        return memo_insert(memo, key, value);
    }
    memo_entry *e = find_slot(memo->table, memo->mask, key);
    if (e->key == key) {
        e->value = value;
        return 0;
    }
    return memo_insert(memo, key, value);
}

int
memo_traverse(memo_table *memo, visitproc visit, void *arg)
{
    size_t n;
    memo_entry *table = memo_slots(memo, &n);
    for (size_t i = 0; i < n; i++) {
        Py_VISIT(table[i].key);
    }
    return 0;
}

void
memo_spares_free(memo_spares *spares)
{
    size_t n = sizeof(spares->tables) / sizeof(spares->tables[0]);
    for (size_t i = 0; i < n; i++) {
        PyMem_Free(spares->tables[i]);
        spares->tables[i] = NULL;
    }
}

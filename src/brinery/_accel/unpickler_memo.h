/* brinery._accel: the Unpickler's memo, {index: object}.
 *
 * Picklers number memo entries 0, 1, 2, ..., so the memo is a vector
 * indexed by position. The indices come from the pickle, though, and a
 * 10-byte pickle can say LONG_BINPUT 0x0FFFFFFF: the vector only grows to
 * an index that is near the number of entries already stored (at most
 * MEMO_DENSE_SLACK + 2 * size); any other index goes to a dict, `sparse`.
 * Memory therefore stays proportional to the number of PUTs, whatever the
 * indices say. An index is kept in exactly one of the two places: below
 * `capacity` in the vector, at or above it in the dict. Only the first
 * `extent` slots of the vector are initialised (so an empty memo costs no
 * clearing): a slot at or beyond `extent` is empty.
 *
 * A memo filled from Python (Unpickler.memo = {...}) may also hold an
 * index too large for Py_ssize_t: such keys live in the dict as ints.
 */
#ifndef BRINERY_UNPICKLER_MEMO_H
#define BRINERY_UNPICKLER_MEMO_H

#include "accel.h"

#define MEMO_INLINE 32
#define MEMO_DENSE_SLACK 4096

typedef struct {
    PyObject **vec;             /* vec[i]: the object at index i, or NULL */
    Py_ssize_t capacity;        /* length of vec */
    Py_ssize_t extent;          /* slots of vec initialised */
    Py_ssize_t used;            /* non-NULL entries of vec */
    PyObject *sparse;           /* dict {int: object} for the rest, or NULL */
    PyObject *inline_vec[MEMO_INLINE];
} load_memo_table;

/* An empty memo using its inline storage. */
void load_memo_init(load_memo_table *memo);
/* Remove every entry and give back heap storage. */
void load_memo_clear(load_memo_table *memo);
/* The same for a memo no Python code can reach (a machine on the C
 * stack): no need to detach the entries before releasing them. */
void load_memo_release(load_memo_table *memo);
int load_memo_traverse(load_memo_table *memo, visitproc visit, void *arg);

/* Number of entries, as len() of the equivalent dict. */
static inline Py_ssize_t
load_memo_size(const load_memo_table *memo)
{
    return memo->used + (memo->sparse ? PyDict_GET_SIZE(memo->sparse) : 0);
}

PyObject *memo_lookup_sparse(load_memo_table *memo, Py_ssize_t index);

/* The object at index (borrowed), or NULL: absent (no exception set) or
 * an error (exception set). */
static inline PyObject *
load_memo_lookup(load_memo_table *memo, Py_ssize_t index)
{
    if (index < memo->capacity) {
        return index >= 0 && index < memo->extent ? memo->vec[index] : NULL;
    }
    return memo->sparse ? memo_lookup_sparse(memo, index) : NULL;
}

int load_memo_store_slow(load_memo_table *memo, Py_ssize_t index, PyObject *obj);

/* memo[index] = obj (index >= 0; a new reference to obj is taken). */
static inline int
load_memo_store(load_memo_table *memo, Py_ssize_t index, PyObject *obj)
{
    if (index == memo->extent && index < memo->capacity) {
        /* The usual case: the next index. */
        memo->vec[index] = Py_NewRef(obj);
        memo->extent = index + 1;
        memo->used++;
        return 0;
    }
    if (index < memo->extent) {
        PyObject *old = memo->vec[index];
        memo->vec[index] = Py_NewRef(obj);
        if (old == NULL) {
            memo->used++;
        }
        else {
            Py_DECREF(old);
        }
        return 0;
    }
    return load_memo_store_slow(memo, index, obj);
}

/* memo[key] = obj for an int key >= 0 of any size. */
int load_memo_store_key(load_memo_table *memo, PyObject *key, PyObject *obj);

/* A new dict {index: object}. */
PyObject *memo_to_dict(load_memo_table *memo);
/* Replace the contents with those of a dict of {int >= 0: object}:
 * TypeError for a non-dict or a non-int key, ValueError for a negative
 * key; on error the memo is unchanged. */
int load_memo_assign_dict(load_memo_table *memo, PyObject *dict);

#endif /* BRINERY_UNPICKLER_MEMO_H */

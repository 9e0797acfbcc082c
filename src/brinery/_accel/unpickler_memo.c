/* brinery._accel: the Unpickler's memo (see unpickler_memo.h). */
#include "unpickler_memo.h"

#include <string.h>

void
load_memo_init(load_memo_table *memo)
{
    memo->vec = memo->inline_vec;
    memo->capacity = MEMO_INLINE;
    memo->extent = 0;
    memo->used = 0;
    memo->sparse = NULL;
}

/* Take over the contents of src, leaving it empty. */
static void
memo_move(load_memo_table *dst, load_memo_table *src)
{
    dst->vec = src->vec;
    dst->capacity = src->capacity;
    dst->extent = src->extent;
    dst->used = src->used;
    dst->sparse = src->sparse;
    if (src->vec == src->inline_vec) {
        dst->vec = dst->inline_vec;
        memcpy(dst->inline_vec, src->inline_vec,
               (size_t)src->extent * sizeof(PyObject *));
    }
    load_memo_init(src);
}

void
load_memo_clear(load_memo_table *memo)
{
    /* Detach the entries first: releasing them may run code that looks
     * at this memo again. */
    load_memo_table old;
    if (memo->vec == NULL) {        /* never initialised */
        load_memo_init(memo);
        return;
    }
    memo_move(&old, memo);
    for (Py_ssize_t i = 0; i < old.extent && old.used > 0; i++) {
        if (old.vec[i] != NULL) {
            old.used--;
            Py_DECREF(old.vec[i]);
        }
    }
    if (old.vec != old.inline_vec) {
        PyMem_Free(old.vec);
    }
    Py_XDECREF(old.sparse);
}

void
load_memo_release(load_memo_table *memo)
{
    for (Py_ssize_t i = 0; i < memo->extent; i++) {
        Py_XDECREF(memo->vec[i]);
    }
    if (memo->vec != memo->inline_vec) {
        PyMem_Free(memo->vec);
    }
    Py_CLEAR(memo->sparse);
    memo->vec = memo->inline_vec;
    memo->capacity = MEMO_INLINE;
    memo->extent = 0;
    memo->used = 0;
}

int
load_memo_traverse(load_memo_table *memo, visitproc visit, void *arg)
{
    if (memo->vec != NULL) {
        for (Py_ssize_t i = 0; i < memo->extent; i++) {
            Py_VISIT(memo->vec[i]);
        }
    }
    Py_VISIT(memo->sparse);
    return 0;
}

PyObject *
memo_lookup_sparse(load_memo_table *memo, Py_ssize_t index)
{
    PyObject *key = PyLong_FromSsize_t(index);
    if (key == NULL) {
        return NULL;
    }
    PyObject *obj = PyDict_GetItemWithError(memo->sparse, key);
    Py_DECREF(key);
    return obj;
}

/* Grow the vector to cover index, moving the dict's entries that now fall
 * below the capacity into it. */
static int
memo_grow(load_memo_table *memo, Py_ssize_t index)
{
    Py_ssize_t old_capacity = memo->capacity;
    Py_ssize_t capacity = old_capacity < MEMO_INLINE ? MEMO_INLINE
                                                     : old_capacity;
    while (capacity <= index) {
        capacity *= 2;
    }
    PyObject **vec;
    if ((size_t)capacity > PY_SSIZE_T_MAX / sizeof(PyObject *)) {
        PyErr_NoMemory();
        return -1;
    }
    if (memo->vec == memo->inline_vec) {
        vec = PyMem_Malloc((size_t)capacity * sizeof(PyObject *));
        if (vec != NULL) {
            memcpy(vec, memo->inline_vec,
                   (size_t)memo->extent * sizeof(PyObject *));
        }
    }
    else {
        vec = PyMem_Realloc(memo->vec, (size_t)capacity * sizeof(PyObject *));
    }
    if (vec == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memo->vec = vec;
    memo->capacity = capacity;

    if (memo->sparse == NULL || PyDict_GET_SIZE(memo->sparse) == 0) {
        return 0;
    }
    PyObject *moved = PyList_New(0);
    if (moved == NULL) {
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t it = 0;
    while (PyDict_Next(memo->sparse, &it, &key, &value)) {
        Py_ssize_t i = PyLong_AsSsize_t(key);
        if (i == -1 && PyErr_Occurred()) {
            PyErr_Clear();          /* too large for the vector */
            continue;
        }
        if (i < capacity) {
            while (memo->extent <= i) {
                memo->vec[memo->extent++] = NULL;
            }
            memo->vec[i] = Py_NewRef(value);
            memo->used++;
            if (PyList_Append(moved, key) < 0) {
                Py_DECREF(moved);
                return -1;
            }
        }
    }
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(moved); j++) {
        if (PyDict_DelItem(memo->sparse, PyList_GET_ITEM(moved, j)) < 0) {
            Py_DECREF(moved);
            return -1;
        }
    }
    Py_DECREF(moved);
    return 0;
}

int
load_memo_store_slow(load_memo_table *memo, Py_ssize_t index, PyObject *obj)
{
    if (index < memo->capacity) {
        /* Beyond the initialised slots: clear the gap. */
        while (memo->extent < index) {
            memo->vec[memo->extent++] = NULL;
        }
        memo->vec[memo->extent++] = Py_NewRef(obj);
        memo->used++;
        return 0;
    }
    Py_ssize_t size = load_memo_size(memo);
    if (index < MEMO_DENSE_SLACK
        || (size < PY_SSIZE_T_MAX / 4
            && index < MEMO_DENSE_SLACK + 2 * size)) {
        if (memo_grow(memo, index) < 0) {
            return -1;
        }
        return load_memo_store(memo, index, obj);
    }
    if (memo->sparse == NULL) {
        memo->sparse = PyDict_New();
        if (memo->sparse == NULL) {
            return -1;
        }
    }
    PyObject *key = PyLong_FromSsize_t(index);
    if (key == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(memo->sparse, key, obj);
    Py_DECREF(key);
    return rc;
}

int
load_memo_store_key(load_memo_table *memo, PyObject *key, PyObject *obj)
{
    Py_ssize_t index = PyLong_AsSsize_t(key);
    if (index == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        if (memo->sparse == NULL) {
            memo->sparse = PyDict_New();
            if (memo->sparse == NULL) {
                return -1;
            }
        }
        return PyDict_SetItem(memo->sparse, key, obj);
    }
    return load_memo_store(memo, index, obj);
}

PyObject *
memo_to_dict(load_memo_table *memo)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; memo->vec != NULL && i < memo->extent; i++) {
        if (memo->vec[i] == NULL) {
            continue;
        }
        PyObject *key = PyLong_FromSsize_t(i);
        if (key == NULL || PyDict_SetItem(dict, key, memo->vec[i]) < 0) {
            Py_XDECREF(key);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(key);
    }
    if (memo->sparse != NULL && PyDict_Update(dict, memo->sparse) < 0) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

int
load_memo_assign_dict(load_memo_table *memo, PyObject *dict)
{
    load_memo_table fresh, old;
    PyObject *key, *value;
    Py_ssize_t it = 0;

    if (!PyDict_Check(dict)) {
        PyErr_Format(PyExc_TypeError,
                     "'memo' attribute must be a dict, not %.200s",
                     Py_TYPE(dict)->tp_name);
        return -1;
    }
    load_memo_init(&fresh);
    /* Nothing in the loop runs Python code, so iterating is safe. */
    while (PyDict_Next(dict, &it, &key, &value)) {
        if (!PyLong_Check(key)) {
            PyErr_Format(PyExc_TypeError,
                         "memo keys must be integers, not %.200s",
                         Py_TYPE(key)->tp_name);
            goto error;
        }
        if (_PyLong_Sign(key) < 0) {
            PyErr_SetString(PyExc_ValueError,
                            "memo key must be positive integers.");
            goto error;
        }
        /* An exact int: a subclass could run code when hashed. */
        PyObject *exact = PyNumber_Index(key);
        if (exact == NULL) {
            goto error;
        }
        int rc = load_memo_store_key(&fresh, exact, value);
        Py_DECREF(exact);
        if (rc < 0) {
            goto error;
        }
    }
    memo_move(&old, memo);
    memo_move(memo, &fresh);
    load_memo_clear(&old);
    return 0;

error:
    load_memo_clear(&fresh);
    return -1;
}

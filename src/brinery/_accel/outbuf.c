/* brinery._accel: the pickler's output buffer (see outbuf.h). */
#include "outbuf.h"

/* Room left after a large payload, for the opcodes that follow it. */
#define EXACT_SLACK 256
/* Below this size the buffer grows fourfold; from it on, by a quarter,
 * and it is handed over without shrinking (see outbuf_finish). */
#define LARGE_BUFFER (256 * 1024)

void
outbuf_init(outbuf *b)
{
    b->data = b->small;
    b->len = 0;
    b->cap = OUTBUF_SMALL;
    b->storage = NULL;
}

void
outbuf_free(outbuf *b)
{
    Py_CLEAR(b->storage);
    outbuf_init(b);
}

int
outbuf_grow(outbuf *b, Py_ssize_t extra, int exact)
{
    if (extra > PY_SSIZE_T_MAX / 2 - b->len - EXACT_SLACK) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = b->len + extra;
    /* Fast growth while small (few reallocations, each of which may
     * copy); slow once large, so that the result can be handed over
     * without shrinking (see outbuf_finish). */
    Py_ssize_t cap = exact ? need + EXACT_SLACK
                   : need + (need >= LARGE_BUFFER ? need >> 2 : need * 3);
    if (!exact && cap < 2 * OUTBUF_SMALL) {
        cap = 2 * OUTBUF_SMALL;
    }
    if (b->storage == NULL) {
        PyObject *storage = PyBytes_FromStringAndSize(NULL, cap);
        if (storage == NULL) {
            return -1;
        }
        memcpy(PyBytes_AS_STRING(storage), b->data, (size_t)b->len);
        b->storage = storage;
    }
    else if (_PyBytes_Resize(&b->storage, cap) < 0) {
        /* _PyBytes_Resize freed the storage and the content with it. */
        outbuf_init(b);
        return -1;
    }
    b->data = PyBytes_AS_STRING(b->storage);
    b->cap = cap;
    return 0;
}

PyObject *
outbuf_finish(outbuf *b)
{
    PyObject *result;
    if (b->storage == NULL) {
        result = PyBytes_FromStringAndSize(b->data, b->len);
        b->len = 0;
        return result;
    }
    result = b->storage;
    b->storage = NULL;
    Py_ssize_t len = b->len, cap = b->cap;
    outbuf_init(b);
    if (cap >= LARGE_BUFFER && cap - len <= cap / 4) {
        /* Keep the block as it is: shrinking a large block returns its
         * tail to the system, and the allocator then serves the next
         * pickle of that size from fresh pages (page faults on every
         * call); the tail is at most a fifth of the content. */
        Py_SET_SIZE(result, len);
        PyBytes_AS_STRING(result)[len] = '\0';
        return result;
    }
    if (_PyBytes_Resize(&result, len) < 0) {
        return NULL;
    }
    return result;
}

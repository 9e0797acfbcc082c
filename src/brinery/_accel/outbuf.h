/* brinery._accel: the pickler's output buffer.
 *
 * Output is written into a small inline array first; when it outgrows that
 * array it moves into a bytes object that grows geometrically (realloc, so
 * a large buffer usually grows in place). `outbuf_finish` hands the content
 * over as a bytes object: the storage itself, resized to its length, when
 * there is one, so `dumps` never copies a large pickle once more.
 *
 * The pickler decides what goes where (frames, payloads written straight
 * to a file); this file only manages bytes.
 */
#ifndef BRINERY_OUTBUF_H
#define BRINERY_OUTBUF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define OUTBUF_SMALL 4096

typedef struct {
    char *data;                  /* `small` or the storage's buffer */
    Py_ssize_t len;
    Py_ssize_t cap;
    PyObject *storage;           /* a bytes object of size cap, or NULL */
    char small[OUTBUF_SMALL];
} outbuf;

void outbuf_init(outbuf *b);
/* Release the storage; the buffer is empty (and usable) afterwards. */
void outbuf_free(outbuf *b);
/* Make room for `extra` more bytes: geometric growth when `exact` is 0,
 * just enough (plus a little) when it is 1 (for one large payload). */
int outbuf_grow(outbuf *b, Py_ssize_t extra, int exact);
/* The content as a new bytes object; the buffer is empty afterwards. */
PyObject *outbuf_finish(outbuf *b);

static inline int
outbuf_reserve(outbuf *b, Py_ssize_t extra)
{
    if (b->cap - b->len >= extra) {
        return 0;
    }
    return outbuf_grow(b, extra, 0);
}

/* Room for `extra` bytes, growing for a payload as write_large does. */
static inline int
outbuf_grow_for(outbuf *b, Py_ssize_t extra)
{
    if (b->cap - b->len >= extra) {
        return 0;
    }
    return outbuf_grow(b, extra, extra > b->cap);
}

static inline int
outbuf_write(outbuf *b, const char *s, Py_ssize_t n)
{
    if (outbuf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static inline int
outbuf_put1(outbuf *b, char c)
{
    if (b->len >= b->cap && outbuf_grow(b, 1, 0) < 0) {
        return -1;
    }
    b->data[b->len++] = c;
    return 0;
}

static inline int
outbuf_put2(outbuf *b, char c1, char c2)
{
    if (outbuf_reserve(b, 2) < 0) {
        return -1;
    }
    b->data[b->len] = c1;
    b->data[b->len + 1] = c2;
    b->len += 2;
    return 0;
}

#endif /* BRINERY_OUTBUF_H */

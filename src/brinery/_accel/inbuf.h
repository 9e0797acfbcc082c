/* brinery._accel: the Unpickler's input buffer.
 *
 * The machine reads its pickle from a window of bytes, data[0:end], at a
 * position it keeps itself. For loads() the window is the caller's own
 * buffer (no copy). For a file it is storage owned here, filled from the
 * file's readinto() (or read() when it has none):
 *
 * - a seekable file is read ahead, and the unread rest is given back with
 *   seek() when the load ends, so the file is left right after STOP and
 *   several pickles can be read from one file. The first read of a load
 *   uses peek() when the file has it (a buffered file: what its buffer
 *   already holds, one system call at most, and giving back is a move
 *   inside that buffer); later reads are chunks taken with readinto();
 * - a large bytes or bytearray payload from a file is read straight into
 *   the object returned (inbuf_read_payload), not through the window;
 * - an unseekable file is read exactly as far as the machine needs (a
 *   FRAME's whole length at once). When it has peek() (a pipe or a socket
 *   behind a buffered reader), small needs are met from what peek()
 *   shows, which is taken with read() once it is all needed (or at the
 *   end of the load, up to STOP): calls per buffer, not per opcode.
 *
 * A length declared by the pickle is never trusted: in memory it is
 * checked against the bytes that remain before anything is allocated;
 * from a file, large reads are checked against the file's size (seekable)
 * or grow with the data actually received (unseekable).
 *
 * `base` is the offset of data[0] from where the load started, so an
 * error can say at which byte of the pickle it happened.
 */
#ifndef BRINERY_INBUF_H
#define BRINERY_INBUF_H

#include "accel.h"

#include <string.h>

/* A seekable file is read in chunks of this size. */
#define INBUF_CHUNK (64 * 1024)
/* Needs below this size are met from peek() on an unseekable file
 * (larger ones, FRAMEs, are read exactly). */
#define INBUF_PEEK_MAX 4096
/* Reads of at least this size are checked before memory is reserved. */
#define INBUF_LARGE_READ (1 << 20)

/* Attribute names the input buffer looks up (interned, owned by the
 * unpickler's module state). */
typedef struct {
    PyObject *peek;
    PyObject *readinto;
    PyObject *read;
    PyObject *readline;
    PyObject *seekable;
    PyObject *seek;
    PyObject *tell;
    PyObject *release;
} inbuf_names;

/* getattr(obj, name) where only AttributeError means "absent": returns 1
 * and sets *result, 0 with *result NULL, or -1 with an exception set. */
static inline int
inbuf_lookup_attr(PyObject *obj, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, result);
#else
    return _PyObject_LookupAttr(obj, name, result);
#endif
}

/* Take the pending exception (normalized), leaving none set; NULL when
 * there is none. */
static inline PyObject *
inbuf_take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Make exc (a reference, stolen; may be NULL) the pending exception. */
static inline void
inbuf_restore_exception(PyObject *exc)
{
    if (exc == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

typedef struct {
    const char *data;       /* the window: the caller's bytes or `storage` */
    Py_ssize_t end;         /* bytes valid in the window */
    Py_ssize_t base;        /* offset of data[0] since the load started */
    PyObject *error;        /* UnpicklingError (borrowed: module state) */
    const inbuf_names *names;   /* borrowed: module state */

    /* loads(): the caller's bytes (held), or its buffer */
    PyObject *held;
    Py_buffer view;
    int has_view;

    /* load(): the file and its bound methods (owned) */
    PyObject *file;
    PyObject *read;
    PyObject *readline;
    PyObject *readinto;     /* NULL when the file has none */
    PyObject *peek;         /* NULL when the file has none (or refused) */
    int seekable;           /* -1 until the first load decides */
    int peeked;             /* this load has used peek() */
    Py_ssize_t lag;         /* the last `lag` bytes of the window came
                               from peek(): the file is still before them */
    char *storage;          /* owned buffer holding what was read */
    Py_ssize_t capacity;
} inbuf;

/* An input buffer reading nothing yet. */
static inline void
inbuf_init(inbuf *in, PyObject *error, const inbuf_names *names)
{
    in->data = NULL;
    in->end = 0;
    in->base = 0;
    in->error = error;
    in->names = names;
    in->held = NULL;
    in->has_view = 0;
    in->file = NULL;
    in->read = NULL;
    in->readline = NULL;
    in->readinto = NULL;
    in->peek = NULL;
    in->seekable = -1;
    in->peeked = 0;
    in->lag = 0;
    in->storage = NULL;
    in->capacity = 0;
}

int inbuf_open_buffer(inbuf *in, PyObject *obj);

/* Read from the bytes-like obj (loads); exact bytes are read in place. */
static inline int
inbuf_open_memory(inbuf *in, PyObject *obj)
{
    if (PyBytes_CheckExact(obj)) {
        in->held = Py_NewRef(obj);
        in->data = PyBytes_AS_STRING(obj);
        in->end = PyBytes_GET_SIZE(obj);
        in->base = 0;
        return 0;
    }
    return inbuf_open_buffer(in, obj);
}
/* Read from a file object (load): looks up peek, readinto, read and
 * readline in that order (only AttributeError means absent) and raises
 * TypeError when read or readline is missing. peek() is used only when
 * the file is seekable. */
int inbuf_open_file(inbuf *in, PyObject *file);
/* Release everything (idempotent). */
void inbuf_close(inbuf *in);
int inbuf_traverse(inbuf *in, visitproc visit, void *arg);

/* Start a load: decide whether the file is seekable (first time), empty
 * the window. */
int inbuf_begin(inbuf *in);
/* End a load at pos: with give_back, give the unread rest back to a
 * seekable file; empty the window. */
int inbuf_finish(inbuf *in, Py_ssize_t pos, int give_back);

/* Make data[pos:pos+n] available: an opcode's argument, which a valid
 * pickle follows with at least one more opcode. Returns the position of
 * those bytes in the (possibly moved) window, or -1 with an exception set:
 * "pickle data was truncated" when the input ends first. An unseekable
 * file without peek() is asked for that next byte too, which saves the
 * next opcode's own call. */
Py_ssize_t inbuf_fill(inbuf *in, Py_ssize_t pos, Py_ssize_t n);
/* The same for bytes that may end the pickle (an opcode, a FRAME's
 * contents): never a byte more from an unseekable file. */
Py_ssize_t inbuf_fill_exact(inbuf *in, Py_ssize_t pos, Py_ssize_t n);
/* The n bytes of a bytes (or, with as_bytearray, bytearray) payload that
 * starts at window position pos, of which fewer than n are in the window.
 * From a file, a large payload is read straight into the new object, whose
 * size grows with the data actually received (a claimed length is never
 * allocated on trust). The window is left empty, positioned right after
 * the payload; *next is the position to continue at. NULL with an
 * exception set: "pickle data was truncated" when the input ends first. */
PyObject *inbuf_read_payload(inbuf *in, Py_ssize_t pos, Py_ssize_t n,
                             int as_bytearray, Py_ssize_t *next);
/* inbuf_readline below for lines it does not find in one word. */
Py_ssize_t inbuf_readline_other(inbuf *in, Py_ssize_t pos,
                                Py_ssize_t *line_end);

/* Find the line starting at pos. Returns its position in the (possibly
 * moved) window and sets *line_end to the index just after its newline,
 * or -1: a line without a newline is truncated data.
 * Most lines of protocol 0 are a few bytes ("p12\n", "I59\n"): the
 * first 8 bytes are searched for the newline as one word, without a
 * call. The lowest flagged byte of the zero-byte test is exact (a false
 * flag can only sit above a true one). */
static inline Py_ssize_t
inbuf_readline(inbuf *in, Py_ssize_t pos, Py_ssize_t *line_end)
{
#if PY_LITTLE_ENDIAN && (defined(__GNUC__) || defined(__clang__))
    if (in->end - pos >= 8) {
        uint64_t word;
        memcpy(&word, in->data + pos, 8);
        word ^= UINT64_C(0x0A0A0A0A0A0A0A0A);
        uint64_t zero = (word - UINT64_C(0x0101010101010101)) & ~word
                        & UINT64_C(0x8080808080808080);
        if (zero) {
            *line_end = pos + (__builtin_ctzll(zero) >> 3) + 1;
            return pos;
        }
    }
#endif
    return inbuf_readline_other(in, pos, line_end);
}

#endif /* BRINERY_INBUF_H */

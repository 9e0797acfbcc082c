/* brinery._accel: the Unpickler's input buffer (see inbuf.h). */
#include "inbuf.h"

#include <string.h>

/* Storage larger than this is freed at the end of a load. */
#define INBUF_KEEP (4 * INBUF_CHUNK)

static Py_ssize_t
truncated(inbuf *in)
{
    PyErr_SetString(in->error, "pickle data was truncated");
    return -1;
}

/* A bytes-like object other than exact bytes: its buffer, held. */
int
inbuf_open_buffer(inbuf *in, PyObject *obj)
{
    if (PyObject_GetBuffer(obj, &in->view, PyBUF_SIMPLE) < 0) {
        /* Not a plain contiguous buffer: go the way of the pure
         * implementation, memoryview(obj), then its bytes. */
        PyErr_Clear();
        PyObject *view = PyMemoryView_FromObject(obj);
        if (view == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError,
                             "a bytes-like object is required, not '%.200s'",
                             _PyType_Name(Py_TYPE(obj)));
            }
            return -1;
        }
        int rc;
        if (!PyBuffer_IsContiguous(PyMemoryView_GET_BUFFER(view), 'C')) {
            /* CPython asks the exporter for a contiguous buffer, and most
             * refuse: raise what the exporter raises then. */
            Py_DECREF(view);
            rc = PyObject_GetBuffer(obj, &in->view, PyBUF_CONTIG_RO);
        }
        else {
            PyObject *flat = PyObject_CallMethod(view, "cast", "s", "B");
            Py_DECREF(view);
            if (flat == NULL) {
                return -1;
            }
            rc = PyObject_GetBuffer(flat, &in->view, PyBUF_SIMPLE);
            Py_DECREF(flat);
        }
        if (rc < 0) {
            return -1;
        }
    }
    in->has_view = 1;
    in->data = in->view.buf;
    in->end = in->view.len;
    in->base = 0;
    return 0;
}

/* Look up a file method; a value of None counts as absent, as in the pure
 * implementation's getattr(file, name, None). */
static int
lookup_method(PyObject *file, PyObject *name, PyObject **result)
{
    int rc = inbuf_lookup_attr(file, name, result);
    if (rc > 0 && *result == Py_None) {
        Py_CLEAR(*result);
        rc = 0;
    }
    return rc;
}

int
inbuf_open_file(inbuf *in, PyObject *file)
{
    PyObject *peek = NULL, *readinto = NULL, *read = NULL, *readline = NULL;
    const inbuf_names *names = in->names;
    /* CPython's order, so that a property raising is met at the same
     * point. */
    if (lookup_method(file, names->peek, &peek) < 0
        || lookup_method(file, names->readinto, &readinto) < 0
        || lookup_method(file, names->read, &read) < 0
        || lookup_method(file, names->readline, &readline) < 0) {
        goto error;
    }
    if (read == NULL || readline == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "file must have 'read' and 'readline' attributes");
        goto error;
    }
    in->file = Py_NewRef(file);
    in->read = read;
    in->readline = readline;
    in->readinto = readinto;
    in->peek = peek;
    in->seekable = -1;
    in->peeked = 0;
    in->lag = 0;
    in->data = in->storage;
    in->end = 0;
    in->base = 0;
    return 0;

error:
    Py_XDECREF(peek);
    Py_XDECREF(readinto);
    Py_XDECREF(read);
    Py_XDECREF(readline);
    return -1;
}

void
inbuf_close(inbuf *in)
{
    if (in->has_view) {
        in->has_view = 0;
        PyBuffer_Release(&in->view);
    }
    Py_CLEAR(in->held);
    Py_CLEAR(in->file);
    Py_CLEAR(in->read);
    Py_CLEAR(in->readline);
    Py_CLEAR(in->readinto);
    Py_CLEAR(in->peek);
    if (in->storage != NULL) {
        PyMem_Free(in->storage);
        in->storage = NULL;
        in->capacity = 0;
    }
    in->data = NULL;
    in->end = 0;
    in->base = 0;
    in->lag = 0;
}

int
inbuf_traverse(inbuf *in, visitproc visit, void *arg)
{
    Py_VISIT(in->file);
    Py_VISIT(in->read);
    Py_VISIT(in->readline);
    Py_VISIT(in->readinto);
    Py_VISIT(in->peek);
    return 0;
}

int
inbuf_begin(inbuf *in)
{
    if (in->file == NULL) {
        in->base = 0;
        return 0;
    }
    if (in->seekable < 0) {
        /* bool(file.seekable()); any Exception means "no". */
        PyObject *res = PyObject_CallMethodNoArgs(in->file,
                                                  in->names->seekable);
        int seekable = res == NULL ? -1 : PyObject_IsTrue(res);
        Py_XDECREF(res);
        if (seekable < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                return -1;
            }
            PyErr_Clear();
            seekable = 0;
        }
        in->seekable = seekable;
    }
    in->data = in->storage;
    in->end = 0;
    in->base = 0;
    in->lag = 0;
    in->peeked = 0;
    return 0;
}

/* file.name() or file.name(a, b). New reference. */
static PyObject *
call_method_ints(inbuf *in, PyObject *name, int nargs, Py_ssize_t a, int b)
{
    PyObject *args[3] = {in->file, NULL, NULL};
    PyObject *res = NULL;
    if (nargs == 2) {
        args[1] = PyLong_FromSsize_t(a);
        args[2] = PyLong_FromLong(b);
        if (args[1] == NULL || args[2] == NULL) {
            goto done;
        }
    }
    res = PyObject_VectorcallMethod(
        name, args, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
done:
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    return res;
}

/* file.seek(offset, SEEK_CUR). */
static int
seek_relative(inbuf *in, Py_ssize_t offset)
{
    PyObject *res = call_method_ints(in, in->names->seek, 2, offset,
                                     SEEK_CUR);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

static int take_shown(inbuf *in, Py_ssize_t n);

/* Bring the file to the end of the window (past what peek() showed). */
static int
settle(inbuf *in)
{
    if (in->lag != 0) {
        if ((in->seekable > 0 ? seek_relative(in, in->lag)
                              : take_shown(in, in->lag)) < 0) {
            return -1;
        }
        in->lag = 0;
    }
    return 0;
}

int
inbuf_finish(inbuf *in, Py_ssize_t pos, int give_back)
{
    int rc = 0;

    if (in->file == NULL) {
        return 0;
    }
    /* The file is `lag` bytes before the window's end; move it to pos
     * (or to the window's end without give_back). An unseekable file only
     * goes forward: it is never ahead of pos, since it is only read past
     * what peek() showed when all of the window is needed. */
    Py_ssize_t offset = in->lag;
    if (give_back) {
        offset -= in->end - pos;
    }
    in->lag = 0;
    if (in->seekable > 0) {
        if (offset != 0 && seek_relative(in, offset) < 0) {
            rc = -1;
        }
    }
    else if (offset > 0 && take_shown(in, offset) < 0) {
        rc = -1;
    }
    in->end = 0;
    if (in->capacity > INBUF_KEEP) {
        PyMem_Free(in->storage);
        in->storage = NULL;
        in->capacity = 0;
    }
    in->data = in->storage;
    return rc;
}

/* Make the storage hold at least `need` bytes, keeping data[0:end]. */
static int
reserve(inbuf *in, Py_ssize_t need)
{
    /* Even for nothing there is storage: callers copy to storage + end. */
    if (need <= in->capacity && in->storage != NULL) {
        return 0;
    }
    /* Grow by half for small steps; a large need (a payload) is met
     * exactly, so the storage never holds much more than the data. */
    Py_ssize_t cap = in->capacity < 4096 ? 4096 : in->capacity;
    if (cap <= PY_SSIZE_T_MAX / 3 * 2 && cap + cap / 2 > need) {
        cap += cap / 2;
    }
    else {
        cap = need;
    }
    char *storage = PyMem_Realloc(in->storage, (size_t)cap);
    if (storage == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    in->storage = storage;
    in->capacity = cap;
    in->data = storage;
    return 0;
}

/* Move data[pos:end] to the front of the storage. (`lag` counts from the
 * window's end, so it does not change.) */
static void
compact(inbuf *in, Py_ssize_t pos)
{
    if (pos > 0) {
        Py_ssize_t rest = in->end - pos;
        if (rest > 0) {
            memmove(in->storage, in->storage + pos, (size_t)rest);
        }
        in->end = rest;
        in->base += pos;
    }
}

/* Append the bytes-like result of read(), readline() or peek() to the
 * window. */
static Py_ssize_t
append_result(inbuf *in, PyObject *res)
{
    Py_buffer view;
    Py_ssize_t got;

    if (res == Py_None) {
        return 0;           /* a non-blocking file with nothing to give */
    }
    if (PyBytes_CheckExact(res)) {
        got = PyBytes_GET_SIZE(res);
        if (reserve(in, in->end + got) < 0) {
            return -1;
        }
        memcpy(in->storage + in->end, PyBytes_AS_STRING(res), (size_t)got);
        in->end += got;
        return got;
    }
    if (PyObject_GetBuffer(res, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    got = view.len;
    if (reserve(in, in->end + got) < 0) {
        PyBuffer_Release(&view);
        return -1;
    }
    memcpy(in->storage + in->end, view.buf, (size_t)got);
    in->end += got;
    PyBuffer_Release(&view);
    return got;
}

/* file.readinto() over the memory buf[0:n]. Returns the count it reports
 * (checked to be within [0, n]) or -1. *kept is set when the file still
 * reaches that memory through the view it was lent (a buffer or a slice
 * of the view survives): the memory must then never be reused or freed,
 * since the file could write to it at any later time. */
static Py_ssize_t
readinto_memory(inbuf *in, char *buf, Py_ssize_t n, int *kept)
{
    *kept = 0;
    PyObject *view = PyMemoryView_FromMemory(buf, n, PyBUF_WRITE);
    if (view == NULL) {
        return -1;
    }
    PyObject *res = PyObject_CallOneArg(in->readinto, view);
    PyMemoryViewObject *mv = (PyMemoryViewObject *)view;
    if (Py_REFCNT(view) > 1 || mv->exports > 0 || mv->mbuf->exports > 1) {
        /* The view escaped: release it, so that a file keeping only the
         * view object cannot use it any more (readinto's exception is
         * kept). What release() cannot cut off is kept memory. */
        PyObject *exc = res == NULL ? inbuf_take_exception() : NULL;
        _PyManagedBufferObject *mbuf =
            (_PyManagedBufferObject *)Py_NewRef(mv->mbuf);
        PyObject *released = PyObject_CallMethodNoArgs(view,
                                                       in->names->release);
        if (released == NULL) {
            PyErr_Clear();
        }
        *kept = released == NULL || mbuf->exports > 0;
        Py_XDECREF(released);
        Py_DECREF(mbuf);
        inbuf_restore_exception(exc);
    }
    Py_DECREF(view);
    if (res == NULL) {
        return -1;
    }
    Py_ssize_t got = 0;
    if (res != Py_None) {
        got = PyLong_AsSsize_t(res);
        if (got == -1 && PyErr_Occurred()) {
            Py_DECREF(res);
            return -1;
        }
    }
    Py_DECREF(res);
    if (got < 0 || got > n) {
        PyErr_Format(PyExc_ValueError,
                     "readinto() returned %zd outside [0, %zd]", got, n);
        return -1;
    }
    return got;
}

/* Read into the storage with file.readinto(). */
static Py_ssize_t
readinto_append(inbuf *in, Py_ssize_t n)
{
    if (reserve(in, in->end + n) < 0) {
        return -1;
    }
    int kept;
    Py_ssize_t got = readinto_memory(in, in->storage + in->end, n, &kept);
    if (got < 0) {
        if (kept) {
            in->storage = NULL;     /* abandoned, never freed */
            in->capacity = 0;
            in->data = NULL;
            in->end = 0;
        }
        return -1;
    }
    if (kept) {
        /* Move to new storage; the old one is abandoned, never freed. */
        char *old = in->storage;
        Py_ssize_t have = in->end + got;
        in->storage = NULL;
        in->capacity = 0;
        in->data = NULL;
        in->end = 0;
        if (reserve(in, have) < 0) {
            return -1;
        }
        memcpy(in->storage, old, (size_t)have);
        in->end = have - got;
    }
    in->end += got;
    return got;
}

/* method(n): one call of a file's read() or peek(). New reference. */
static PyObject *
call_with_size(PyObject *method, Py_ssize_t n)
{
    PyObject *size = PyLong_FromSsize_t(n);
    if (size == NULL) {
        return NULL;
    }
    PyObject *res = PyObject_CallOneArg(method, size);
    Py_DECREF(size);
    return res;
}

/* Take n bytes that peek() showed from an unseekable file, with read(n),
 * which must give that many (a buffered file takes them from its
 * buffer). The bytes themselves are in the window already. */
static int
take_shown(inbuf *in, Py_ssize_t n)
{
    PyObject *res = call_with_size(in->read, n);
    if (res == NULL) {
        return -1;
    }
    Py_ssize_t got = -1;
    if (PyBytes_Check(res)) {
        got = PyBytes_GET_SIZE(res);
    }
    else if (res != Py_None) {
        Py_buffer view;
        if (PyObject_GetBuffer(res, &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(res);
            return -1;
        }
        got = view.len;
        PyBuffer_Release(&view);
    }
    Py_DECREF(res);
    if (got != n) {
        PyErr_Format(PyExc_ValueError,
                     "read() returned %s bytes where peek() had shown %zd",
                     got < 0 ? "no" : "fewer or more", n);
        return -1;
    }
    return 0;
}

/* One call to the file asking for n more bytes, appended to the window.
 * Returns how many arrived (0 at end of file) or -1. */
static Py_ssize_t
read_append(inbuf *in, Py_ssize_t n)
{
    /* readinto saves a bytes object and a copy when reading ahead; exact
     * small reads of an unseekable file are cheaper with read(). */
    if (in->readinto != NULL && (in->seekable > 0 || n >= INBUF_CHUNK)) {
        return readinto_append(in, n);
    }
    PyObject *res = call_with_size(in->read, n);
    if (res == NULL) {
        return -1;
    }
    Py_ssize_t got = append_result(in, res);
    Py_DECREF(res);
    return got;
}

/* Append what a file shows with peek() without moving (for a buffered
 * file, its buffer, filled by one system call at most), and remember that
 * the file is behind. The first read of a load from a seekable file: a
 * small pickle is then read with one call and given back inside the
 * file's buffer; every small read of an unseekable one (read_more).
 * Returns the bytes appended, or -1; a file whose peek() raises
 * NotImplementedError is not asked again (as CPython does). */
static Py_ssize_t
peek_append(inbuf *in)
{
    in->peeked = 1;
    PyObject *res = call_with_size(in->peek, INBUF_CHUNK);
    if (res == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_NotImplementedError)) {
            return -1;
        }
        PyErr_Clear();
        Py_CLEAR(in->peek);
        return 0;
    }
    Py_ssize_t got = append_result(in, res);
    Py_DECREF(res);
    if (got > 0) {
        in->lag += got;
    }
    return got;
}

/* One step of reading ahead for a need of `want` more bytes (seekable
 * files read at least a chunk). Returns how many arrived or -1.
 * An unseekable file with peek() (a pipe or socket behind a buffered
 * reader) cannot be given back what was read too far, but can show what
 * its buffer holds: small needs are met from peek(), after taking what
 * the last peek() showed (all of it needed, or there would be no need),
 * so the file is read by buffers, not by opcodes, and never past STOP. */
static Py_ssize_t
read_more(inbuf *in, Py_ssize_t want)
{
    /* A seekable file peeks once per load (its later reads are chunks),
     * an unseekable one for every small need. */
    int peek = in->seekable > 0 ? !in->peeked && want < INBUF_CHUNK
                                : want < INBUF_PEEK_MAX;
    if (in->peek != NULL && peek) {
        if (settle(in) < 0) {
            return -1;
        }
        Py_ssize_t got = peek_append(in);
        if (got != 0) {
            return got;
        }
        /* Nothing shown: ask the usual way, which also tells a real end
         * of file from a peek() that shows nothing. */
    }
    if (in->seekable > 0 && want < INBUF_CHUNK) {
        want = INBUF_CHUNK;
    }
    /* Past what peek() showed, if anything. */
    if (settle(in) < 0) {
        return -1;
    }
    return read_append(in, want);
}

/* Call a file method returning an int, with 0 or 2 int arguments. */
static Py_ssize_t
call_ssize(inbuf *in, PyObject *name, int nargs, Py_ssize_t a, int b)
{
    PyObject *res = call_method_ints(in, name, nargs, a, b);
    if (res == NULL) {
        return -1;
    }
    Py_ssize_t value = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    return value;
}

/* How many bytes a seekable file holds past its position (0 when it is
 * past its end), or -1. */
static Py_ssize_t
remaining_in_file(inbuf *in)
{
    const inbuf_names *names = in->names;
    Py_ssize_t here = call_ssize(in, names->tell, 0, 0, 0);
    if (here == -1 && PyErr_Occurred()) {
        return -1;
    }
    Py_ssize_t size = call_ssize(in, names->seek, 2, 0, SEEK_END);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (call_ssize(in, names->seek, 2, here, SEEK_SET) == -1
        && PyErr_Occurred()) {
        return -1;
    }
    return size > here ? size - here : 0;
}

/* The next step of a read that grows with the data received: what
 * arrived so far (at least `least`), at most 1 GiB, at most what is still
 * wanted. */
static Py_ssize_t
growth_step(Py_ssize_t got, Py_ssize_t want, Py_ssize_t least)
{
    Py_ssize_t step = got < least ? least : got;
    if (step > (1 << 30)) {
        step = 1 << 30;
    }
    return step < want - got ? step : want - got;
}

/* Read `want` more bytes of a large read without reserving memory for
 * more than the file can give. */
static int
read_large(inbuf *in, Py_ssize_t want)
{
    if (settle(in) < 0) {
        return -1;
    }
    if (in->seekable > 0) {
        Py_ssize_t available = remaining_in_file(in);
        if (available < 0) {
            return -1;
        }
        want = want < available ? want : available;
    }
    /* A seekable file asks for what it holds at once; an unseekable one for
     * no more than what already arrived (at least INBUF_LARGE_READ), so
     * that memory grows with the data, not the claim. */
    Py_ssize_t got = 0;
    while (got < want) {
        Py_ssize_t n = read_append(in, in->seekable > 0
                                       ? want - got : growth_step(got, want, INBUF_LARGE_READ));
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += n;
    }
    return 0;
}

/* inbuf_fill and inbuf_fill_exact: `extra` is 1 when a valid pickle has
 * at least one byte after these n. */
static Py_ssize_t
fill(inbuf *in, Py_ssize_t pos, Py_ssize_t n, Py_ssize_t extra)
{
    if (in->base + pos > PY_SSIZE_T_MAX - n) {
        PyErr_SetString(in->error, "read would overflow (invalid bytecode)");
        return -1;
    }
    if (in->file == NULL) {
        return truncated(in);
    }
    compact(in, pos);
    Py_ssize_t want = n - in->end;
    if (want >= INBUF_LARGE_READ) {
        if (read_large(in, want) < 0) {
            return -1;
        }
    }
    else {
        /* peek() may show less than needed, a file may give less than
         * asked: go on until there is enough or nothing more. Exact reads
         * of an unseekable file take the byte after too, when there is
         * one: calls per opcode, not per opcode and argument. */
        if (in->seekable > 0 || in->peek != NULL) {
            extra = 0;
        }
        while (in->end < n) {
            Py_ssize_t got = read_more(in, n - in->end + extra);
            if (got < 0) {
                return -1;
            }
            if (got == 0) {
                break;
            }
        }
    }
    if (in->end < n) {
        return truncated(in);
    }
    return 0;
}

Py_ssize_t
inbuf_fill(inbuf *in, Py_ssize_t pos, Py_ssize_t n)
{
    return fill(in, pos, n, 1);
}

Py_ssize_t
inbuf_fill_exact(inbuf *in, Py_ssize_t pos, Py_ssize_t n)
{
    return fill(in, pos, n, 0);
}

/* A new bytes or bytearray object of size n (contents undefined). */
static PyObject *
new_payload(Py_ssize_t n, int as_bytearray)
{
    return as_bytearray ? PyByteArray_FromStringAndSize(NULL, n)
                        : PyBytes_FromStringAndSize(NULL, n);
}

static char *
payload_buffer(PyObject *obj)
{
    return PyByteArray_Check(obj) ? PyByteArray_AS_STRING(obj)
                                  : PyBytes_AS_STRING(obj);
}

static int
resize_payload(PyObject **obj, Py_ssize_t n)
{
    if (PyByteArray_Check(*obj)) {
        return PyByteArray_Resize(*obj, n);
    }
    return _PyBytes_Resize(obj, n);
}

/* One read of up to n bytes of the file into the payload *obj at offset.
 * Returns how many arrived (0 at end of file) or -1. When the file kept
 * the memory it was lent, *obj is replaced by a copy and the original is
 * abandoned, never freed (*obj is NULL if the copy fails). */
static Py_ssize_t
read_into_payload(inbuf *in, PyObject **obj, Py_ssize_t offset,
                  Py_ssize_t n)
{
    if (in->readinto != NULL) {
        int kept;
        char *buf = payload_buffer(*obj) + offset;
        Py_ssize_t got = readinto_memory(in, buf, n, &kept);
        if (kept) {
            PyObject *copy = new_payload(offset + n, PyByteArray_Check(*obj));
            if (copy != NULL) {
                memcpy(payload_buffer(copy), payload_buffer(*obj),
                       (size_t)(offset + (got > 0 ? got : 0)));
            }
            else {
                got = -1;
            }
            *obj = copy;
        }
        return got;
    }
    PyObject *res = call_with_size(in->read, n);
    if (res == NULL) {
        return -1;
    }
    Py_buffer view;
    Py_ssize_t got = 0;
    if (res != Py_None) {
        if (PyObject_GetBuffer(res, &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(res);
            return -1;
        }
        got = view.len;
        if (got > n) {
            PyErr_Format(PyExc_ValueError,
                         "read() returned %zd bytes instead of %zd", got, n);
            got = -1;
        }
        else {
            memcpy(payload_buffer(*obj) + offset, view.buf, (size_t)got);
        }
        PyBuffer_Release(&view);
    }
    Py_DECREF(res);
    return got;
}

PyObject *
inbuf_read_payload(inbuf *in, Py_ssize_t pos, Py_ssize_t n, int as_bytearray,
                   Py_ssize_t *next)
{
    if (in->file == NULL || n < INBUF_LARGE_READ || in->end - pos >= n) {
        Py_ssize_t at = in->end - pos >= n ? pos : inbuf_fill(in, pos, n);
        if (at < 0) {
            return NULL;
        }
        *next = at + n;
        return as_bytearray
            ? PyByteArray_FromStringAndSize(in->data + at, n)
            : PyBytes_FromStringAndSize(in->data + at, n);
    }
    if (in->base + pos > PY_SSIZE_T_MAX - n) {
        PyErr_SetString(in->error, "read would overflow (invalid bytecode)");
        return NULL;
    }
    if (settle(in) < 0) {
        return NULL;
    }
    Py_ssize_t got = in->end - pos;     /* already in the window */
    Py_ssize_t size;                    /* allocated so far */
    if (in->seekable > 0) {
        Py_ssize_t available = remaining_in_file(in);
        if (available < 0) {
            return NULL;
        }
        size = available < n - got ? got + available : n;
    }
    else {
        size = got + growth_step(got, n, INBUF_CHUNK);
    }
    PyObject *obj = new_payload(size, as_bytearray);
    if (obj == NULL) {
        return NULL;
    }
    memcpy(payload_buffer(obj), in->data + pos, (size_t)got);
    /* The window is used up: what follows the payload comes next. */
    in->base += pos + n;
    in->end = 0;
    in->data = in->storage;
    while (got < n) {
        if (got == size) {
            if (in->seekable > 0) {
                break;      /* the file holds no more: truncated */
            }
            Py_ssize_t grown = got + growth_step(got, n, INBUF_CHUNK);
            if (resize_payload(&obj, grown) < 0) {
                return NULL;
            }
            size = grown;
        }
        Py_ssize_t arrived = read_into_payload(in, &obj, got, size - got);
        if (arrived < 0) {
            Py_XDECREF(obj);
            return NULL;
        }
        if (arrived == 0) {
            break;
        }
        got += arrived;
    }
    if (got < n) {
        Py_DECREF(obj);
        truncated(in);
        return NULL;
    }
    *next = 0;
    return obj;
}

Py_ssize_t
inbuf_readline_other(inbuf *in, Py_ssize_t pos, Py_ssize_t *line_end)
{
    const char *nl = NULL;
    if (in->end > pos) {
        nl = memchr(in->data + pos, '\n', (size_t)(in->end - pos));
    }
    if (nl != NULL) {
        *line_end = nl - in->data + 1;
        return pos;
    }
    if (in->file == NULL) {
        return truncated(in);
    }
    compact(in, pos);
    Py_ssize_t scanned = in->end;
    if (in->seekable > 0 || in->peek != NULL) {
        for (;;) {
            Py_ssize_t got = read_more(in, 1);
            if (got < 0) {
                return -1;
            }
            if (got == 0) {
                break;
            }
            if (memchr(in->data + in->end - got, '\n', (size_t)got)) {
                break;
            }
        }
    }
    else {
        PyObject *line = PyObject_CallNoArgs(in->readline);
        if (line == NULL) {
            return -1;
        }
        Py_ssize_t got = append_result(in, line);
        Py_DECREF(line);
        if (got < 0) {
            return -1;
        }
    }
    nl = NULL;
    if (in->end > scanned) {
        nl = memchr(in->data + scanned, '\n', (size_t)(in->end - scanned));
    }
    if (nl == NULL) {
        return truncated(in);
    }
    *line_end = nl - in->data + 1;
    return 0;
}

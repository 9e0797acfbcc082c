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
    /* CPython's order; peek is looked up (a property may raise) but
     * never used: an unseekable file is read exactly instead. */
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
    Py_XDECREF(peek);
    in->file = Py_NewRef(file);
    in->read = read;
    in->readline = readline;
    in->readinto = readinto;
    in->seekable = -1;
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
    if (in->storage != NULL) {
        PyMem_Free(in->storage);
        in->storage = NULL;
        in->capacity = 0;
    }
    in->data = NULL;
    in->end = 0;
    in->base = 0;
}

int
inbuf_traverse(inbuf *in, visitproc visit, void *arg)
{
    Py_VISIT(in->file);
    Py_VISIT(in->read);
    Py_VISIT(in->readline);
    Py_VISIT(in->readinto);
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
    return 0;
}

int
inbuf_finish(inbuf *in, Py_ssize_t pos, int give_back)
{
    int rc = 0;

    if (in->file == NULL) {
        return 0;
    }
    Py_ssize_t unread = in->end - pos;
    if (give_back && unread > 0 && in->seekable > 0) {
        PyObject *res = PyObject_CallMethod(in->file, "seek", "ni",
                                            -unread, SEEK_CUR);
        if (res == NULL) {
            rc = -1;
        }
        Py_XDECREF(res);
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

/* Move data[pos:end] to the front of the storage. */
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

/* Append the bytes-like result of read() or readline() to the window. */
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

/* Read into the storage with file.readinto(). The memoryview lent to the
 * file is released afterwards, so a file that keeps it cannot write into
 * memory it does not own. */
static Py_ssize_t
readinto_append(inbuf *in, Py_ssize_t n)
{
    if (reserve(in, in->end + n) < 0) {
        return -1;
    }
    PyObject *view = PyMemoryView_FromMemory(in->storage + in->end, n,
                                             PyBUF_WRITE);
    if (view == NULL) {
        return -1;
    }
    PyObject *res = PyObject_CallOneArg(in->readinto, view);
    /* Release the view whatever readinto did, keeping its exception. */
    PyObject *exc = res == NULL ? inbuf_take_exception() : NULL;
    PyObject *released = PyObject_CallMethodNoArgs(view, in->names->release);
    Py_DECREF(view);
    if (released == NULL) {
        /* The file still exports the view: abandon the storage rather
         * than let it be written to after we reuse or free it. */
        in->storage = NULL;
        in->capacity = 0;
        in->data = NULL;
        in->end = 0;
        Py_XDECREF(res);
        if (exc != NULL) {
            PyErr_Clear();
            inbuf_restore_exception(exc);
        }
        return -1;
    }
    inbuf_restore_exception(exc);
    Py_DECREF(released);
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
    in->end += got;
    return got;
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
    PyObject *size = PyLong_FromSsize_t(n);
    if (size == NULL) {
        return -1;
    }
    PyObject *res = PyObject_CallOneArg(in->read, size);
    Py_DECREF(size);
    if (res == NULL) {
        return -1;
    }
    Py_ssize_t got = append_result(in, res);
    Py_DECREF(res);
    return got;
}

static Py_ssize_t
call_ssize(PyObject *file, const char *method, const char *format,
           Py_ssize_t a, int b)
{
    PyObject *res = format == NULL
        ? PyObject_CallMethod(file, method, NULL)
        : PyObject_CallMethod(file, method, format, a, b);
    if (res == NULL) {
        return -1;
    }
    Py_ssize_t value = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    return value;
}

/* Read `want` more bytes of a large payload without reserving memory for
 * more than the file can give. */
static int
read_large(inbuf *in, Py_ssize_t want)
{
    if (in->seekable > 0) {
        Py_ssize_t here = call_ssize(in->file, "tell", NULL, 0, 0);
        if (here == -1 && PyErr_Occurred()) {
            return -1;
        }
        Py_ssize_t size = call_ssize(in->file, "seek", "ni", 0, SEEK_END);
        if (size == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (call_ssize(in->file, "seek", "ni", here, SEEK_SET) == -1
            && PyErr_Occurred()) {
            return -1;
        }
        Py_ssize_t available = size > here ? size - here : 0;
        Py_ssize_t n = want < available ? want : available;
        return n > 0 && read_append(in, n) < 0 ? -1 : 0;
    }
    /* Unseekable: ask for no more than what already arrived (at least
     * INBUF_LARGE_READ), so memory grows with the data, not the claim. */
    Py_ssize_t got = 0;
    while (got < want) {
        Py_ssize_t step = got < INBUF_LARGE_READ ? INBUF_LARGE_READ : got;
        if (step > (1 << 30)) {
            step = 1 << 30;
        }
        if (step > want - got) {
            step = want - got;
        }
        Py_ssize_t n = read_append(in, step);
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

Py_ssize_t
inbuf_fill(inbuf *in, Py_ssize_t pos, Py_ssize_t n)
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
    else if (read_append(in, in->seekable > 0 && want < INBUF_CHUNK
                               ? INBUF_CHUNK : want) < 0) {
        return -1;
    }
    if (in->end < n) {
        return truncated(in);
    }
    return 0;
}

Py_ssize_t
inbuf_readline(inbuf *in, Py_ssize_t pos, Py_ssize_t *line_end)
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
    if (in->seekable > 0) {
        for (;;) {
            Py_ssize_t got = read_append(in, INBUF_CHUNK);
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

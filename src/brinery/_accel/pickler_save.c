/* brinery._accel: the pickler's engine.
 *
 * save() writes one object: atoms (None, bools, ints, floats, str, bytes,
 * memo hits) at once; a container, or an object saved through its reduce
 * value, gets a save_frame pushed on the pickler's own stack. run() steps
 * the frame on top until the stack is back where it started. A frame
 * saves its children by calling save() again: when a child pushes a frame
 * of its own, the parent records where to resume (its `phase`) and returns
 * to the loop. Nothing here recurses, so the depth of the data is bounded
 * by memory, never by the C stack.
 *
 * The order of checks and every byte written follow CPython's C pickler,
 * as brinery's pure-Python pickler does; the error notes ("when serializing
 * list item 3") are the pure pickler's, added while the stack unwinds.
 *
 * Fast paths that write exactly what the general path would: atoms inline
 * in save(); instances of plain classes without calling __reduce_ex__
 * (the type cache of pickler_state.c); classes and functions by name
 * through the global cache; and, in dump()/dumps() where nothing can
 * observe the memo, bytes and sets below their native protocols without
 * building the temporary objects their reductions name.
 */
#include "pickler.h"

/* Frame phases. Each frame kind numbers its own. */
enum {
    /* F_TUPLE, F_LIST, F_SET, F_FROZENSET, F_APPENDS: items */
    PH_START = 0,
    PH_ITEM,           /* save item i */
    PH_ITEM_DONE,      /* item i saved: advance */
    PH_BATCH_END,      /* write the batch's closing opcode */
    PH_SINGLE,         /* a lone item (APPEND / SETITEM) */
    PH_SINGLE_DONE,
    PH_KEY_DONE,       /* dicts: key saved, save the value */
    PH_VALUE_DONE,
    PH_AHEAD,          /* iterators: the batch after the first item */
    PH_FINISH,
};

enum {
    /* F_REDUCE */
    R_START = 0,
    R_NEWOBJ_EX_ARGS,  /* class saved: save the positional arguments */
    R_NEWOBJ_EX_KW,    /* then the keyword arguments */
    R_NEWOBJ_EX_DONE,
    R_PARTIAL_ARGS,    /* partial(cls.__new__, ...) saved: save () */
    R_NEWOBJ_ARGS,     /* class saved: save args[1:] */
    R_NEWOBJ_DONE,
    R_FUNC_ARGS,       /* callable saved: save the arguments */
    R_REDUCE_DONE,
    R_AFTER_CALL,      /* memoize, then list items */
    R_DICTITEMS,
    R_STATE,
    R_SETTER_OBJ,
    R_SETTER_STATE,
    R_SETTER_DONE,
    R_BUILD,
    R_END,
};

/* What part of a reduced object is being saved, for error notes. */
enum {
    W_NONE = 0,        /* only "when serializing X object" */
    W_RECONSTRUCTOR,
    W_RECON_ARGS,
    W_CLASS,
    W_STATE,
    W_STATE_SETTER,
    W_OBJECT,          /* the object itself (state setter call) */
    W_NEW_ARGS,        /* arguments of cls.__new__ (NEWOBJ, NEWOBJ_EX) */
};

static const char *const WHAT_TEXT[] = {
    NULL, "reconstructor", "reconstructor arguments", "class", "state",
    "state setter", NULL, "__new__ arguments",
};

/* F_REDUCE flags */
#define RF_NEWOBJ 1
#define RF_NEWOBJ_EX 2
/* An instance of a plain class, at protocol 2+: what object's default
 * __reduce_ex__ would give, (copyreg.__newobj__, (cls,), state), saved
 * without building it. f->a is NULL, f->b the state (NULL for None). */
#define RF_PLAIN 4
/* A reduce value the pickler made itself (sets below protocol 4, bytes,
 * bytearray...): CPython gives its errors no "X object" note. */
#define RF_INTERNAL 8
/* F_APPENDS / F_SETITEMS flags */
#define IF_LEAVE_FAST 1      /* leave fast mode for obj at the end */
#define IF_VALUE 2           /* F_SETITEMS: a value is being saved */
/* F_DICT flags */
/* F_REDUCE, F_SET_REDUCE: counted in p->open_reduces, and in
 * p->unmemoized (see guard_enter) */
#define REDUCE_OPEN 0x40
#define GUARDED 0x80
#define DF_SINGLE 1          /* a dict of one item: SETITEM */
#define DF_VALUE 2           /* a value is being saved */

#define NO_FRAME_LIMIT PY_SSIZE_T_MAX

static int save_slow(pickler_core *p, PyObject *obj, int pers_save);
static int save_str(pickler_core *p, PyObject *obj);
static inline int save(pickler_core *p, PyObject *obj, int pers_save);

/* ============================================================ output */

static inline int
w1(pickler_core *p, char c)
{
    return outbuf_put1(&p->out, c);
}

static inline int
wn(pickler_core *p, const char *s, Py_ssize_t n)
{
    return outbuf_write(&p->out, s, n);
}

static inline void
pack_u32(char *dst, uint32_t v)
{
    dst[0] = (char)(v & 0xff);
    dst[1] = (char)((v >> 8) & 0xff);
    dst[2] = (char)((v >> 16) & 0xff);
    dst[3] = (char)((v >> 24) & 0xff);
}

static inline void
pack_u64(char *dst, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        dst[i] = (char)((v >> (8 * i)) & 0xff);
    }
}

static int
call_write(pickler_core *p, PyObject *data)
{
    PyObject *r = PyObject_CallOneArg(p->write, data);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* File output: hand what the buffer holds to write(). */
static int
flush_to_file(pickler_core *p)
{
    if (p->write == NULL || p->out.len == 0) {
        return 0;
    }
    PyObject *data = PyBytes_FromStringAndSize(p->out.data, p->out.len);
    if (data == NULL) {
        return -1;
    }
    p->out.len = 0;
    int r = call_write(p, data);
    Py_DECREF(data);
    return r;
}

static int
start_framing(pickler_core *p)
{
    if (outbuf_reserve(&p->out, FRAME_HEADER_SIZE) < 0) {
        return -1;
    }
    p->frame_start = p->out.len;
    p->out.len += FRAME_HEADER_SIZE;
    p->frame_limit = p->out.len + FRAME_SIZE_TARGET;
    core_update_fast_limit(p);
    return 0;
}

/* Write the open frame's header, or drop the header of a tiny frame. */
static void
end_frame(pickler_core *p)
{
    Py_ssize_t start = p->frame_start;
    if (start < 0) {
        return;
    }
    char *data = p->out.data;
    Py_ssize_t length = p->out.len - start - FRAME_HEADER_SIZE;
    if (length >= FRAME_SIZE_MIN) {
        data[start] = (char)OP_FRAME;
        pack_u64(data + start + 1, (uint64_t)length);
    }
    else {
        memmove(data + start, data + start + FRAME_HEADER_SIZE,
                (size_t)length);
        p->out.len -= FRAME_HEADER_SIZE;
    }
    p->frame_start = -1;
    p->frame_limit = NO_FRAME_LIMIT;
    core_update_fast_limit(p);
}

/* At a save() boundary with a full frame: close it (and send it to the
 * file, so a large pickle never sits whole in memory), open the next. */
static int
frame_boundary(pickler_core *p)
{
    end_frame(p);
    if (flush_to_file(p) < 0) {
        return -1;
    }
    return start_framing(p);
}

/* Write header + a payload of FRAME_SIZE_TARGET bytes or more, outside any
 * frame. To a file the payload goes with its own write() call: `payload`
 * if given (an object supporting the buffer protocol), else a bytes copy
 * of data. In memory it is copied once, into the output. */
static int
write_large(pickler_core *p, const char *header, Py_ssize_t header_len,
            const char *data, Py_ssize_t size, PyObject *payload)
{
    int framing = p->frame_start >= 0;
    if (framing) {
        end_frame(p);
    }
    if (wn(p, header, header_len) < 0) {
        return -1;
    }
    if (p->write != NULL) {
        if (flush_to_file(p) < 0) {
            return -1;
        }
        PyObject *chunk = payload;
        if (chunk == NULL) {
            chunk = PyBytes_FromStringAndSize(data, size);
            if (chunk == NULL) {
                return -1;
            }
        }
        else {
            Py_INCREF(chunk);
        }
        int r = call_write(p, chunk);
        Py_DECREF(chunk);
        if (r < 0) {
            return -1;
        }
    }
    else {
        /* a payload that dwarfs the buffer gets room for itself only
         * (one payload of memory for a huge one); else grow as usual */
        if (p->out.cap - p->out.len < size
            && outbuf_grow(&p->out, size, size > p->out.cap) < 0) {
            return -1;
        }
        memcpy(p->out.data + p->out.len, data, (size_t)size);
        p->out.len += size;
    }
    if (framing) {
        return start_framing(p);
    }
    return 0;
}

/* header then data: in the current frame if small, else outside. */
static int
write_with_header(pickler_core *p, const char *header, Py_ssize_t header_len,
                  const char *data, Py_ssize_t size, PyObject *payload)
{
    if (size >= FRAME_SIZE_TARGET) {
        return write_large(p, header, header_len, data, size, payload);
    }
    if (outbuf_reserve(&p->out, header_len + size) < 0) {
        return -1;
    }
    char *dst = p->out.data + p->out.len;
    memcpy(dst, header, (size_t)header_len);
    memcpy(dst + header_len, data, (size_t)size);
    p->out.len += header_len + size;
    return 0;
}

/* ============================================================ memo */

static inline int
write_get(pickler_core *p, Py_ssize_t idx)
{
    char buf[32];
    if (p->bin) {
        if (idx < 256) {
            return outbuf_put2(&p->out, (char)OP_BINGET, (char)idx);
        }
        if (idx > 0xffffffffLL) {
            PyErr_SetString(p->st->PicklingError,
                            "memo id too large for LONG_BINGET");
            return -1;
        }
        buf[0] = (char)OP_LONG_BINGET;
        pack_u32(buf + 1, (uint32_t)idx);
        return wn(p, buf, 5);
    }
    int n = snprintf(buf, sizeof(buf), "g%zd\n", idx);
    return wn(p, buf, n);
}

/* The value of an int that fits in one digit, the common case. */
static inline int
compact_long(PyObject *obj, long *value)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)obj)) {
        return 0;
    }
    *value = (long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
    return 1;
#else
    Py_ssize_t size = Py_SIZE(obj);
    if (size < -1 || size > 1) {
        return 0;
    }
    *value = (long)size * (long)((PyLongObject *)obj)->ob_digit[0];
    return 1;
#endif
}

/* Save obj: returns 0 when it is written, 1 when a frame was pushed (the
 * caller returns to the loop), -1 on error. Inline: the atoms that make
 * up most of any pickle (small ints, strings and memo hits, None, floats)
 * are written here when no frame boundary or persistent_id is pending;
 * everything else goes through save_slow(). */
static inline int
save(pickler_core *p, PyObject *obj, int pers_save)
{
    if (p->out.len < p->fast_limit) {
        PyTypeObject *type = Py_TYPE(obj);
        if (type == &PyUnicode_Type) {
            Py_ssize_t idx = memo_get(&p->memo, obj);
            if (idx >= 0) {
                return write_get(p, idx);
            }
            return save_str(p, obj);
        }
        long v;
        if (type == &PyLong_Type && compact_long(obj, &v)) {
            if (outbuf_reserve(&p->out, 5) < 0) {
                return -1;
            }
            char *dst = p->out.data + p->out.len;
            if (v >= 0 && v <= 0xff) {
                dst[0] = (char)OP_BININT1;
                dst[1] = (char)v;
                p->out.len += 2;
            }
            else if (v >= 0 && v <= 0xffff) {
                dst[0] = (char)OP_BININT2;
                dst[1] = (char)(v & 0xff);
                dst[2] = (char)(v >> 8);
                p->out.len += 3;
            }
            else {
                /* one digit: at most 30 bits, fits BININT */
                dst[0] = (char)OP_BININT;
                pack_u32(dst + 1, (uint32_t)(int32_t)v);
                p->out.len += 5;
            }
            return 0;
        }
        if (obj == Py_None) {
            return w1(p, (char)OP_NONE);
        }
        if (type == &PyBool_Type && p->proto >= 2) {
            return w1(p, (char)(obj == Py_True ? OP_NEWTRUE : OP_NEWFALSE));
        }
        if (type == &PyFloat_Type) {
            if (outbuf_reserve(&p->out, 9) < 0) {
                return -1;
            }
            char *dst = p->out.data + p->out.len;
            dst[0] = (char)OP_BINFLOAT;
            if (PyFloat_Pack8(PyFloat_AS_DOUBLE(obj), dst + 1, 0) < 0) {
                return -1;
            }
            p->out.len += 9;
            return 0;
        }
    }
    return save_slow(p, obj, pers_save);
}

/* The index the next memoized object gets. */
static inline Py_ssize_t
memo_next(pickler_core *p)
{
    return p->memo.used + p->phantoms;
}

/* The opcode that stores the stack top at memo index idx. */
static int
write_put(pickler_core *p, Py_ssize_t idx)
{
    char buf[32];
    if (p->proto >= 4) {
        return w1(p, (char)OP_MEMOIZE);
    }
    if (p->bin) {
        if (idx < 256) {
            return outbuf_put2(&p->out, (char)OP_BINPUT, (char)idx);
        }
        if (idx > 0xffffffffLL) {
            PyErr_SetString(p->st->PicklingError,
                            "memo id too large for LONG_BINPUT");
            return -1;
        }
        buf[0] = (char)OP_LONG_BINPUT;
        pack_u32(buf + 1, (uint32_t)idx);
        return wn(p, buf, 5);
    }
    int n = snprintf(buf, sizeof(buf), "p%zd\n", idx);
    return wn(p, buf, n);
}

/* Store obj in the memo and write the opcode that does so. */
static int
memoize(pickler_core *p, PyObject *obj)
{
    if (p->fast) {
        return 0;
    }
    Py_ssize_t idx = memo_next(p);
    if (memo_insert(&p->memo, obj, idx) < 0) {
        return -1;
    }
    return write_put(p, idx);
}

/* ============================================================ fast mode */

/* Fast mode keeps no memo; refuse cycles instead of looping forever. */
static int
enter_fast(pickler_core *p, PyObject *obj)
{
    if (!p->fast) {
        return 0;
    }
    if (p->fast_active == NULL) {
        p->fast_active = PyDict_New();
        if (p->fast_active == NULL) {
            return -1;
        }
    }
    PyObject *key = PyLong_FromVoidPtr(obj);
    if (key == NULL) {
        return -1;
    }
    int r = PyDict_Contains(p->fast_active, key);
    if (r == 0) {
        r = PyDict_SetItem(p->fast_active, key, obj);
    }
    else if (r > 0) {
        PyErr_Format(PyExc_ValueError,
                     "fast mode: can't pickle cyclic objects including "
                     "object type %s at %p", Py_TYPE(obj)->tp_name, obj);
        r = -1;
    }
    Py_DECREF(key);
    return r;
}

static int
leave_fast(pickler_core *p, PyObject *obj)
{
    if (!p->fast || p->fast_active == NULL || obj == NULL) {
        return 0;
    }
    PyObject *key = PyLong_FromVoidPtr(obj);
    if (key == NULL) {
        return -1;
    }
    int r = PyDict_DelItem(p->fast_active, key);
    Py_DECREF(key);
    if (r < 0 && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        r = 0;
    }
    return r;
}

/* ============================================================ frames */

static save_frame *
push_frame(pickler_core *p, int kind, PyObject *obj)
{
    if (p->depth == p->frames_cap) {
        Py_ssize_t cap = p->frames_cap * 2;
        save_frame *frames;
        if (p->frames == p->frames_small) {
            frames = PyMem_Malloc((size_t)cap * sizeof(save_frame));
            if (frames != NULL) {
                memcpy(frames, p->frames_small,
                       (size_t)p->depth * sizeof(save_frame));
            }
        }
        else if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(save_frame)) {
            frames = NULL;
        }
        else {
            frames = PyMem_Realloc(p->frames,
                                   (size_t)cap * sizeof(save_frame));
        }
        if (frames == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        p->frames = frames;
        p->frames_cap = cap;
    }
    if ((p->depth & 0xffff) == 0xffff && PyErr_CheckSignals() < 0) {
        /* deep data, or a reduction that never ends: let Ctrl-C stop it */
        return NULL;
    }
    save_frame *f = &p->frames[p->depth++];
    Py_XINCREF(obj);
    f->obj = obj;
    f->a = f->b = f->c = NULL;
    f->i = f->n = 0;
    f->count = 0;
    f->kind = (uint8_t)kind;
    f->phase = 0;
    f->what = W_NONE;
    f->flags = 0;
    return f;
}

/* A new frame at stack index `at`, below the frames above it. */
static save_frame *
insert_frame(pickler_core *p, Py_ssize_t at, int kind)
{
    save_frame *top = push_frame(p, kind, NULL);
    if (top == NULL) {
        return NULL;
    }
    save_frame fresh = *top;
    memmove(&p->frames[at + 1], &p->frames[at],
            (size_t)(p->depth - 1 - at) * sizeof(save_frame));
    p->frames[at] = fresh;
    return &p->frames[at];
}

/* An object saved from its reduce value is memoized only after its
 * arguments. Reached again while being saved, it is saved again from the
 * start: legitimate data does that a few times (arguments holding lists
 * that hold the object), a reduce value containing its own object does it
 * forever (every endless loop goes through one: lists, dicts and sets are
 * memoized first, tuples cannot hold themselves). CPython runs out of
 * recursion there; without a recursion limit this pickler would run out
 * of memory, so an object open more than MAX_REENTRY times at once raises
 * the same RecursionError. Counted only while more than GUARD_REDUCES
 * reduced objects are open, the rule of the pure pickler, so both fail at
 * the same place. */
#define GUARD_REDUCES 32
#define MAX_REENTRY 1000

static int
guard_enter(pickler_core *p, save_frame *f)
{
    f->flags |= REDUCE_OPEN;
    if (++p->open_reduces <= GUARD_REDUCES) {
        return 0;
    }
    if (p->unmemoized == NULL) {
        p->unmemoized = PyDict_New();
        if (p->unmemoized == NULL) {
            return -1;
        }
    }
    PyObject *key = PyLong_FromVoidPtr(f->obj);
    if (key == NULL) {
        return -1;
    }
    Py_ssize_t count = 0;
    PyObject *value = PyDict_GetItemWithError(p->unmemoized, key);
    if (value != NULL) {
        count = PyLong_AsSsize_t(value);
    }
    else if (PyErr_Occurred()) {
        goto error;
    }
    if (count >= MAX_REENTRY) {
        PyErr_SetString(PyExc_RecursionError,
                        "maximum recursion depth exceeded while pickling "
                        "an object");
        goto error;
    }
    value = PyLong_FromSsize_t(count + 1);
    if (value == NULL || PyDict_SetItem(p->unmemoized, key, value) < 0) {
        Py_XDECREF(value);
        goto error;
    }
    Py_DECREF(value);
    Py_DECREF(key);
    f->flags |= GUARDED;
    return 0;

error:
    Py_DECREF(key);
    return -1;
}

/* Undo guard_enter when the frame goes; keeps any error in flight. */
static void
guard_leave(pickler_core *p, PyObject *obj)
{
    accel_saved_error saved;
    accel_error_fetch(&saved);
    PyObject *key = PyLong_FromVoidPtr(obj);
    PyObject *value = key ? PyDict_GetItemWithError(p->unmemoized, key) : NULL;
    if (value != NULL) {
        Py_ssize_t count = PyLong_AsSsize_t(value);
        if (count > 1) {
            value = PyLong_FromSsize_t(count - 1);
            if (value != NULL) {
                PyDict_SetItem(p->unmemoized, key, value);
                Py_DECREF(value);
            }
        }
        else {
            PyDict_DelItem(p->unmemoized, key);
        }
    }
    Py_XDECREF(key);
    PyErr_Clear();
    accel_error_restore(&saved);
}

static void
pop_frame(pickler_core *p)
{
    save_frame *f = &p->frames[--p->depth];
    if (f->flags & REDUCE_OPEN) {
        p->open_reduces--;
        if (f->flags & GUARDED) {
            guard_leave(p, f->obj);
        }
    }
    PyObject *obj = f->obj, *a = f->a, *b = f->b, *c = f->c;
    f->obj = f->a = f->b = f->c = NULL;
    Py_XDECREF(obj);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
}

/* ============================================================ notes */

/* How notes name the type of obj: 'dict', 'mymod.Thing' (no module for
 * builtins and __main__). */
static PyObject *
type_label(pickler_core *p, PyObject *obj)
{
    pickler_cache *c = p->cache;
    PyObject *cls = (PyObject *)Py_TYPE(obj != NULL ? obj : Py_None);
    PyObject *module, *qualname, *label = NULL;
    if (lookup_attr(cls, c->s_module, &module) < 0) {
        return NULL;
    }
    if (lookup_attr(cls, c->s_qualname, &qualname) < 0) {
        Py_XDECREF(module);
        return NULL;
    }
    if (qualname == NULL) {
        qualname = PyObject_GetAttr(cls, c->s_name);
        if (qualname == NULL) {
            Py_XDECREF(module);
            return NULL;
        }
    }
    int plain = module == NULL || module == Py_None;
    if (!plain && PyUnicode_Check(module)) {
        plain = PyUnicode_Compare(module, c->s_builtins) == 0
                || PyUnicode_Compare(module, c->s_main) == 0;
    }
    if (plain) {
        label = PyObject_Str(qualname);
    }
    else {
        label = PyUnicode_FromFormat("%S.%S", module, qualname);
    }
    Py_XDECREF(module);
    Py_DECREF(qualname);
    return label;
}

/* The note frame f adds to exception exc while the stack unwinds, or NULL
 * (no note, or it could not be made: the original error wins). */
static PyObject *
frame_note(pickler_core *p, save_frame *f)
{
    PyObject *label, *note = NULL, *key;
    switch (f->kind) {
    case F_TUPLE:
        return PyUnicode_FromFormat("when serializing tuple item %zd", f->i);
    case F_LIST:
        return PyUnicode_FromFormat("when serializing list item %zd", f->i);
    case F_APPENDS:
        label = type_label(p, f->obj);
        if (label != NULL) {
            note = PyUnicode_FromFormat("when serializing %U item %zd",
                                        label, f->i);
            Py_DECREF(label);
        }
        return note;
    case F_DICT:
        if (!(f->flags & DF_VALUE)) {
            return NULL;        /* a key failed: no note, as in CPython */
        }
        key = f->a != NULL ? f->a : Py_None;
        return PyUnicode_FromFormat("when serializing dict item %R", key);
    case F_SETITEMS:
        if (!(f->flags & IF_VALUE)) {
            return NULL;
        }
        key = f->b != NULL ? PyTuple_GET_ITEM(f->b, 0) : Py_None;
        label = type_label(p, f->obj);
        if (label != NULL) {
            note = PyUnicode_FromFormat("when serializing %U item %R",
                                        label, key);
            Py_DECREF(label);
        }
        return note;
    case F_SET:
        return PyUnicode_FromString("when serializing set element");
    case F_SET_REDUCE:
        return PyUnicode_FromFormat("when serializing list item %zd", f->i);
    case F_FROZENSET:
        return PyUnicode_FromString("when serializing frozenset element");
    default:
        return NULL;
    }
}

static int
add_note(pickler_cache *c, PyObject *exc, PyObject *note)
{
    PyObject *r = PyObject_CallMethodOneArg(exc, c->s_add_note, note);
    Py_DECREF(note);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Add frame f's notes to exc. Failures to make a note are ignored: the
 * error being reported is the one that matters. */
static void
frame_add_notes(pickler_core *p, save_frame *f, PyObject *exc)
{
    pickler_cache *c = p->cache;
    if (f->kind == F_REDUCE) {
        if (f->obj == NULL) {
            return;
        }
        PyObject *label = type_label(p, f->obj);
        if (label == NULL) {
            PyErr_Clear();
            return;
        }
        const char *what = f->what < sizeof(WHAT_TEXT) / sizeof(WHAT_TEXT[0])
                           ? WHAT_TEXT[f->what] : NULL;
        PyObject *note;
        if (what != NULL) {
            note = PyUnicode_FromFormat("when serializing %U %s", label,
                                        what);
            if (note == NULL || add_note(c, exc, note) < 0) {
                PyErr_Clear();
            }
        }
        if (!(f->flags & RF_INTERNAL)) {
            note = PyUnicode_FromFormat("when serializing %U object", label);
            if (note == NULL || add_note(c, exc, note) < 0) {
                PyErr_Clear();
            }
        }
        Py_DECREF(label);
        return;
    }
    PyObject *note = frame_note(p, f);
    if (note == NULL || add_note(c, exc, note) < 0) {
        PyErr_Clear();
    }
    if (f->kind == F_SET_REDUCE) {
        /* the levels the list and tuple of (set, (list,)) would add */
        note = PyUnicode_FromString("when serializing tuple item 0");
        if (note == NULL || add_note(c, exc, note) < 0) {
            PyErr_Clear();
        }
        save_frame reduce = *f;
        reduce.kind = F_REDUCE;
        reduce.what = W_RECON_ARGS;
        reduce.flags = RF_INTERNAL;
        frame_add_notes(p, &reduce, exc);
    }
}

/* Add "when serializing X object" to the error being raised (obj may be
 * NULL: nothing to name). */
static void
note_object(pickler_core *p, PyObject *obj)
{
    if (obj == NULL || !PyErr_Occurred()) {
        return;
    }
    accel_saved_error saved;
    accel_error_fetch(&saved);
    PyObject *value = accel_error_value(&saved);
    if (value != NULL
        && PyObject_TypeCheck(value, (PyTypeObject *)PyExc_Exception)) {
        PyObject *label = type_label(p, obj);
        if (label == NULL) {
            PyErr_Clear();
        }
        else {
            PyObject *note = PyUnicode_FromFormat(
                "when serializing %U object", label);
            Py_DECREF(label);
            if (note == NULL || add_note(p->cache, value, note) < 0) {
                PyErr_Clear();
            }
        }
    }
    accel_error_restore(&saved);
}

/* An error is propagating: pop the frames above `base`, each adding its
 * note, as each level of the pure pickler's tasks does. Notes go only on
 * Exception instances (not on KeyboardInterrupt and the like). */
static void
unwind(pickler_core *p, Py_ssize_t base)
{
    accel_saved_error saved;
    accel_error_fetch(&saved);
    PyObject *value = accel_error_value(&saved);
    int notes = value != NULL
                && PyObject_TypeCheck(value, (PyTypeObject *)PyExc_Exception);
    while (p->depth > base) {
        if (notes) {
            frame_add_notes(p, &p->frames[p->depth - 1], value);
        }
        pop_frame(p);
    }
    accel_error_restore(&saved);
}

/* ============================================================ atoms */

static int
save_bool(pickler_core *p, PyObject *obj)
{
    if (p->proto >= 2) {
        return w1(p, (char)(obj == Py_True ? OP_NEWTRUE : OP_NEWFALSE));
    }
    return wn(p, obj == Py_True ? "I01\n" : "I00\n", 4);
}

/* Little-endian two's complement of a C long, in as few bytes as LONG1
 * needs (CPython's rule: one byte more than the magnitude's bits need,
 * less a redundant 0xff sign byte). Returns the length. */
static int
encode_small_long(long long v, unsigned char *out)
{
    unsigned long long mag = v < 0 ? (unsigned long long)(-(v + 1)) + 1
                                   : (unsigned long long)v;
    int nbits = mag == 0 ? 0 : 64 - __builtin_clzll(mag);
    int nbytes = (nbits >> 3) + 1;
    unsigned long long u = (unsigned long long)v;
    for (int i = 0; i < nbytes; i++) {
        out[i] = i < 8 ? (unsigned char)(u >> (8 * i)) : (v < 0 ? 0xff : 0);
    }
    if (v < 0 && nbytes > 1 && out[nbytes - 1] == 0xff
        && (out[nbytes - 2] & 0x80)) {
        nbytes--;
    }
    return nbytes;
}

static int
save_long(pickler_core *p, PyObject *obj)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    char buf[32];
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow && v >= -0x80000000LL && v <= 0x7fffffffLL) {
        if (p->bin) {
            if (v >= 0 && v <= 0xff) {
                return outbuf_put2(&p->out, (char)OP_BININT1, (char)v);
            }
            if (v >= 0 && v <= 0xffff) {
                buf[0] = (char)OP_BININT2;
                buf[1] = (char)(v & 0xff);
                buf[2] = (char)(v >> 8);
                return wn(p, buf, 3);
            }
            buf[0] = (char)OP_BININT;
            pack_u32(buf + 1, (uint32_t)(int32_t)v);
            return wn(p, buf, 5);
        }
        int n = snprintf(buf, sizeof(buf), "I%lld\n", v);
        return wn(p, buf, n);
    }
    if (p->proto >= 2) {
        if (!overflow) {
            buf[0] = (char)OP_LONG1;
            int n = encode_small_long(v, (unsigned char *)buf + 2);
            buf[1] = (char)n;
            return wn(p, buf, n + 2);
        }
        size_t nbits = _PyLong_NumBits(obj);
        if (nbits == (size_t)-1 && PyErr_Occurred()) {
            return -1;
        }
        size_t nbytes = (nbits >> 3) + 1;
        if (nbytes > 0x7fffffffUL) {
            PyErr_SetString(PyExc_OverflowError, "int too large to pickle");
            return -1;
        }
        if (outbuf_reserve(&p->out, (Py_ssize_t)nbytes + 5) < 0) {
            return -1;
        }
        unsigned char *data = (unsigned char *)p->out.data + p->out.len + 5;
#if PY_VERSION_HEX >= 0x030D0000
        if (_PyLong_AsByteArray((PyLongObject *)obj, data, nbytes, 1, 1,
                                1) < 0) {
#else
        if (_PyLong_AsByteArray((PyLongObject *)obj, data, nbytes, 1, 1) < 0) {
#endif
            return -1;
        }
        if (overflow < 0 && nbytes > 1 && data[nbytes - 1] == 0xff
            && (data[nbytes - 2] & 0x80)) {
            nbytes--;
        }
        char *dst = p->out.data + p->out.len;
        if (nbytes < 256) {
            dst[0] = (char)OP_LONG1;
            dst[1] = (char)nbytes;
            memmove(dst + 2, data, nbytes);
            p->out.len += 2 + (Py_ssize_t)nbytes;
        }
        else {
            dst[0] = (char)OP_LONG4;
            pack_u32(dst + 1, (uint32_t)nbytes);
            p->out.len += 5 + (Py_ssize_t)nbytes;
        }
        return 0;
    }
    /* Protocols 0 and 1: the decimal text with a trailing L, as Python 2
     * wrote longs. */
    PyObject *repr = PyObject_Repr(obj);
    if (repr == NULL) {
        return -1;
    }
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(repr, &size);
    int r = -1;
    if (text != NULL && w1(p, (char)OP_LONG) == 0 && wn(p, text, size) == 0
        && wn(p, "L\n", 2) == 0) {
        r = 0;
    }
    Py_DECREF(repr);
    return r;
}

static int
save_float(pickler_core *p, PyObject *obj)
{
    double x = PyFloat_AS_DOUBLE(obj);
    if (p->bin) {
        if (outbuf_reserve(&p->out, 9) < 0) {
            return -1;
        }
        char *dst = p->out.data + p->out.len;
        dst[0] = (char)OP_BINFLOAT;
        if (PyFloat_Pack8(x, dst + 1, 0) < 0) {
            return -1;
        }
        p->out.len += 9;
        return 0;
    }
    char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return -1;
    }
    int r = -1;
    if (w1(p, (char)OP_FLOAT) == 0
        && wn(p, text, (Py_ssize_t)strlen(text)) == 0 && w1(p, '\n') == 0) {
        r = 0;
    }
    PyMem_Free(text);
    return r;
}

/* ============================================================ str, bytes */

/* Protocol 0's UNICODE argument: raw-unicode-escape, with also \\, \0,
 * \n, \r and \x1a escaped so that the line stays one line. */
static int
write_unicode_text(pickler_core *p, PyObject *obj)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(obj);
    int kind = PyUnicode_KIND(obj);
    const void *data = PyUnicode_DATA(obj);
    static const char hex[] = "0123456789abcdef";
    if (n > (PY_SSIZE_T_MAX - 2) / 10) {
        PyErr_NoMemory();
        return -1;
    }
    if (outbuf_reserve(&p->out, 10 * n + 2) < 0) {
        return -1;
    }
    char *dst = p->out.data + p->out.len;
    *dst++ = (char)OP_UNICODE;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch >= 0x10000) {
            *dst++ = '\\';
            *dst++ = 'U';
            for (int shift = 28; shift >= 0; shift -= 4) {
                *dst++ = hex[(ch >> shift) & 0xf];
            }
        }
        else if (ch >= 256 || ch == '\\' || ch == 0 || ch == '\n'
                 || ch == '\r' || ch == 0x1a) {
            *dst++ = '\\';
            *dst++ = 'u';
            for (int shift = 12; shift >= 0; shift -= 4) {
                *dst++ = hex[(ch >> shift) & 0xf];
            }
        }
        else {
            *dst++ = (char)ch;
        }
    }
    *dst++ = '\n';
    p->out.len = dst - p->out.data;
    return 0;
}

static int
save_str(pickler_core *p, PyObject *obj)
{
    if (!p->bin) {
        if (write_unicode_text(p, obj) < 0) {
            return -1;
        }
        return memoize(p, obj);
    }
    const char *data;
    Py_ssize_t size;
    PyObject *encoded = NULL;
    if (PyUnicode_IS_ASCII(obj)) {
        data = (const char *)PyUnicode_DATA(obj);
        size = PyUnicode_GET_LENGTH(obj);
    }
    else {
        data = PyUnicode_AsUTF8AndSize(obj, &size);
        if (data == NULL) {
            /* Lone surrogates: pickle keeps them ("surrogatepass"). */
            PyErr_Clear();
            encoded = PyUnicode_AsEncodedString(obj, "utf-8",
                                                "surrogatepass");
            if (encoded == NULL) {
                return -1;
            }
            data = PyBytes_AS_STRING(encoded);
            size = PyBytes_GET_SIZE(encoded);
        }
    }
    char header[9];
    Py_ssize_t header_len;
    if (size <= 0xff && p->proto >= 4) {
        /* the common case: one reserve, two copies */
        if (outbuf_reserve(&p->out, size + 3) < 0) {
            Py_XDECREF(encoded);
            return -1;
        }
        char *dst = p->out.data + p->out.len;
        dst[0] = (char)OP_SHORT_BINUNICODE;
        dst[1] = (char)size;
        memcpy(dst + 2, data, (size_t)size);
        dst[2 + size] = (char)OP_MEMOIZE;
        Py_XDECREF(encoded);
        if (p->fast) {
            p->out.len += size + 2;
            return 0;
        }
        if (memo_insert(&p->memo, obj, memo_next(p)) < 0) {
            return -1;
        }
        p->out.len += size + 3;
        return 0;
    }
    if ((size_t)size <= 0xffffffffUL) {
        header[0] = (char)OP_BINUNICODE;
        pack_u32(header + 1, (uint32_t)size);
        header_len = 5;
    }
    else if (p->proto >= 4) {
        header[0] = (char)OP_BINUNICODE8;
        pack_u64(header + 1, (uint64_t)size);
        header_len = 9;
    }
    else {
        Py_XDECREF(encoded);
        PyErr_SetString(PyExc_OverflowError,
                        "serializing a string larger than 4 GiB requires "
                        "pickle protocol 4 or higher");
        return -1;
    }
    int r = write_with_header(p, header, header_len, data, size, encoded);
    Py_XDECREF(encoded);
    if (r < 0) {
        return -1;
    }
    return memoize(p, obj);
}

/* BINBYTES family for data, memoized as obj (bytes or a PickleBuffer). */
static int
save_bytes_data(pickler_core *p, PyObject *obj, const char *data,
                Py_ssize_t size, PyObject *payload)
{
    char header[9];
    Py_ssize_t header_len;
    if (size <= 0xff) {
        header[0] = (char)OP_SHORT_BINBYTES;
        header[1] = (char)size;
        header_len = 2;
    }
    else if ((size_t)size <= 0xffffffffUL) {
        header[0] = (char)OP_BINBYTES;
        pack_u32(header + 1, (uint32_t)size);
        header_len = 5;
    }
    else if (p->proto >= 4) {
        header[0] = (char)OP_BINBYTES8;
        pack_u64(header + 1, (uint64_t)size);
        header_len = 9;
    }
    else {
        PyErr_SetString(PyExc_OverflowError,
                        "serializing a bytes object larger than 4 GiB "
                        "requires pickle protocol 4 or higher");
        return -1;
    }
    if (write_with_header(p, header, header_len, data, size, payload) < 0) {
        return -1;
    }
    return memoize(p, obj);
}

static int
save_bytearray_data(pickler_core *p, PyObject *obj, const char *data,
                    Py_ssize_t size, PyObject *payload)
{
    char header[9];
    header[0] = (char)OP_BYTEARRAY8;
    pack_u64(header + 1, (uint64_t)size);
    if (write_with_header(p, header, 9, data, size, payload) < 0) {
        return -1;
    }
    return memoize(p, obj);
}

/* ============================================================ reduce */

static const char *
tp_name(PyObject *obj)
{
    return Py_TYPE(obj)->tp_name;
}

/* Check a reduce value and push the frame that saves obj from it.
 * rv: (callable, args[, state[, listitems[, dictitems[, state_setter]]]]).
 * obj may be NULL (a value not to be memoized). */
static save_frame *push_iter_frame(pickler_core *p, int kind, PyObject *obj,
                                   PyObject *iter);

static int
save_reduce(pickler_core *p, PyObject *rv, PyObject *obj, int internal)
{
    PyObject *picklingerror = p->st->PicklingError;
    Py_ssize_t size = PyTuple_GET_SIZE(rv);
    if (size < 2 || size > 6) {
        PyErr_SetString(picklingerror,
                        "tuple returned by __reduce__ must contain 2 through "
                        "6 elements");
        goto invalid;
    }
    PyObject *func = PyTuple_GET_ITEM(rv, 0);
    PyObject *args = PyTuple_GET_ITEM(rv, 1);
    PyObject *listitems = size > 3 ? PyTuple_GET_ITEM(rv, 3) : Py_None;
    PyObject *dictitems = size > 4 ? PyTuple_GET_ITEM(rv, 4) : Py_None;
    PyObject *setter = size > 5 ? PyTuple_GET_ITEM(rv, 5) : Py_None;
    if (!PyCallable_Check(func)) {
        PyErr_SetString(picklingerror,
                        "first item of the tuple returned by __reduce__ "
                        "must be callable");
        goto invalid;
    }
    if (!PyTuple_Check(args)) {
        PyErr_SetString(picklingerror,
                        "second item of the tuple returned by __reduce__ "
                        "must be a tuple");
        goto invalid;
    }
    if (listitems != Py_None && !PyIter_Check(listitems)) {
        PyErr_Format(picklingerror,
                     "fourth element of the tuple returned by __reduce__ "
                     "must be an iterator, not %s", tp_name(listitems));
        goto invalid;
    }
    if (dictitems != Py_None && !PyIter_Check(dictitems)) {
        PyErr_Format(picklingerror,
                     "fifth element of the tuple returned by __reduce__ "
                     "must be an iterator, not %s", tp_name(dictitems));
        goto invalid;
    }
    if (setter != Py_None && !PyCallable_Check(setter)) {
        PyErr_Format(picklingerror,
                     "sixth element of the tuple returned by __reduce__ "
                     "must be a function, not %s", tp_name(setter));
        goto invalid;
    }
    int flags = 0;
    if (p->proto >= 2) {
        PyObject *name;
        if (lookup_attr(func, p->cache->s_name, &name) < 0) {
            goto invalid;
        }
        if (name != NULL) {
            if (PyUnicode_Check(name)) {
                if (PyUnicode_Compare(name, p->cache->s_newobj_ex) == 0) {
                    flags = RF_NEWOBJ_EX;
                }
                else if (PyUnicode_Compare(name, p->cache->s_newobj) == 0) {
                    flags = RF_NEWOBJ;
                }
            }
            Py_DECREF(name);
        }
    }
    save_frame *f = push_frame(p, F_REDUCE, obj);
    if (f == NULL) {
        return -1;
    }
    Py_INCREF(rv);
    f->a = rv;
    f->flags = (uint8_t)(flags | (internal ? RF_INTERNAL : 0));
    if (obj != NULL && guard_enter(p, f) < 0) {
        return -1;
    }
    f->what = W_NONE;
    return 1;

invalid:
    /* As in CPython, a bad reduce value from __reduce_ex__, a dispatch
     * table or reducer_override names the object it came from. */
    if (!internal) {
        note_object(p, obj);
    }
    return -1;
}

/* Save obj through a reduce value built here: (func, args) with obj. */
static int
save_reduce_pair(pickler_core *p, PyObject *func, PyObject *args,
                 PyObject *obj)
{
    if (args == NULL) {
        return -1;
    }
    PyObject *rv = PyTuple_Pack(2, func, args);
    Py_DECREF(args);
    if (rv == NULL) {
        return -1;
    }
    int r = save_reduce(p, rv, obj, 1);
    Py_DECREF(rv);
    return r;
}

/* Item i of a reduce frame's value (None and missing items: NULL). */
static inline PyObject *
rv_item(save_frame *f, Py_ssize_t i)
{
    if (f->flags & RF_PLAIN) {
        return i == 2 ? f->b : NULL;
    }
    PyObject *rv = f->a;
    if (PyTuple_GET_SIZE(rv) <= i) {
        return NULL;
    }
    PyObject *item = PyTuple_GET_ITEM(rv, i);
    return item == Py_None ? NULL : item;
}

/* Save a child of frame f (at stack index fi), to resume at `phase`.
 * Returns -1, 0 (saved, continue here) or 1 (child frame pushed: return
 * to the loop). The child is kept alive by the caller. */
#define SAVE_CHILD(child, next_phase, pers)                                  \
    do {                                                                     \
        f->phase = (next_phase);                                             \
        int r_ = save(p, (child), (pers));                                   \
        if (r_ != 0) {                                                       \
            return r_;                                                       \
        }                                                                    \
    } while (0)

/* A temporary child: the reference is dropped after save(). */
#define SAVE_TEMP(child, next_phase)                                         \
    do {                                                                     \
        PyObject *t_ = (child);                                              \
        if (t_ == NULL) {                                                    \
            return -1;                                                       \
        }                                                                    \
        f->phase = (next_phase);                                             \
        int r_ = save(p, t_, 0);                                             \
        Py_DECREF(t_);                                                       \
        if (r_ != 0) {                                                       \
            return r_;                                                       \
        }                                                                    \
    } while (0)

static PyObject *
make_partial_new(pickler_core *p, PyObject *cls, PyObject *cls_args,
                 PyObject *kwargs)
{
    PyObject *new_func = PyObject_GetAttr(cls, p->cache->s_new);
    if (new_func == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(cls_args);
    PyObject *all = PyTuple_New(n + 2);
    if (all == NULL) {
        Py_DECREF(new_func);
        return NULL;
    }
    PyTuple_SET_ITEM(all, 0, new_func);
    Py_INCREF(cls);
    PyTuple_SET_ITEM(all, 1, cls);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(cls_args, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(all, i + 2, item);
    }
    PyObject *partial = PyObject_Call(p->st->partial, all, kwargs);
    Py_DECREF(all);
    return partial;
}

/* After the call (REDUCE / NEWOBJ): memoize obj, unless saving its
 * arguments saved it already (then drop what was built and fetch it). */
static int
reduce_after_call(pickler_core *p, save_frame *f, int *done)
{
    PyObject *obj = f->obj;
    *done = 0;
    if (obj == NULL) {
        return 0;
    }
    Py_ssize_t idx = memo_get(&p->memo, obj);
    if (idx >= 0) {
        *done = 1;
        if (w1(p, (char)OP_POP) < 0 || write_get(p, idx) < 0) {
            return -1;
        }
        return leave_fast(p, obj);
    }
    return memoize(p, obj);
}

/* The list items (rv[3]) or dict items (rv[4]) of reduce frame f: push
 * the frame that reads them, to resume f at next_phase. */
static int
save_reduce_items(pickler_core *p, save_frame *f, int kind, Py_ssize_t i,
                  int next_phase)
{
    PyObject *items = rv_item(f, i);
    f->what = W_NONE;
    f->phase = (uint8_t)next_phase;
    /* (push_frame may move the frames: f is not used after it) */
    return push_iter_frame(p, kind, f->obj, Py_NewRef(items)) == NULL ? -1 : 1;
}

static int
step_reduce(pickler_core *p, save_frame *f)
{
    PyObject *rv = f->a;
    PyObject *obj = f->obj;
    PyObject *picklingerror = p->st->PicklingError;
    PyObject *args = rv != NULL ? PyTuple_GET_ITEM(rv, 1) : NULL;
    int done;

    switch (f->phase) {
    case R_START:
        if (obj != NULL && enter_fast(p, obj) < 0) {
            return -1;
        }
        if (f->flags & RF_PLAIN) {
            f->what = W_CLASS;
            SAVE_CHILD((PyObject *)Py_TYPE(obj), R_NEWOBJ_ARGS, 0);
            goto newobj_args;
        }
        if (f->flags & RF_NEWOBJ_EX) {
            if (PyTuple_GET_SIZE(args) != 3) {
                PyErr_Format(picklingerror,
                             "length of the NEWOBJ_EX argument tuple must be "
                             "exactly 3, not %zd", PyTuple_GET_SIZE(args));
                return -1;
            }
            PyObject *cls = PyTuple_GET_ITEM(args, 0);
            PyObject *cls_args = PyTuple_GET_ITEM(args, 1);
            PyObject *kwargs = PyTuple_GET_ITEM(args, 2);
            if (!PyType_Check(cls)) {
                PyErr_Format(picklingerror,
                             "first item from NEWOBJ_EX argument tuple must "
                             "be a class, not %s", tp_name(cls));
                return -1;
            }
            if (!PyTuple_Check(cls_args)) {
                PyErr_Format(picklingerror,
                             "second item from NEWOBJ_EX argument tuple must "
                             "be a tuple, not %s", tp_name(cls_args));
                return -1;
            }
            if (!PyDict_Check(kwargs)) {
                PyErr_Format(picklingerror,
                             "third item from NEWOBJ_EX argument tuple must "
                             "be a dict, not %s", tp_name(kwargs));
                return -1;
            }
            if (p->proto >= 4) {
                f->what = W_CLASS;
                SAVE_CHILD(cls, R_NEWOBJ_EX_ARGS, 0);
                goto newobj_ex_args;
            }
            f->what = W_RECONSTRUCTOR;
            SAVE_TEMP(make_partial_new(p, cls, cls_args, kwargs),
                      R_PARTIAL_ARGS);
            goto partial_args;
        }
        if (f->flags & RF_NEWOBJ) {
            if (PyTuple_GET_SIZE(args) == 0) {
                PyErr_SetString(picklingerror, "__newobj__ arglist is empty");
                return -1;
            }
            PyObject *cls = PyTuple_GET_ITEM(args, 0);
            if (!PyType_Check(cls)) {
                PyErr_SetString(picklingerror,
                                "args[0] from __newobj__ args is not a type");
                return -1;
            }
            if (obj != NULL) {
                PyObject *obj_class = PyObject_GetAttr(obj,
                                                       p->cache->s_class);
                if (obj_class == NULL) {
                    return -1;
                }
                Py_DECREF(obj_class);
                if (obj_class != cls) {
                    PyErr_SetString(picklingerror,
                                    "args[0] from __newobj__ args has the "
                                    "wrong class");
                    return -1;
                }
            }
            f->what = W_CLASS;
            SAVE_CHILD(cls, R_NEWOBJ_ARGS, 0);
            goto newobj_args;
        }
        f->what = W_RECONSTRUCTOR;
        SAVE_CHILD(PyTuple_GET_ITEM(rv, 0), R_FUNC_ARGS, 0);
        /* fall through */
    case R_FUNC_ARGS:
        f->what = W_RECON_ARGS;
        SAVE_CHILD(args, R_REDUCE_DONE, 0);
        /* fall through */
    case R_REDUCE_DONE:
        if (w1(p, (char)OP_REDUCE) < 0) {
            return -1;
        }
        goto after_call;

    case R_NEWOBJ_EX_ARGS:
    newobj_ex_args:
        f->what = W_NEW_ARGS;
        SAVE_CHILD(PyTuple_GET_ITEM(args, 1), R_NEWOBJ_EX_KW, 0);
        /* fall through */
    case R_NEWOBJ_EX_KW:
        SAVE_CHILD(PyTuple_GET_ITEM(args, 2), R_NEWOBJ_EX_DONE, 0);
        /* fall through */
    case R_NEWOBJ_EX_DONE:
        if (w1(p, (char)OP_NEWOBJ_EX) < 0) {
            return -1;
        }
        goto after_call;

    case R_PARTIAL_ARGS:
    partial_args:
        f->what = W_RECON_ARGS;
        SAVE_CHILD(p->cache->empty_tuple, R_REDUCE_DONE, 0);
        if (w1(p, (char)OP_REDUCE) < 0) {
            return -1;
        }
        goto after_call;

    case R_NEWOBJ_ARGS:
    newobj_args:
        f->what = W_NEW_ARGS;
        if (f->flags & RF_PLAIN) {
            SAVE_CHILD(p->cache->empty_tuple, R_NEWOBJ_DONE, 0);
        }
        else {
            SAVE_TEMP(PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args)),
                      R_NEWOBJ_DONE);
        }
        /* fall through */
    case R_NEWOBJ_DONE:
        if (w1(p, (char)OP_NEWOBJ) < 0) {
            return -1;
        }
        goto after_call;

    case R_AFTER_CALL:
    after_call:
        f->phase = R_AFTER_CALL;
        if (reduce_after_call(p, f, &done) < 0) {
            return -1;
        }
        if (done) {
            return 0;
        }
        if (rv_item(f, 3) != NULL) {
            return save_reduce_items(p, f, F_APPENDS, 3, R_DICTITEMS);
        }
        /* fall through */
    case R_DICTITEMS:
        if (rv_item(f, 4) != NULL) {
            return save_reduce_items(p, f, F_SETITEMS, 4, R_STATE);
        }
        /* fall through */
    case R_STATE:
        {
            PyObject *state = rv_item(f, 2);
            if (state != NULL) {
                PyObject *setter = rv_item(f, 5);
                if (setter != NULL) {
                    f->what = W_STATE_SETTER;
                    SAVE_CHILD(setter, R_SETTER_OBJ, 0);
                    goto setter_obj;
                }
                f->what = W_STATE;
                SAVE_CHILD(state, R_BUILD, 0);
                goto build;
            }
        }
        goto end;

    case R_SETTER_OBJ:
    setter_obj:
        f->what = W_OBJECT;
        SAVE_CHILD(obj != NULL ? obj : Py_None, R_SETTER_STATE, 0);
        /* fall through */
    case R_SETTER_STATE:
        f->what = W_STATE;
        SAVE_CHILD(rv_item(f, 2), R_SETTER_DONE, 0);
        /* fall through */
    case R_SETTER_DONE:
        {
            char ops[3] = {(char)OP_TUPLE2, (char)OP_REDUCE, (char)OP_POP};
            if (wn(p, ops, 3) < 0) {
                return -1;
            }
        }
        goto end;

    case R_BUILD:
    build:
        if (w1(p, (char)OP_BUILD) < 0) {
            return -1;
        }
        /* fall through */
    case R_END:
    end:
        f->phase = R_END;
        if (leave_fast(p, obj) < 0) {
            return -1;
        }
        return 0;
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad reduce frame phase");
    return -1;
}

/* ============================================================ containers */

static int
step_tuple(pickler_core *p, save_frame *f)
{
    PyObject *obj = f->obj;
    Py_ssize_t n = f->n;
    switch (f->phase) {
    case PH_ITEM_DONE:
        f->i++;
        /* fall through */
    case PH_ITEM:
        while (f->i < n) {
            SAVE_CHILD(PyTuple_GET_ITEM(obj, f->i), PH_ITEM_DONE, 0);
            f->i++;
        }
        break;
    }
    /* Saving the items may have saved the tuple itself (it contains
     * itself through a mutable object): drop the items, fetch it. */
    int short_form = n <= 3 && p->proto >= 2;
    Py_ssize_t idx = memo_get(&p->memo, obj);
    if (idx >= 0) {
        if (short_form) {
            for (Py_ssize_t k = 0; k < n; k++) {
                if (w1(p, (char)OP_POP) < 0) {
                    return -1;
                }
            }
        }
        else if (p->bin) {
            if (w1(p, (char)OP_POP_MARK) < 0) {
                return -1;
            }
        }
        else {
            for (Py_ssize_t k = 0; k <= n; k++) {
                if (w1(p, (char)OP_POP) < 0) {
                    return -1;
                }
            }
        }
        return write_get(p, idx);
    }
    static const char short_ops[] = {0, (char)OP_TUPLE1, (char)OP_TUPLE2,
                                     (char)OP_TUPLE3};
    if (w1(p, short_form ? short_ops[n] : (char)OP_TUPLE) < 0) {
        return -1;
    }
    return memoize(p, obj);
}

/* Items of an exact list (protocol 1+) in batches of BATCHSIZE; the list
 * is re-read as it goes, as CPython does. */
static int
step_list(pickler_core *p, save_frame *f)
{
    PyObject *obj = f->obj;
    PyObject *item;
    int r;
    switch (f->phase) {
    case PH_SINGLE:
        if (PyList_GET_SIZE(obj) < 1) {
            goto single_done;
        }
        item = PyList_GET_ITEM(obj, 0);
        Py_INCREF(item);
        f->phase = PH_SINGLE_DONE;
        r = save(p, item, 0);
        Py_DECREF(item);
        if (r != 0) {
            return r;
        }
        /* fall through */
    case PH_SINGLE_DONE:
    single_done:
        if (w1(p, (char)OP_APPEND) < 0) {
            return -1;
        }
        return leave_fast(p, obj);

    case PH_START:
    batch_start:
        if (w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        f->count = 0;
        goto items;
    case PH_ITEM_DONE:
        f->i++;
        if (++f->count == BATCHSIZE) {
            goto batch_end;
        }
        /* fall through */
    case PH_ITEM:
    items:
        while (f->i < PyList_GET_SIZE(obj)) {
            item = PyList_GET_ITEM(obj, f->i);
            Py_INCREF(item);
            f->phase = PH_ITEM_DONE;
            r = save(p, item, 0);
            Py_DECREF(item);
            if (r != 0) {
                return r;
            }
            f->i++;
            if (++f->count == BATCHSIZE) {
                break;
            }
        }
        /* fall through */
    case PH_BATCH_END:
    batch_end:
        if (w1(p, (char)OP_APPENDS) < 0) {
            return -1;
        }
        if (f->i < PyList_GET_SIZE(obj)) {
            goto batch_start;
        }
        return leave_fast(p, obj);
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad list frame phase");
    return -1;
}

static int
dict_changed(PyObject *obj, Py_ssize_t size)
{
    if (PyDict_GET_SIZE(obj) != size) {
        PyErr_SetString(PyExc_RuntimeError,
                        "dictionary changed size during iteration");
        return 1;
    }
    return 0;
}

/* Items of an exact dict (protocol 1+): SETITEM for one item, else
 * batches of BATCHSIZE (a dict of 1000*k items ends with an empty one).
 * f->a, f->b: the current key and value; f->i: the iteration position. */
static int
step_dict(pickler_core *p, save_frame *f)
{
    PyObject *obj = f->obj;
    PyObject *key, *value;
    switch (f->phase) {
    case PH_SINGLE:
        /* one item: key, value, SETITEM (no MARK) */
        f->flags |= DF_SINGLE;
        goto next_item;
    case PH_START:
    batch_start:
        if (w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        f->count = 0;
        /* fall through */
    case PH_ITEM:
    next_item:
        if (dict_changed(obj, f->n)) {
            return -1;
        }
        if (!PyDict_Next(obj, &f->i, &key, &value)) {
            goto batch_end;
        }
        Py_INCREF(key);
        Py_INCREF(value);
        Py_XSETREF(f->a, key);
        Py_XSETREF(f->b, value);
        SAVE_CHILD(key, PH_KEY_DONE, 0);
        /* fall through */
    case PH_KEY_DONE:
        /* Only an error in a value gets the "dict item" note, as in
         * CPython; DF_VALUE tells the two apart. */
        f->flags |= DF_VALUE;
        SAVE_CHILD(f->b, PH_VALUE_DONE, 0);
        /* fall through */
    case PH_VALUE_DONE:
        f->flags &= (uint8_t)~DF_VALUE;
        if (f->flags & DF_SINGLE) {
            if (w1(p, (char)OP_SETITEM) < 0) {
                return -1;
            }
            return leave_fast(p, obj);
        }
        if (++f->count != BATCHSIZE) {
            goto next_item;
        }
        /* fall through */
    case PH_BATCH_END:
    batch_end:
        if (w1(p, (char)OP_SETITEMS) < 0) {
            return -1;
        }
        if (dict_changed(obj, f->n)) {
            return -1;
        }
        if (f->count == BATCHSIZE) {
            goto batch_start;
        }
        return leave_fast(p, obj);
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad dict frame phase");
    return -1;
}

/* next(iterator) into *item: 1 item, 0 exhausted, -1 error. */
static inline int
next_item(PyObject *iter, PyObject **item)
{
    *item = PyIter_Next(iter);
    if (*item != NULL) {
        return 1;
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* Items from an iterator f->a: APPEND each at protocol 0, else batches,
 * reading one item ahead to tell a lone last item (APPEND) from a batch.
 * f->b: the item being saved; f->c: the item read ahead; f->i: index. */
static int
step_appends(pickler_core *p, save_frame *f)
{
    PyObject *iter = f->a;
    PyObject *item;
    int r;
    if (!p->bin) {
        switch (f->phase) {
        case PH_ITEM_DONE:
            if (w1(p, (char)OP_APPEND) < 0) {
                return -1;
            }
            f->i++;
            /* fall through */
        case PH_START:
            for (;;) {
                r = next_item(iter, &item);
                if (r < 0) {
                    return -1;
                }
                if (r == 0) {
                    break;
                }
                Py_XSETREF(f->b, item);
                SAVE_CHILD(item, PH_ITEM_DONE, 0);
                if (w1(p, (char)OP_APPEND) < 0) {
                    return -1;
                }
                f->i++;
            }
            goto finish;
        }
    }
    switch (f->phase) {
    case PH_START:
    batch_start:
        r = next_item(iter, &item);
        if (r <= 0) {
            if (r < 0) {
                return -1;
            }
            goto finish;
        }
        Py_XSETREF(f->b, item);
        r = next_item(iter, &item);
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            SAVE_CHILD(f->b, PH_SINGLE_DONE, 0);
            goto single_done;
        }
        Py_XSETREF(f->c, item);
        if (w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        SAVE_CHILD(f->b, PH_AHEAD, 0);
        /* fall through */
    case PH_AHEAD:
        f->i++;
        f->count = 1;
        /* the item read ahead becomes the current one */
        Py_XSETREF(f->b, f->c);
        f->c = NULL;
        /* fall through */
    case PH_ITEM:
    items:
        SAVE_CHILD(f->b, PH_ITEM_DONE, 0);
        /* fall through */
    case PH_ITEM_DONE:
        f->i++;
        if (++f->count != BATCHSIZE) {
            r = next_item(iter, &item);
            if (r < 0) {
                return -1;
            }
            if (r > 0) {
                Py_XSETREF(f->b, item);
                goto items;
            }
        }
        if (w1(p, (char)OP_APPENDS) < 0) {
            return -1;
        }
        if (f->count == BATCHSIZE) {
            goto batch_start;
        }
        goto finish;
    case PH_SINGLE_DONE:
    single_done:
        if (w1(p, (char)OP_APPEND) < 0) {
            return -1;
        }
        f->i++;
        goto finish;
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad appends frame phase");
    return -1;
finish:
    if (f->flags & IF_LEAVE_FAST) {
        return leave_fast(p, f->obj);
    }
    return 0;
}

static int
check_pair(PyObject *pair)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "dict items iterator must return 2-tuples");
        return -1;
    }
    return 0;
}

/* Key/value pairs from an iterator f->a: SETITEM each at protocol 0, else
 * batches, reading one pair ahead. f->b: the pair being saved (checked);
 * f->c: the pair read ahead (not checked yet). */
static int
step_setitems(pickler_core *p, save_frame *f)
{
    PyObject *iter = f->a;
    PyObject *pair;
    int r;
    if (!p->bin) {
        switch (f->phase) {
        case PH_START:
        text_next:
            r = next_item(iter, &pair);
            if (r < 0) {
                return -1;
            }
            if (r == 0) {
                goto finish;
            }
            if (check_pair(pair) < 0) {
                Py_DECREF(pair);
                return -1;
            }
            Py_XSETREF(f->b, pair);
            SAVE_CHILD(PyTuple_GET_ITEM(pair, 0), PH_KEY_DONE, 0);
            /* fall through */
        case PH_KEY_DONE:
            f->flags |= IF_VALUE;
            SAVE_CHILD(PyTuple_GET_ITEM(f->b, 1), PH_VALUE_DONE, 0);
            /* fall through */
        case PH_VALUE_DONE:
            f->flags &= (uint8_t)~IF_VALUE;
            if (w1(p, (char)OP_SETITEM) < 0) {
                return -1;
            }
            goto text_next;
        }
    }
    switch (f->phase) {
    case PH_START:
    batch_start:
        r = next_item(iter, &pair);
        if (r <= 0) {
            if (r < 0) {
                return -1;
            }
            goto finish;
        }
        if (check_pair(pair) < 0) {
            Py_DECREF(pair);
            return -1;
        }
        Py_XSETREF(f->b, pair);
        r = next_item(iter, &pair);
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            SAVE_CHILD(PyTuple_GET_ITEM(f->b, 0), PH_SINGLE, 0);
            goto single_value;
        }
        Py_XSETREF(f->c, pair);
        if (w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        f->count = 0;
        goto save_key;
    case PH_SINGLE:
    single_value:
        f->flags |= IF_VALUE;
        SAVE_CHILD(PyTuple_GET_ITEM(f->b, 1), PH_SINGLE_DONE, 0);
        /* fall through */
    case PH_SINGLE_DONE:
        f->flags &= (uint8_t)~IF_VALUE;
        if (w1(p, (char)OP_SETITEM) < 0) {
            return -1;
        }
        goto finish;

    case PH_ITEM:
    save_key:
        SAVE_CHILD(PyTuple_GET_ITEM(f->b, 0), PH_KEY_DONE, 0);
        /* fall through */
    case PH_KEY_DONE:
        f->flags |= IF_VALUE;
        SAVE_CHILD(PyTuple_GET_ITEM(f->b, 1), PH_VALUE_DONE, 0);
        /* fall through */
    case PH_VALUE_DONE:
        f->flags &= (uint8_t)~IF_VALUE;
        if (++f->count != BATCHSIZE) {
            if (f->c == NULL) {
                r = next_item(iter, &pair);
                if (r < 0) {
                    return -1;
                }
                if (r > 0) {
                    f->c = pair;
                }
            }
            if (f->c != NULL) {
                pair = f->c;
                f->c = NULL;
                if (check_pair(pair) < 0) {
                    Py_DECREF(pair);
                    return -1;
                }
                Py_XSETREF(f->b, pair);
                goto save_key;
            }
        }
        if (w1(p, (char)OP_SETITEMS) < 0) {
            return -1;
        }
        if (f->count == BATCHSIZE) {
            /* the pair read ahead, if any, starts the next batch */
            Py_CLEAR(f->c);
            goto batch_start;
        }
        goto finish;
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad setitems frame phase");
    return -1;
finish:
    if (f->flags & IF_LEAVE_FAST) {
        return leave_fast(p, f->obj);
    }
    return 0;
}

/* Items of a set (protocol 4+): MARK items ADDITEMS per batch of
 * BATCHSIZE. f->a: iterator; f->b: current item; f->n: the set's size. */
static int
step_set(pickler_core *p, save_frame *f)
{
    PyObject *obj = f->obj;
    PyObject *item;
    int r;
    switch (f->phase) {
    case PH_START:
    batch_start:
        if (w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        f->count = 0;
        /* fall through */
    case PH_ITEM:
    items:
        if (f->count == BATCHSIZE) {
            goto batch_end;
        }
        r = next_item(f->a, &item);
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            goto batch_end;
        }
        Py_XSETREF(f->b, item);
        SAVE_CHILD(item, PH_ITEM_DONE, 0);
        /* fall through */
    case PH_ITEM_DONE:
        f->count++;
        goto items;
    case PH_BATCH_END:
    batch_end:
        if (w1(p, (char)OP_ADDITEMS) < 0) {
            return -1;
        }
        if (PySet_GET_SIZE(obj) != f->n) {
            PyErr_SetString(PyExc_RuntimeError,
                            "set changed size during iteration");
            return -1;
        }
        if (f->count == BATCHSIZE) {
            goto batch_start;
        }
        return 0;
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad set frame phase");
    return -1;
}

/* Items of a frozenset (protocol 4+), after MARK; then FROZENSET, or a
 * memo fetch if saving the items saved the frozenset itself. */
static int
step_frozenset(pickler_core *p, save_frame *f)
{
    PyObject *obj = f->obj;
    PyObject *item;
    int r;
    switch (f->phase) {
    case PH_START:
    case PH_ITEM_DONE:
        for (;;) {
            r = next_item(f->a, &item);
            if (r < 0) {
                return -1;
            }
            if (r == 0) {
                break;
            }
            Py_XSETREF(f->b, item);
            SAVE_CHILD(item, PH_ITEM_DONE, 0);
        }
        break;
    default:
        PyErr_SetString(PyExc_SystemError,
                        "brinery: bad frozenset frame phase");
        return -1;
    }
    Py_ssize_t idx = memo_get(&p->memo, obj);
    if (idx >= 0) {
        if (w1(p, (char)OP_POP_MARK) < 0) {
            return -1;
        }
        return write_get(p, idx);
    }
    if (w1(p, (char)OP_FROZENSET) < 0) {
        return -1;
    }
    return memoize(p, obj);
}

/* STACK_GLOBAL: the module name f->a and the qualified name f->b are saved
 * as strings (persistent_id sees them), then the opcode. */
static int
step_global(pickler_core *p, save_frame *f)
{
    switch (f->phase) {
    case 0:
        SAVE_CHILD(f->a, 1, 0);
        /* fall through */
    case 1:
        SAVE_CHILD(f->b, 2, 0);
        /* fall through */
    case 2:
        if (w1(p, (char)OP_STACK_GLOBAL) < 0) {
            return -1;
        }
        return memoize(p, f->obj);
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad global frame phase");
    return -1;
}

/* A nested name below protocol 4 as CPython 3.13 writes it (f->a: the
 * dotted path, f->b: the module name): getattr saved once per attribute
 * (with a MARK each below protocol 2), the first name as a plain GLOBAL,
 * then each attribute name and its TUPLE(2) REDUCE; obj memoized last.
 * f->i counts the getattrs, then indexes the attribute names. */
enum { CH_GETATTRS = 0, CH_GETATTR_DONE, CH_NAME_DONE };

static PyObject *make_global_line(pickler_core *p, PyObject *module_name,
                                  PyObject *name);

static int
step_getattr_chain(pickler_core *p, save_frame *f)
{
    Py_ssize_t n = PyList_GET_SIZE(f->a);
    switch (f->phase) {
    case CH_GETATTRS:
        break;
    case CH_GETATTR_DONE:
        goto getattr_done;
    case CH_NAME_DONE:
        goto name_done;
    default:
        PyErr_SetString(PyExc_SystemError,
                        "brinery: bad getattr chain frame phase");
        return -1;
    }
    while (f->i < n - 1) {
        SAVE_CHILD(p->st->builtins_getattr, CH_GETATTR_DONE, 0);
    getattr_done:
        if (p->proto < 2 && w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        f->i++;
    }
    PyObject *line = make_global_line(p, f->b, PyList_GET_ITEM(f->a, 0));
    if (line == NULL) {
        return -1;
    }
    int r = wn(p, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line));
    Py_DECREF(line);
    if (r < 0) {
        return -1;
    }
    f->i = 1;
    while (f->i < n) {
        SAVE_CHILD(PyList_GET_ITEM(f->a, f->i), CH_NAME_DONE, 0);
    name_done:
        if (w1(p, (char)(p->proto < 2 ? OP_TUPLE : OP_TUPLE2)) < 0
            || w1(p, (char)OP_REDUCE) < 0) {
            return -1;
        }
        f->i++;
    }
    return memoize(p, f->obj);
}

/* The items of a set (f->a: a tuple of them, taken when it started) as
 * the list of (set, (list(obj),)) would be saved, then the rest of that
 * reduction: what save_reduce writes for it, without building the list
 * and the tuple (their memo indices are written, not stored: see
 * save_bytes_direct). */
static int
step_set_reduce(pickler_core *p, save_frame *f)
{
    PyObject *items = f->a;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    switch (f->phase) {
    case PH_SINGLE:
        SAVE_CHILD(PyTuple_GET_ITEM(items, 0), PH_SINGLE_DONE, 0);
        /* fall through */
    case PH_SINGLE_DONE:
        if (w1(p, (char)OP_APPEND) < 0) {
            return -1;
        }
        goto finish;
    case PH_START:
    batch_start:
        if (w1(p, (char)OP_MARK) < 0) {
            return -1;
        }
        f->count = 0;
        goto items;
    case PH_ITEM_DONE:
        f->i++;
        if (++f->count == BATCHSIZE) {
            goto batch_end;
        }
        /* fall through */
    case PH_ITEM:
    items:
        while (f->i < n) {
            SAVE_CHILD(PyTuple_GET_ITEM(items, f->i), PH_ITEM_DONE, 0);
            f->i++;
            if (++f->count == BATCHSIZE) {
                break;
            }
        }
        /* fall through */
    case PH_BATCH_END:
    batch_end:
        if (w1(p, (char)OP_APPENDS) < 0) {
            return -1;
        }
        if (f->i < n) {
            goto batch_start;
        }
        /* fall through */
    case PH_FINISH:
    finish:
        f->phase = PH_FINISH;
        if (w1(p, (char)(p->proto >= 2 ? OP_TUPLE1 : OP_TUPLE)) < 0
            || write_put(p, memo_next(p)) < 0) {
            return -1;
        }
        p->phantoms++;               /* the arguments tuple */
        if (w1(p, (char)OP_REDUCE) < 0) {
            return -1;
        }
        Py_ssize_t idx = memo_get(&p->memo, f->obj);
        if (idx >= 0) {
            /* the set was saved while saving its own items */
            if (w1(p, (char)OP_POP) < 0) {
                return -1;
            }
            return write_get(p, idx);
        }
        return memoize(p, f->obj);
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad set frame phase");
    return -1;
}

static int
step(pickler_core *p, save_frame *f)
{
    switch (f->kind) {
    case F_TUPLE:
        return step_tuple(p, f);
    case F_LIST:
        return step_list(p, f);
    case F_DICT:
        return step_dict(p, f);
    case F_APPENDS:
        return step_appends(p, f);
    case F_SETITEMS:
        return step_setitems(p, f);
    case F_SET:
        return step_set(p, f);
    case F_FROZENSET:
        return step_frozenset(p, f);
    case F_REDUCE:
        return step_reduce(p, f);
    case F_GLOBAL:
        return step_global(p, f);
    case F_MEMOIZE:
        return memoize(p, f->obj);
    case F_WRITE1:
        return w1(p, (char)f->count);
    case F_SET_REDUCE:
        return step_set_reduce(p, f);
    case F_GETATTR_CHAIN:
        return step_getattr_chain(p, f);
    }
    PyErr_SetString(PyExc_SystemError, "brinery: bad save frame");
    return -1;
}

/* Step the frames above `base` until none is left. */
static int
run(pickler_core *p, Py_ssize_t base)
{
    while (p->depth > base) {
        save_frame *f = &p->frames[p->depth - 1];
        Py_ssize_t depth = p->depth;
        int r = step(p, f);
        if (r < 0) {
            unwind(p, base);
            return -1;
        }
        if (r == 0) {
            /* the frame is finished (no child was pushed) */
            assert(p->depth == depth);
            (void)depth;
            pop_frame(p);
        }
    }
    return 0;
}

/* ============================================================ containers:
 * the part of saving that happens before a frame is pushed */

static int
save_tuple(pickler_core *p, PyObject *obj)
{
    Py_ssize_t n = PyTuple_GET_SIZE(obj);
    if (n == 0) {
        if (p->bin) {
            return w1(p, (char)OP_EMPTY_TUPLE);
        }
        return outbuf_put2(&p->out, (char)OP_MARK, (char)OP_TUPLE);
    }
    if (!(n <= 3 && p->proto >= 2) && w1(p, (char)OP_MARK) < 0) {
        return -1;
    }
    save_frame *f = push_frame(p, F_TUPLE, obj);
    if (f == NULL) {
        return -1;
    }
    f->n = n;
    f->phase = PH_ITEM;
    return 1;
}

/* Push a frame of `kind` that reads the iterator `iter` (a new reference,
 * consumed); NULL on error. */
static save_frame *
push_iter_frame(pickler_core *p, int kind, PyObject *obj, PyObject *iter)
{
    if (iter == NULL) {
        return NULL;
    }
    save_frame *f = push_frame(p, kind, obj);
    if (f == NULL) {
        Py_DECREF(iter);
        return NULL;
    }
    f->a = iter;
    return f;
}

/* The start of a list or dict: EMPTY_LIST / EMPTY_DICT (MARK LIST / MARK
 * DICT at protocol 0), memoized. */
static int
open_container(pickler_core *p, PyObject *obj, enum opcode empty_op,
               enum opcode text_op)
{
    if (enter_fast(p, obj) < 0) {
        return -1;
    }
    int r = p->bin ? w1(p, (char)empty_op)
                   : outbuf_put2(&p->out, (char)OP_MARK, (char)text_op);
    if (r < 0) {
        return -1;
    }
    return memoize(p, obj);
}

/* The items of a list or dict at protocol 0: from an iterator, one
 * APPEND / SETITEM each. */
static int
save_items_text(pickler_core *p, int kind, PyObject *obj, PyObject *iter)
{
    save_frame *f = push_iter_frame(p, kind, obj, iter);
    if (f == NULL) {
        return -1;
    }
    f->flags = IF_LEAVE_FAST;
    return 1;
}

/* The items of an exact list or dict at protocol 1+: in batches. */
static int
save_items_bin(pickler_core *p, int kind, PyObject *obj, Py_ssize_t n)
{
    save_frame *f = push_frame(p, kind, obj);
    if (f == NULL) {
        return -1;
    }
    f->n = n;
    f->phase = n == 1 ? PH_SINGLE : PH_START;
    return 1;
}

static int
save_list(pickler_core *p, PyObject *obj)
{
    if (open_container(p, obj, OP_EMPTY_LIST, OP_LIST) < 0) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(obj);
    if (n == 0) {
        return leave_fast(p, obj);
    }
    if (!p->bin) {
        return save_items_text(p, F_APPENDS, obj, PyObject_GetIter(obj));
    }
    return save_items_bin(p, F_LIST, obj, n);
}

static int
save_dict(pickler_core *p, PyObject *obj)
{
    if (open_container(p, obj, OP_EMPTY_DICT, OP_DICT) < 0) {
        return -1;
    }
    Py_ssize_t n = PyDict_GET_SIZE(obj);
    if (n == 0) {
        return leave_fast(p, obj);
    }
    if (!p->bin) {
        PyObject *items = PyObject_CallMethodNoArgs(obj, p->cache->s_items);
        PyObject *iter = items == NULL ? NULL : PyObject_GetIter(items);
        Py_XDECREF(items);
        return save_items_text(p, F_SETITEMS, obj, iter);
    }
    return save_items_bin(p, F_DICT, obj, n);
}

/* A set or frozenset below protocol 4, as save_reduce would write
 * (set, (list(obj),)) but without building the list and the tuple.
 * Returns what save() does, or 2 when it does not apply (see
 * save_bytes_direct). */
static int
save_set_direct(pickler_core *p, PyObject *obj, PyTypeObject *type)
{
    if (!p->may_use_phantoms || p->fast || !p->bin) {
        return 2;
    }
    Py_ssize_t type_idx = memo_get(&p->memo, (PyObject *)type);
    if (type_idx < 0) {
        return 2;
    }
    PyObject *items = PySequence_Tuple(obj);
    if (items == NULL) {
        return -1;
    }
    if (write_get(p, type_idx) < 0
        || (p->proto < 2 && w1(p, (char)OP_MARK) < 0)
        || w1(p, (char)OP_EMPTY_LIST) < 0
        || write_put(p, memo_next(p)) < 0) {
        Py_DECREF(items);
        return -1;
    }
    p->phantoms++;                   /* the list */
    save_frame *f = push_frame(p, F_SET_REDUCE, obj);
    if (f == NULL) {
        Py_DECREF(items);
        return -1;
    }
    f->a = items;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    f->phase = n == 0 ? PH_FINISH : n == 1 ? PH_SINGLE : PH_START;
    if (guard_enter(p, f) < 0) {
        pop_frame(p);           /* not started: no notes */
        return -1;
    }
    return 1;
}

/* A set or frozenset below protocol 4: (type, (list(obj),)). */
static int
save_set_below4(pickler_core *p, PyObject *obj, PyTypeObject *type)
{
    int r = save_set_direct(p, obj, type);
    if (r != 2) {
        return r;
    }
    return save_reduce_pair(p, (PyObject *)type,
                            Py_BuildValue("(N)", PySequence_List(obj)), obj);
}

static int
save_set(pickler_core *p, PyObject *obj)
{
    if (p->proto < 4) {
        return save_set_below4(p, obj, &PySet_Type);
    }
    if (w1(p, (char)OP_EMPTY_SET) < 0 || memoize(p, obj) < 0) {
        return -1;
    }
    Py_ssize_t n = PySet_GET_SIZE(obj);
    if (n == 0) {
        return 0;
    }
    save_frame *f = push_iter_frame(p, F_SET, obj, PyObject_GetIter(obj));
    if (f == NULL) {
        return -1;
    }
    f->n = n;
    return 1;
}

static int
save_frozenset(pickler_core *p, PyObject *obj)
{
    if (p->proto < 4) {
        return save_set_below4(p, obj, &PyFrozenSet_Type);
    }
    if (w1(p, (char)OP_MARK) < 0) {
        return -1;
    }
    return push_iter_frame(p, F_FROZENSET, obj, PyObject_GetIter(obj))
           == NULL ? -1 : 1;
}

/* bytes at protocols 1 and 2, as save_bytes would write it through
 * (codecs.encode, (data.decode('latin1'), 'latin1')), without building
 * the string and the tuples: their memo indices are written but not
 * stored (nothing else in the pickle can be those fresh objects, and
 * without hooks nothing can see them). Returns 2 when it does not apply:
 * a hook or the memo is observable, codecs.encode is not memoized yet
 * (saving it could push a frame), or the bytes is one byte long: its
 * text is then CPython's shared one-character str, which the memo may
 * hold already or meet again elsewhere in the pickle. */
static int
save_bytes_direct(pickler_core *p, PyObject *obj)
{
    Py_ssize_t size = PyBytes_GET_SIZE(obj);
    if (!p->may_use_phantoms || p->fast || size <= 1
        || size > 0x7fffffff || p->write != NULL) {
        return 2;
    }
    Py_ssize_t encode_idx = memo_get(&p->memo, p->st->codecs_encode);
    if (encode_idx < 0) {
        return 2;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(obj);
    Py_ssize_t high = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        high += data[i] >> 7;
    }
    Py_ssize_t utf8_size = size + high;
    if (write_get(p, encode_idx) < 0) {
        return -1;
    }
    if (p->proto < 2 && w1(p, (char)OP_MARK) < 0) {
        return -1;
    }
    if (outbuf_grow_for(&p->out, utf8_size + 5) < 0) {
        return -1;
    }
    char *dst = p->out.data + p->out.len;
    dst[0] = (char)OP_BINUNICODE;
    pack_u32(dst + 1, (uint32_t)utf8_size);
    dst += 5;
    if (high == 0) {
        memcpy(dst, data, (size_t)size);
    }
    else {
        for (Py_ssize_t i = 0; i < size; i++) {
            unsigned char c = data[i];
            if (c < 0x80) {
                *dst++ = (char)c;
            }
            else {
                *dst++ = (char)(0xc0 | (c >> 6));
                *dst++ = (char)(0x80 | (c & 0x3f));
            }
        }
    }
    p->out.len += utf8_size + 5;
    if (write_put(p, memo_next(p)) < 0) {
        return -1;
    }
    p->phantoms++;                   /* the string */
    if (save(p, p->cache->s_latin1, 0) < 0) {
        return -1;
    }
    if (w1(p, (char)(p->proto >= 2 ? OP_TUPLE2 : OP_TUPLE)) < 0
        || write_put(p, memo_next(p)) < 0) {
        return -1;
    }
    p->phantoms++;                   /* the arguments tuple */
    if (w1(p, (char)OP_REDUCE) < 0) {
        return -1;
    }
    return memoize(p, obj);
}

static int
save_bytes(pickler_core *p, PyObject *obj)
{
    if (p->proto < 3 && p->bin) {
        int r = save_bytes_direct(p, obj);
        if (r != 2) {
            return r;
        }
    }
    if (p->proto < 3) {
        /* No bytes opcode: Python 2 reads codecs.encode(str, 'latin1') as
         * a str, Python 3 as bytes. */
        if (PyBytes_GET_SIZE(obj) == 0) {
            Py_INCREF(p->cache->empty_tuple);
            return save_reduce_pair(p, (PyObject *)&PyBytes_Type,
                                    p->cache->empty_tuple, obj);
        }
        PyObject *text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(obj),
                                                PyBytes_GET_SIZE(obj),
                                                "strict");
        if (text == NULL) {
            return -1;
        }
        return save_reduce_pair(p, p->st->codecs_encode,
                                Py_BuildValue("(NO)", text,
                                              p->cache->s_latin1), obj);
    }
    return save_bytes_data(p, obj, PyBytes_AS_STRING(obj),
                           PyBytes_GET_SIZE(obj), obj);
}

static int
save_bytearray(pickler_core *p, PyObject *obj)
{
    if (p->proto < 5) {
        if (PyByteArray_GET_SIZE(obj) == 0) {
            Py_INCREF(p->cache->empty_tuple);
            return save_reduce_pair(p, (PyObject *)&PyByteArray_Type,
                                    p->cache->empty_tuple, obj);
        }
        /* A new bytes object, as _pickle's PyBytes_FromObject makes, never
         * CPython's shared one-byte bytes: the memo would find that one
         * again for the next bytearray of the same byte, where _pickle
         * writes the reduction again. */
        Py_ssize_t size = PyByteArray_GET_SIZE(obj);
        PyObject *data = PyBytes_FromStringAndSize(NULL, size);
        if (data == NULL) {
            return -1;
        }
        memcpy(PyBytes_AS_STRING(data), PyByteArray_AS_STRING(obj),
               (size_t)size);
        return save_reduce_pair(p, (PyObject *)&PyByteArray_Type,
                                Py_BuildValue("(N)", data), obj);
    }
    return save_bytearray_data(p, obj, PyByteArray_AS_STRING(obj),
                               PyByteArray_GET_SIZE(obj), obj);
}

static int
save_picklebuffer(pickler_core *p, PyObject *obj)
{
    if (p->proto < 5) {
        PyErr_SetString(p->st->PicklingError,
                        BRINERY_PICKLEBUFFER_PROTOCOL_MESSAGE);
        return -1;
    }
    const Py_buffer *view = PyPickleBuffer_GetBuffer(obj);
    if (view == NULL) {
        return -1;
    }
    if (view->suboffsets != NULL || !PyBuffer_IsContiguous(view, 'A')) {
        PyErr_SetString(p->st->PicklingError,
                        "PickleBuffer can not be pickled when pointing to a "
                        "non-contiguous buffer");
        return -1;
    }
    int readonly = view->readonly;
    int in_band = 1;
    if (p->buffer_callback != NULL) {
        PyObject *ret = PyObject_CallOneArg(p->buffer_callback, obj);
        if (ret == NULL) {
            return -1;
        }
        in_band = PyObject_IsTrue(ret);
        Py_DECREF(ret);
        if (in_band < 0) {
            return -1;
        }
    }
    if (!in_band) {
        if (w1(p, (char)OP_NEXT_BUFFER) < 0) {
            return -1;
        }
        if (readonly) {
            return w1(p, (char)OP_READONLY_BUFFER);
        }
        return 0;
    }
    /* The callback may have released the buffer: ask again. */
    view = PyPickleBuffer_GetBuffer(obj);
    if (view == NULL) {
        return -1;
    }
    PyObject *payload = NULL;
    if (p->write != NULL && view->len >= FRAME_SIZE_TARGET) {
        /* streamed to the file as a flat byte view, without a copy */
        payload = PyObject_CallMethodNoArgs(obj, p->cache->s_raw);
        if (payload == NULL) {
            return -1;
        }
    }
    int r;
    if (readonly) {
        r = save_bytes_data(p, obj, view->buf, view->len, payload);
    }
    else {
        r = save_bytearray_data(p, obj, view->buf, view->len, payload);
    }
    Py_XDECREF(payload);
    return r;
}

/* ============================================================ globals */

static int
write_ext(pickler_core *p, PyObject *obj, PyObject *code_obj)
{
    /* See EXTENSION_CODE_THROUGH_INDEX in accel.h. */
    if (!BRINERY_EXTENSION_CODE_THROUGH_INDEX && !PyLong_Check(code_obj)) {
        PyErr_Format(p->st->PicklingError,
                     "Can't pickle %R: extension code %R isn't an integer",
                     obj, code_obj);
        return -1;
    }
    long code = PyLong_AsLong(code_obj);
    if (code == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (code <= 0 || code > 0x7fffffffL) {
        if (BRINERY_EXTENSION_CODE_THROUGH_INDEX) {
            PyErr_Format(PyExc_RuntimeError,
                         "extension code %ld is out of range", code);
        }
        else {
            PyErr_Format(p->st->PicklingError,
                         "Can't pickle %R: extension code %ld is out of "
                         "range", obj, code);
        }
        return -1;
    }
    char buf[5];
    if (code <= 0xff) {
        buf[0] = (char)OP_EXT1;
        buf[1] = (char)code;
        return wn(p, buf, 2);
    }
    if (code <= 0xffff) {
        buf[0] = (char)OP_EXT2;
        buf[1] = (char)(code & 0xff);
        buf[2] = (char)(code >> 8);
        return wn(p, buf, 3);
    }
    buf[0] = (char)OP_EXT4;
    pack_u32(buf + 1, (uint32_t)code);
    return wn(p, buf, 5);
}

/* getattr(module, name) for a plain module whose type has no attribute of
 * that name: then the generic lookup answers with the module's own dict
 * entry, so read that directly. NULL (no exception) when this does not
 * apply or the name is not there: ask getattr. */
static PyObject *
module_own_attr(PyObject *module, PyObject *name)
{
    if (!PyModule_CheckExact(module) || !PyUnicode_CheckExact(name)
        || _PyType_Lookup(&PyModule_Type, name) != NULL) {
        return NULL;
    }
    PyObject *dict = PyModule_GetDict(module);
    if (dict == NULL || !PyDict_CheckExact(dict)) {
        return NULL;
    }
    PyObject *value = PyDict_GetItemWithError(dict, name);
    if (value == NULL) {
        PyErr_Clear();
        return NULL;
    }
    return Py_NewRef(value);
}

/* getattr along path from obj; *parent gets the object before the last
 * step. New references, or NULL with an exception. */
static PyObject *
deep_getattr(PyObject *obj, PyObject *path, PyObject **parent)
{
    Py_ssize_t n = PyList_GET_SIZE(path);
    PyObject *cur = obj, *prev = NULL;
    Py_INCREF(cur);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(path, i);
        PyObject *next = module_own_attr(cur, name);
        if (next == NULL) {
            next = PyObject_GetAttr(cur, name);
        }
        Py_XDECREF(prev);
        prev = cur;
        if (next == NULL) {
            Py_DECREF(prev);
            return NULL;
        }
        cur = next;
    }
    *parent = prev;
    return cur;
}

/* The name of the module obj can be imported from (obj.__module__, else a
 * search of sys.modules, else '__main__'). New reference. */
static PyObject *
whichmodule(pickler_core *p, PyObject *obj, PyObject *path)
{
    PyObject *module_name;
    if (lookup_attr(obj, p->cache->s_module, &module_name) < 0) {
        return NULL;
    }
    if (module_name != NULL && module_name != Py_None) {
        return module_name;
    }
    Py_CLEAR(module_name);
    /* Bound methods of extension types may say nothing: search. */
    PyObject *modules = PySys_GetObject("modules");
    if (modules == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "lost sys.modules");
        return NULL;
    }
    PyObject *items = PyMapping_Items(modules);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            continue;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        PyObject *module = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_Check(name) || module == Py_None
            || PyUnicode_Compare(name, p->cache->s_main) == 0) {
            continue;
        }
        PyObject *parent;
        PyObject *found = deep_getattr(module, path, &parent);
        if (found == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(items);
                return NULL;
            }
            PyErr_Clear();
            continue;
        }
        Py_DECREF(parent);
        Py_DECREF(found);
        if (found == obj) {
            Py_INCREF(name);
            Py_DECREF(items);
            return name;
        }
    }
    Py_DECREF(items);
    Py_INCREF(p->cache->s_main);
    return p->cache->s_main;
}

/* qualname.split('.'), refusing objects local to a function. */
static PyObject *
dotted_path(pickler_core *p, PyObject *name)
{
    PyObject *path = PyUnicode_Split(name, p->cache->s_dot, -1);
    if (path == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(path);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyUnicode_Compare(PyList_GET_ITEM(path, i),
                              p->cache->s_locals) == 0) {
            PyErr_Format(PyExc_AttributeError,
                         BRINERY_LOCAL_OBJECT_FORMAT, name);
            Py_DECREF(path);
            return NULL;
        }
    }
    return path;
}

/* fix_imports: the Python 2 (module, name) for Python 3's. */
static int
map_name_3to2(pickler_core *p, PyObject **module_name, PyObject **name)
{
    accel_state *st = p->st;
    PyObject *key = PyTuple_Pack(2, *module_name, *name);
    if (key == NULL) {
        return -1;
    }
    PyObject *mapped = PyDict_GetItemWithError(st->name_mapping_3to2, key);
    Py_DECREF(key);
    if (mapped != NULL) {
        if (!PyTuple_Check(mapped) || PyTuple_GET_SIZE(mapped) != 2
            || !PyUnicode_Check(PyTuple_GET_ITEM(mapped, 0))
            || !PyUnicode_Check(PyTuple_GET_ITEM(mapped, 1))) {
            PyErr_Format(PyExc_RuntimeError,
                         "_compat_pickle.REVERSE_NAME_MAPPING values should "
                         "be pairs of str, not %.200s", tp_name(mapped));
            return -1;
        }
        Py_SETREF(*module_name, Py_NewRef(PyTuple_GET_ITEM(mapped, 0)));
        Py_SETREF(*name, Py_NewRef(PyTuple_GET_ITEM(mapped, 1)));
        return 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    mapped = PyDict_GetItemWithError(st->import_mapping_3to2, *module_name);
    if (mapped != NULL) {
        if (!PyUnicode_Check(mapped)) {
            PyErr_Format(PyExc_RuntimeError,
                         "_compat_pickle.REVERSE_IMPORT_MAPPING values "
                         "should be str, not %.200s", tp_name(mapped));
            return -1;
        }
        Py_SETREF(*module_name, Py_NewRef(mapped));
        return 0;
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* The GLOBAL opcode line "c<module>\n<name>\n" for protocols 0-3. */
static PyObject *
make_global_line(pickler_core *p, PyObject *module_name, PyObject *name)
{
    PyObject *module_bytes = NULL, *name_bytes = NULL, *line = NULL;
    int proto = p->proto;
    Py_INCREF(module_name);
    Py_INCREF(name);
    if (p->fix_imports && map_name_3to2(p, &module_name, &name) < 0) {
        goto done;
    }
    const char *encoding = proto == 3 ? "utf-8" : "ascii";
    module_bytes = PyUnicode_AsEncodedString(module_name, encoding, "strict");
    if (module_bytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Format(p->st->PicklingError,
                         "can't pickle module identifier '%S' using pickle "
                         "protocol %i", module_name, proto);
        }
        goto done;
    }
    name_bytes = PyUnicode_AsEncodedString(name, encoding, "strict");
    if (name_bytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Format(p->st->PicklingError,
                         "can't pickle global identifier '%S' using pickle "
                         "protocol %i", name, proto);
        }
        goto done;
    }
    line = PyBytes_FromFormat("c%s\n%s\n", PyBytes_AS_STRING(module_bytes),
                              PyBytes_AS_STRING(name_bytes));
    if (line != NULL
        && PyBytes_GET_SIZE(line) != 3 + PyBytes_GET_SIZE(module_bytes)
                                     + PyBytes_GET_SIZE(name_bytes)) {
        /* embedded NUL bytes: build it by parts */
        Py_SETREF(line, PyBytes_FromStringAndSize(NULL,
                  3 + PyBytes_GET_SIZE(module_bytes)
                  + PyBytes_GET_SIZE(name_bytes)));
        if (line != NULL) {
            char *dst = PyBytes_AS_STRING(line);
            *dst++ = (char)OP_GLOBAL;
            memcpy(dst, PyBytes_AS_STRING(module_bytes),
                   PyBytes_GET_SIZE(module_bytes));
            dst += PyBytes_GET_SIZE(module_bytes);
            *dst++ = '\n';
            memcpy(dst, PyBytes_AS_STRING(name_bytes),
                   PyBytes_GET_SIZE(name_bytes));
            dst += PyBytes_GET_SIZE(name_bytes);
            *dst = '\n';
        }
    }
done:
    Py_XDECREF(module_bytes);
    Py_XDECREF(name_bytes);
    Py_DECREF(module_name);
    Py_DECREF(name);
    return line;
}

/* Which cached GLOBAL line applies to this pickler. */
static inline int
global_line_variant(pickler_core *p)
{
    return p->proto == 3 ? 2 : (p->fix_imports ? 0 : 1);
}

/* The module named module_name: sys.modules' entry when the resolution
 * is cached (it was imported before), else imported now. */
static PyObject *
get_module(pickler_core *p, PyObject *obj, PyObject *module_name, int cached)
{
    if (cached) {
        PyObject *modules = PyImport_GetModuleDict();
        if (PyDict_CheckExact(modules)) {
            PyObject *module = PyDict_GetItemWithError(modules, module_name);
            if (module != NULL && module != Py_None) {
                Py_INCREF(module);
                return module;
            }
            if (PyErr_Occurred()) {
                return NULL;
            }
        }
    }
    PyObject *module = PyImport_Import(module_name);
    if (module == NULL) {
        PyErr_Clear();
        PyErr_Format(p->st->PicklingError,
                     "Can't pickle %R: import of module %R failed",
                     obj, module_name);
    }
    return module;
}

/* Save obj by reference: module and qualified name (or `given`, the name a
 * __reduce__ returned). */
static int
save_global(pickler_core *p, PyObject *obj, PyObject *given)
{
    PyObject *module_name = NULL, *name = NULL, *path = NULL;
    PyObject *module = NULL, *found = NULL, *parent = NULL, *line = NULL;
    int status = -1, cached = 0;
    global_entry hit;

    /* A name given by __reduce__ (a builtin function's, say) uses the
     * cache when it is the name the cached resolution was made for. */
    if (given == NULL || PyUnicode_CheckExact(given)) {
        int r = global_cache_lookup(p, obj, &hit);
        if (r < 0) {
            return -1;
        }
        if (r > 0 && given != NULL && given != hit.qualname
            && (!PyUnicode_CheckExact(hit.qualname)
                || PyUnicode_Compare(given, hit.qualname) != 0)) {
            global_entry_release(&hit);
            r = 0;
        }
        if (r > 0) {
            cached = 1;
            module_name = hit.module_name;
            name = hit.qualname;
            path = hit.path;
            line = Py_XNewRef(hit.line[global_line_variant(p)]);
        }
    }
    if (!cached) {
        if (given != NULL) {
            name = Py_NewRef(given);
        }
        else {
            if (lookup_attr(obj, p->cache->s_qualname, &name) < 0) {
                return -1;
            }
            if (name == NULL) {
                name = PyObject_GetAttr(obj, p->cache->s_name);
                if (name == NULL) {
                    return -1;
                }
            }
        }
        path = dotted_path(p, name);
        if (path == NULL) {
            goto done;
        }
        module_name = whichmodule(p, obj, path);
        if (module_name == NULL) {
            goto done;
        }
    }
    module = get_module(p, obj, module_name, cached);
    if (module == NULL) {
        goto done;
    }
    found = deep_getattr(module, path, &parent);
    if (found == NULL) {
        PyErr_Clear();
        PyErr_Format(p->st->PicklingError,
                     "Can't pickle %R: attribute lookup %S on %S failed",
                     obj, name, module_name);
        goto done;
    }
    if (found != obj) {
        PyErr_Format(p->st->PicklingError,
                     "Can't pickle %R: it's not the same object as %S.%S",
                     obj, module_name, name);
        goto done;
    }
    if (!cached) {
        global_cache_store(p, obj, module_name, name, path);
    }

    if (p->proto >= 2 && PyDict_GET_SIZE(p->st->extension_registry) > 0) {
        PyObject *key = PyTuple_Pack(2, module_name, name);
        if (key == NULL) {
            goto done;
        }
        PyObject *code = PyDict_GetItemWithError(p->st->extension_registry,
                                                 key);
        Py_DECREF(key);
        if (code != NULL) {
            status = write_ext(p, obj, code);
            goto done;
        }
        if (PyErr_Occurred()) {
            goto done;
        }
    }
    PyObject *lastname = PyList_GET_ITEM(path, PyList_GET_SIZE(path) - 1);
    PyObject *saved_name = parent == module ? lastname : name;
    if (p->proto >= 4) {
        if (p->pers_func == NULL) {
            /* strings never push a frame without persistent_id */
            if (save(p, module_name, 0) < 0 || save(p, saved_name, 0) < 0
                || w1(p, (char)OP_STACK_GLOBAL) < 0) {
                goto done;
            }
            status = memoize(p, obj);
            goto done;
        }
        save_frame *f = push_frame(p, F_GLOBAL, obj);
        if (f == NULL) {
            goto done;
        }
        f->a = Py_NewRef(module_name);
        f->b = Py_NewRef(saved_name);
        status = 1;
        goto done;
    }
    if (parent != module && BRINERY_NESTED_NAMES_AS_GETATTR_CHAIN) {
        save_frame *f = push_frame(p, F_GETATTR_CHAIN, obj);
        if (f == NULL) {
            goto done;
        }
        f->a = Py_NewRef(path);
        f->b = Py_NewRef(module_name);
        status = 1;
        goto done;
    }
    if (parent != module) {
        /* A nested name at protocols 0-3: getattr(parent, lastname), then
         * memoize obj. */
        save_frame *f = push_frame(p, F_MEMOIZE, obj);
        if (f == NULL) {
            goto done;
        }
        /* Counted and guarded like a reduced object: a class whose
         * qualified name leads back to itself would be saved forever. */
        if (guard_enter(p, f) < 0) {
            pop_frame(p);
            goto done;
        }
        PyObject *args = PyTuple_Pack(2, parent, lastname);
        status = save_reduce_pair(p, p->st->builtins_getattr, args, NULL);
        if (status == 0) {
            status = 1;      /* F_MEMOIZE still to run */
        }
        goto done;
    }
    if (line == NULL) {
        line = make_global_line(p, module_name, saved_name);
        if (line == NULL) {
            goto done;
        }
        /* (an uncached given name may differ from the cached one) */
        if (cached || given == NULL) {
            global_cache_set_line(p, obj, global_line_variant(p), line);
        }
    }
    if (wn(p, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line)) < 0) {
        goto done;
    }
    status = memoize(p, obj);
done:
    if (cached) {
        global_entry_release(&hit);
    }
    else {
        Py_XDECREF(module_name);
        Py_XDECREF(name);
        Py_XDECREF(path);
    }
    Py_XDECREF(line);
    Py_XDECREF(module);
    Py_XDECREF(found);
    Py_XDECREF(parent);
    return status;
}

static int
save_type(pickler_core *p, PyObject *obj)
{
    PyObject *instance = NULL;
    if (obj == (PyObject *)Py_TYPE(Py_None)) {
        instance = Py_None;
    }
    else if (obj == (PyObject *)Py_TYPE(Py_Ellipsis)) {
        instance = Py_Ellipsis;
    }
    else if (obj == (PyObject *)Py_TYPE(Py_NotImplemented)) {
        instance = Py_NotImplemented;
    }
    if (instance != NULL) {
        return save_reduce_pair(p, (PyObject *)&PyType_Type,
                                PyTuple_Pack(1, instance), obj);
    }
    return save_global(p, obj, NULL);
}

/* ============================================================ save */

static int
save_pers(pickler_core *p, PyObject *obj)
{
    PyObject *pid = PyObject_CallOneArg(p->pers_func, obj);
    if (pid == NULL) {
        return -1;
    }
    if (pid == Py_None) {
        Py_DECREF(pid);
        return 2;                       /* not persistent */
    }
    int r;
    if (p->bin) {
        Py_ssize_t depth = p->depth;
        r = save(p, pid, 1);
        Py_DECREF(pid);
        if (r == 0) {
            return w1(p, (char)OP_BINPERSID);
        }
        if (r > 0) {
            /* frames were pushed to save pid: BINPERSID follows them */
            save_frame *f = insert_frame(p, depth, F_WRITE1);
            if (f == NULL) {
                return -1;
            }
            f->count = (unsigned char)OP_BINPERSID;
        }
        return r;
    }
    PyObject *text = PyObject_Str(pid);
    Py_DECREF(pid);
    if (text == NULL) {
        return -1;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        Py_DECREF(text);
        PyErr_SetString(p->st->PicklingError,
                        "persistent IDs in protocol 0 must be ASCII strings");
        return -1;
    }
    r = -1;
    if (w1(p, (char)OP_PERSID) == 0
        && wn(p, PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)) == 0
        && w1(p, '\n') == 0) {
        r = 0;
    }
    Py_DECREF(text);
    return r;
}

/* The state object's default __reduce_ex__ gives an instance of a plain
 * class: its __dict__, or NULL for None. Returns 1 and sets *state, or 0
 * when obj does not qualify after all (its __dict__ overrides a hook). */
static int
plain_state(pickler_core *p, PyObject *obj, PyObject **state)
{
    *state = NULL;
    if (Py_TYPE(obj)->tp_dictoffset == 0) {
        return 1;
    }
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        return -1;
    }
    if (!PyDict_Check(dict)) {
        Py_DECREF(dict);
        return 0;
    }
    if (PyDict_GET_SIZE(dict) == 0) {
        Py_DECREF(dict);
        return 1;
    }
    /* an instance attribute would shadow the class's hook */
    pickler_cache *c = p->cache;
    int r1 = PyDict_Contains(dict, c->s_reduce_ex);
    int r2 = r1 == 0 ? PyDict_Contains(dict, c->s_getstate) : r1;
    if (r1 != 0 || r2 != 0) {
        Py_DECREF(dict);
        return (r1 < 0 || r2 < 0) ? -1 : 0;
    }
    *state = dict;
    return 1;
}

/* Objects that are not of an exact builtin type. */
static int
save_other(pickler_core *p, PyObject *obj, PyTypeObject *type)
{
    PyObject *rv = NULL, *reduce_func = NULL;
    int status = -1;
    int learn = 0;

    if (p->reducer_override != NULL) {
        rv = PyObject_CallOneArg(p->reducer_override, obj);
        if (rv == NULL) {
            return -1;
        }
        if (rv != Py_NotImplemented) {
            goto reduce_value;
        }
        Py_CLEAR(rv);
    }
    if (type == &PyType_Type) {
        return save_type(p, obj);
    }
    if (type == &PyFunction_Type) {
        return save_global(p, obj, NULL);
    }
    if (p->dispatch_table == NULL) {
        reduce_func = PyDict_GetItemWithError(p->st->dispatch_table,
                                              (PyObject *)type);
        if (reduce_func == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
        }
        else {
            Py_INCREF(reduce_func);
        }
    }
    else {
        reduce_func = PyObject_GetItem(p->dispatch_table, (PyObject *)type);
        if (reduce_func == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                return -1;
            }
            PyErr_Clear();
        }
    }
    if (reduce_func != NULL) {
        rv = PyObject_CallOneArg(reduce_func, obj);
        Py_DECREF(reduce_func);
    }
    else if (PyType_IsSubtype(type, &PyType_Type)) {
        return save_global(p, obj, NULL);
    }
    else {
        if (p->proto >= 2) {
            PyObject *slotnames;
            int plain = type_cache_is_plain(p->cache, type, &slotnames);
            if (plain > 0) {
                PyObject *state;
                int r = plain_state(p, obj, &state);
                if (r < 0) {
                    return -1;
                }
                if (r > 0) {
                    save_frame *f = push_frame(p, F_REDUCE, obj);
                    if (f == NULL) {
                        Py_XDECREF(state);
                        return -1;
                    }
                    f->b = state;
                    f->flags = RF_PLAIN;
                    f->what = W_NONE;
                    return 1;
                }
            }
            else if (plain < 0) {
                learn = 1;      /* not known yet: learn from this one */
            }
        }
        if (lookup_attr((PyObject *)obj, p->cache->s_reduce_ex,
                                 &reduce_func) < 0) {
            return -1;
        }
        if (reduce_func != NULL) {
            PyObject *proto = PyLong_FromLong(p->proto);
            if (proto != NULL) {
                rv = PyObject_CallOneArg(reduce_func, proto);
                Py_DECREF(proto);
            }
            Py_DECREF(reduce_func);
        }
        else {
            if (lookup_attr(obj, p->cache->s_reduce,
                                     &reduce_func) < 0) {
                return -1;
            }
            if (reduce_func == NULL) {
                PyErr_Format(p->st->PicklingError,
                             "can't pickle '%.200s' object: %R",
                             type->tp_name, obj);
                return -1;
            }
            rv = PyObject_CallNoArgs(reduce_func);
            Py_DECREF(reduce_func);
            learn = 0;
        }
        if (rv != NULL && learn) {
            type_cache_learn(p->cache, obj, rv);
        }
    }
    if (rv == NULL) {
        return -1;
    }
reduce_value:
    if (PyUnicode_Check(rv)) {
        status = save_global(p, obj, rv);
    }
    else if (!PyTuple_Check(rv)) {
        PyErr_SetString(p->st->PicklingError,
                        "__reduce__ must return a string or tuple");
        note_object(p, obj);
    }
    else {
        status = save_reduce(p, rv, obj, 0);
    }
    Py_DECREF(rv);
    return status;
}

/* save(), past its fast path. The order of checks is CPython's: frame
 * boundary, persistent ID, atoms (never memoized), memo, builtin
 * containers, then save_other. */
static int
save_slow(pickler_core *p, PyObject *obj, int pers_save)
{
    if (p->out.len >= p->frame_limit && frame_boundary(p) < 0) {
        return -1;
    }
    if (p->pers_func != NULL && !pers_save) {
        int r = save_pers(p, obj);
        if (r != 2) {
            return r;
        }
    }
    PyTypeObject *type = Py_TYPE(obj);
    if (type == &PyUnicode_Type) {
        Py_ssize_t idx = memo_get(&p->memo, obj);
        if (idx >= 0) {
            return write_get(p, idx);
        }
        return save_str(p, obj);
    }
    if (type == &PyLong_Type) {
        return save_long(p, obj);
    }
    if (obj == Py_None) {
        return w1(p, (char)OP_NONE);
    }
    if (type == &PyBool_Type) {
        return save_bool(p, obj);
    }
    if (type == &PyFloat_Type) {
        return save_float(p, obj);
    }
    Py_ssize_t idx = memo_get(&p->memo, obj);
    if (idx >= 0) {
        return write_get(p, idx);
    }
    if (type == &PyDict_Type) {
        return save_dict(p, obj);
    }
    if (type == &PyList_Type) {
        return save_list(p, obj);
    }
    if (type == &PyTuple_Type) {
        return save_tuple(p, obj);
    }
    if (type == &PyBytes_Type) {
        return save_bytes(p, obj);
    }
    if (type == &PySet_Type) {
        return save_set(p, obj);
    }
    if (type == &PyFrozenSet_Type) {
        return save_frozenset(p, obj);
    }
    if (type == &PyByteArray_Type) {
        return save_bytearray(p, obj);
    }
    if (type == &PyPickleBuffer_Type) {
        return save_picklebuffer(p, obj);
    }
    return save_other(p, obj, type);
}

/* ============================================================ the core */

void
core_init(pickler_core *p, accel_state *st)
{
    p->st = st;
    p->cache = st->pickler;
    p->write = NULL;
    p->buffer_callback = NULL;
    p->pers_func = NULL;
    p->reducer_override = NULL;
    p->dispatch_table = NULL;
    p->fast_active = NULL;
    p->unmemoized = NULL;
    p->open_reduces = 0;
    p->proto = p->cache->default_protocol;
    p->bin = 1;
    p->fast = 0;
    p->fix_imports = 0;
    p->phantoms = 0;
    p->may_use_phantoms = 0;
    p->frame_start = -1;
    p->frame_limit = NO_FRAME_LIMIT;
    core_update_fast_limit(p);
    memo_init(&p->memo, &p->cache->spares);
    p->frames = p->frames_small;
    p->depth = 0;
    p->frames_cap = FRAMES_SMALL;
    outbuf_init(&p->out);
}

int
core_set_protocol(pickler_core *p, PyObject *protocol)
{
    long proto;
    if (protocol == NULL || protocol == Py_None) {
        proto = p->cache->default_protocol;
    }
    else {
        proto = PyLong_AsLong(protocol);
        if (proto == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (proto < 0) {
            proto = HIGHEST_PROTOCOL;
        }
        else if (proto > HIGHEST_PROTOCOL) {
            PyErr_Format(PyExc_ValueError, "pickle protocol must be <= %d",
                         HIGHEST_PROTOCOL);
            return -1;
        }
    }
    p->proto = (int)proto;
    p->bin = proto >= 1;
    core_update_fast_limit(p);
    return 0;
}

int
core_dump(pickler_core *p, PyObject *obj)
{
    p->out.len = 0;
    p->frame_start = -1;
    p->frame_limit = NO_FRAME_LIMIT;
    core_update_fast_limit(p);
    if (p->proto >= 2) {
        if (outbuf_put2(&p->out, (char)OP_PROTO, (char)p->proto) < 0) {
            return -1;
        }
        if (p->proto >= 4 && start_framing(p) < 0) {
            return -1;
        }
    }
    Py_ssize_t base = p->depth;
    int r = save(p, obj, 0);
    if (r > 0) {
        r = run(p, base);
    }
    else if (r < 0) {
        unwind(p, base);
    }
    if (r < 0) {
        return -1;
    }
    if (w1(p, (char)OP_STOP) < 0) {
        return -1;
    }
    end_frame(p);
    if (p->write == NULL || p->out.len == 0) {
        return 0;
    }
    /* The rest goes to the file; the storage itself when there is one
     * (no copy of a large pickle). */
    PyObject *data = outbuf_finish(&p->out);
    if (data == NULL) {
        return -1;
    }
    r = call_write(p, data);
    Py_DECREF(data);
    return r;
}

void
core_end_dump(pickler_core *p)
{
    while (p->depth > 0) {
        pop_frame(p);
    }
    if (p->frames != p->frames_small) {
        PyMem_Free(p->frames);
        p->frames = p->frames_small;
        p->frames_cap = FRAMES_SMALL;
    }
    Py_CLEAR(p->pers_func);
    Py_CLEAR(p->reducer_override);
    Py_CLEAR(p->dispatch_table);
    Py_CLEAR(p->fast_active);
    Py_CLEAR(p->unmemoized);
    p->frame_start = -1;
    p->frame_limit = NO_FRAME_LIMIT;
    core_update_fast_limit(p);
}

void
core_free(pickler_core *p)
{
    core_end_dump(p);
    memo_clear(&p->memo);
    outbuf_free(&p->out);
    Py_CLEAR(p->write);
    Py_CLEAR(p->buffer_callback);
}

int
core_traverse(pickler_core *p, visitproc visit, void *arg)
{
    Py_VISIT(p->write);
    Py_VISIT(p->buffer_callback);
    Py_VISIT(p->pers_func);
    Py_VISIT(p->reducer_override);
    Py_VISIT(p->dispatch_table);
    Py_VISIT(p->fast_active);
    Py_VISIT(p->unmemoized);
    for (Py_ssize_t i = 0; i < p->depth; i++) {
        save_frame *f = &p->frames[i];
        Py_VISIT(f->obj);
        Py_VISIT(f->a);
        Py_VISIT(f->b);
        Py_VISIT(f->c);
    }
    return memo_traverse(&p->memo, visit, arg);
}

/* brinery._accel: the Unpickler type, load() and loads().
 *
 * The unpickler is a machine (see unpickler.h) that runs one loop over the
 * opcodes of a pickle: no recursion, whatever the nesting. Its semantics
 * are those of brinery._unpickler (itself following CPython's C
 * unpickler): the same results, the same exception types and messages,
 * the same MARK discipline, and the same note on every error raised while
 * loading: "when unpickling OPNAME at byte N".
 *
 * Speed comes from doing per opcode only what the opcode needs: the input
 * window, position and stack live in locals of the loop; the frequent
 * opcodes are handled inline in the switch, the others call a function;
 * no Python-level call happens except where the pickle asks for one
 * (REDUCE, BUILD with __setstate__, find_class overrides, ...). loads()
 * and load() run a machine on the C stack with small inline stack, mark
 * and memo storage, so a small pickle costs no allocation but its
 * objects.
 *
 * Safe mode (a later addition) plugs in where an opcode has been fetched,
 * before it is dispatched: one test of a machine field (a pointer to the
 * limits and policy, NULL in normal mode) sends a checked load through
 * its per-opcode checks, so the normal path pays one predictable branch.
 */
#include "unpickler.h"
#include "unpickler_safe.h"
#include "utf8.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#if defined(__GNUC__) || defined(__clang__)
#  define UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define UNLIKELY(x) (x)
#  define ALWAYS_INLINE inline
#endif

/* ------------------------------------------------------------ opcodes */

static const char *const opcode_names[256] = {
    [OP_INT] = "INT", [OP_BININT] = "BININT", [OP_BININT1] = "BININT1",
    [OP_BININT2] = "BININT2", [OP_LONG] = "LONG", [OP_LONG1] = "LONG1",
    [OP_LONG4] = "LONG4", [OP_STRING] = "STRING",
    [OP_BINSTRING] = "BINSTRING", [OP_SHORT_BINSTRING] = "SHORT_BINSTRING",
    [OP_BINBYTES] = "BINBYTES", [OP_SHORT_BINBYTES] = "SHORT_BINBYTES",
    [OP_BINBYTES8] = "BINBYTES8", [OP_BYTEARRAY8] = "BYTEARRAY8",
    [OP_NEXT_BUFFER] = "NEXT_BUFFER",
    [OP_READONLY_BUFFER] = "READONLY_BUFFER", [OP_NONE] = "NONE",
    [OP_NEWTRUE] = "NEWTRUE", [OP_NEWFALSE] = "NEWFALSE",
    [OP_UNICODE] = "UNICODE", [OP_SHORT_BINUNICODE] = "SHORT_BINUNICODE",
    [OP_BINUNICODE] = "BINUNICODE", [OP_BINUNICODE8] = "BINUNICODE8",
    [OP_FLOAT] = "FLOAT", [OP_BINFLOAT] = "BINFLOAT",
    [OP_EMPTY_LIST] = "EMPTY_LIST", [OP_APPEND] = "APPEND",
    [OP_APPENDS] = "APPENDS", [OP_LIST] = "LIST",
    [OP_EMPTY_TUPLE] = "EMPTY_TUPLE", [OP_TUPLE] = "TUPLE",
    [OP_TUPLE1] = "TUPLE1", [OP_TUPLE2] = "TUPLE2", [OP_TUPLE3] = "TUPLE3",
    [OP_EMPTY_DICT] = "EMPTY_DICT", [OP_DICT] = "DICT",
    [OP_SETITEM] = "SETITEM", [OP_SETITEMS] = "SETITEMS",
    [OP_EMPTY_SET] = "EMPTY_SET", [OP_ADDITEMS] = "ADDITEMS",
    [OP_FROZENSET] = "FROZENSET", [OP_POP] = "POP", [OP_DUP] = "DUP",
    [OP_MARK] = "MARK", [OP_POP_MARK] = "POP_MARK", [OP_GET] = "GET",
    [OP_BINGET] = "BINGET", [OP_LONG_BINGET] = "LONG_BINGET",
    [OP_PUT] = "PUT", [OP_BINPUT] = "BINPUT", [OP_LONG_BINPUT] = "LONG_BINPUT",
    [OP_MEMOIZE] = "MEMOIZE", [OP_EXT1] = "EXT1", [OP_EXT2] = "EXT2",
    [OP_EXT4] = "EXT4", [OP_GLOBAL] = "GLOBAL",
    [OP_STACK_GLOBAL] = "STACK_GLOBAL", [OP_REDUCE] = "REDUCE",
    [OP_BUILD] = "BUILD", [OP_INST] = "INST", [OP_OBJ] = "OBJ",
    [OP_NEWOBJ] = "NEWOBJ", [OP_NEWOBJ_EX] = "NEWOBJ_EX", [OP_PROTO] = "PROTO",
    [OP_STOP] = "STOP", [OP_FRAME] = "FRAME", [OP_PERSID] = "PERSID",
    [OP_BINPERSID] = "BINPERSID",
};

/* --------------------------------------------------- exception helpers */

/* Add "when unpickling OP at byte N" to the pending exception, if it is
 * an Exception (KeyboardInterrupt and the like pass untouched). */
static void
add_position_note(machine *m, int op, Py_ssize_t offset)
{
    PyObject *exc = inbuf_take_exception();
    if (exc != NULL && PyObject_TypeCheck(exc,
                                          (PyTypeObject *)PyExc_Exception)) {
        char name[32];
        if (opcode_names[op] != NULL) {
            snprintf(name, sizeof(name), "%s", opcode_names[op]);
        }
        else {
            snprintf(name, sizeof(name), "byte 0x%02x", op);
        }
        PyObject *note = PyUnicode_FromFormat(
            "when unpickling %s at byte %zd", name, offset);
        PyObject *res = note == NULL ? NULL
            : PyObject_CallMethodOneArg(exc, m->ust->add_note, note);
        Py_XDECREF(note);
        if (res == NULL) {
            PyErr_Clear();          /* keep the original error */
        }
        Py_XDECREF(res);
    }
    inbuf_restore_exception(exc);
}

static int
stack_error(machine *m)
{
    PyErr_SetString(m->st->UnpicklingError,
                    m->nmarks > 0 ? "unexpected MARK found"
                                  : "unpickling stack underflow");
    return -1;
}

int
machine_stack_error(machine *m)
{
    return stack_error(m);
}

static int
invalid_opcode(machine *m, int op)
{
    if (op >= 0x20 && op <= 0x7e && op != '\'' && op != '\\') {
        PyErr_Format(m->st->UnpicklingError, "invalid load key, '%c'.", op);
    }
    else {
        char text[8];
        snprintf(text, sizeof(text), "\\x%02x", op);
        PyErr_Format(m->st->UnpicklingError, "invalid load key, '%s'.",
                     text);
    }
    return -1;
}

static int
memo_missing(machine *m, Py_ssize_t index)
{
    if (!PyErr_Occurred()) {
        PyErr_Format(m->st->UnpicklingError,
                     "Memo value not found at index %zd", index);
    }
    return -1;
}

/* ------------------------------------------------------- stack & marks */

static void intern_cache_clear(machine *m);
static inline void deferred_release(machine *m);
static int deferred_fill(machine *m, Py_ssize_t index, PyObject *value);
static ALWAYS_INLINE int op_setitems(machine *m);

/* Field by field: a machine is set up for every loads() call, and its
 * inline arrays need no clearing. */
static void
machine_init(machine *m, accel_state *st)
{
    m->st = st;
    m->ust = st->unpickler;
    m->owner = NULL;
    inbuf_init(&m->in, st->UnpicklingError, &st->unpickler->io);
    m->pos = 0;
    m->stack = m->stack_inline;
    m->len = 0;
    m->capacity = MACHINE_INLINE_STACK;
    m->marks = m->marks_inline;
    m->nmarks = 0;
    m->marks_capacity = MACHINE_INLINE_MARKS;
    m->fence = 0;
    load_memo_init(&m->memo);
    m->proto = 0;
    m->fix_imports = 1;
    m->encoding = NULL;
    m->errors = NULL;
    m->buffers = NULL;
    m->find_class = NULL;
    m->persistent_load = NULL;
    m->intern_cache = NULL;
    m->plain_type = NULL;
    m->plain_version = 0;
    m->fresh_dict = NULL;
    m->fresh_dict_index = -1;
    m->deferred = NULL;
    m->ndeferred = 0;
    m->deferred_capacity = 0;
    m->deferred_items = NULL;
    m->ndeferred_items = 0;
    m->deferred_items_capacity = 0;
    m->safe = NULL;
}

static int
stack_grow(machine *m)
{
    if (m->capacity > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) / 2) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t capacity = m->capacity * 2;
    PyObject **stack;
    if (m->stack == m->stack_inline) {
        stack = PyMem_Malloc((size_t)capacity * sizeof(PyObject *));
        if (stack != NULL) {
            memcpy(stack, m->stack_inline, sizeof(m->stack_inline));
        }
    }
    else {
        stack = PyMem_Realloc(m->stack, (size_t)capacity * sizeof(PyObject *));
    }
    if (stack == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    m->stack = stack;
    m->capacity = capacity;
    return 0;
}

/* Push obj (a new reference, stolen; released on failure). */
static ALWAYS_INLINE int
stack_push(machine *m, PyObject *obj)
{
    if (UNLIKELY(m->len == m->capacity) && stack_grow(m) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    m->stack[m->len++] = obj;
    return 0;
}

static int
push_mark(machine *m)
{
    if (m->nmarks == m->marks_capacity) {
        if (m->marks_capacity > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(Py_ssize_t)
                                / 2) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t capacity = m->marks_capacity * 2;
        Py_ssize_t *marks;
        if (m->marks == m->marks_inline) {
            marks = PyMem_Malloc((size_t)capacity * sizeof(Py_ssize_t));
            if (marks != NULL) {
                memcpy(marks, m->marks_inline, sizeof(m->marks_inline));
            }
        }
        else {
            marks = PyMem_Realloc(m->marks,
                                  (size_t)capacity * sizeof(Py_ssize_t));
        }
        if (marks == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        m->marks = marks;
        m->marks_capacity = capacity;
    }
    m->marks[m->nmarks++] = m->fence = m->len;
    return 0;
}

/* Pop the topmost mark; the items above it stay on the stack, from the
 * returned height up. */
static ALWAYS_INLINE Py_ssize_t
pop_mark(machine *m)
{
    if (UNLIKELY(m->nmarks == 0)) {
        PyErr_SetString(m->st->UnpicklingError, "could not find MARK");
        return -1;
    }
    Py_ssize_t mark = m->marks[--m->nmarks];
    m->fence = m->nmarks > 0 ? m->marks[m->nmarks - 1] : 0;
    return mark;
}

/* Release the stack items from height `height` up. */
void
stack_drop_to(machine *m, Py_ssize_t height)
{
    while (m->len > height) {
        PyObject *obj = m->stack[--m->len];
        Py_DECREF(obj);
    }
}

/* Pop the two topmost items (new references; *below was under *top), or
 * fail with the stack error when the top mark leaves fewer than two. */
static int
stack_pop2(machine *m, PyObject **below, PyObject **top)
{
    if (m->len - m->fence < 2) {
        return stack_error(m);
    }
    *top = m->stack[--m->len];
    *below = m->stack[--m->len];
    return 0;
}

/* A new tuple (or list) of the items from `height` up, whose references
 * move from the stack into it. */
static PyObject *
stack_pop_sequence(machine *m, Py_ssize_t height, int as_list)
{
    Py_ssize_t n = m->len - height;
    PyObject *seq = as_list ? PyList_New(n) : PyTuple_New(n);
    if (seq == NULL) {
        return NULL;
    }
    PyObject **items = as_list ? ((PyListObject *)seq)->ob_item
                               : ((PyTupleObject *)seq)->ob_item;
    if (n > 0) {
        memcpy(items, m->stack + height, (size_t)n * sizeof(PyObject *));
    }
    m->len = height;
    return seq;
}

static inline PyObject *
stack_pop_tuple(machine *m, Py_ssize_t height)
{
    return stack_pop_sequence(m, height, 0);
}

static inline PyObject *
stack_pop_list(machine *m, Py_ssize_t height)
{
    return stack_pop_sequence(m, height, 1);
}

/* Release the stack and marks after a load; keep small storage. */
static inline void
machine_reset_stack(machine *m)
{
    if (m->len > 0) {
        stack_drop_to(m, 0);
    }
    m->nmarks = 0;
    m->fence = 0;
    if (m->stack != m->stack_inline && m->capacity > 1024) {
        PyMem_Free(m->stack);
        m->stack = m->stack_inline;
        m->capacity = MACHINE_INLINE_STACK;
    }
    if (m->marks != m->marks_inline && m->marks_capacity > 1024) {
        PyMem_Free(m->marks);
        m->marks = m->marks_inline;
        m->marks_capacity = MACHINE_INLINE_MARKS;
    }
}

static void
machine_clear(machine *m)
{
    machine_reset_stack(m);
    if (m->stack != m->stack_inline) {
        PyMem_Free(m->stack);
        m->stack = m->stack_inline;
        m->capacity = MACHINE_INLINE_STACK;
    }
    if (m->marks != m->marks_inline) {
        PyMem_Free(m->marks);
        m->marks = m->marks_inline;
        m->marks_capacity = MACHINE_INLINE_MARKS;
    }
    intern_cache_clear(m);
    deferred_release(m);
    load_memo_clear(&m->memo);
    inbuf_close(&m->in);
    Py_CLEAR(m->encoding);
    Py_CLEAR(m->errors);
    Py_CLEAR(m->buffers);
    Py_CLEAR(m->find_class);
    Py_CLEAR(m->persistent_load);
    safe_free(m);
}

/* machine_clear for a machine on the C stack (loads, load): nothing
 * else can see it, so its memo is released without detaching. */
static void
machine_release(machine *m)
{
    machine_reset_stack(m);
    if (m->stack != m->stack_inline) {
        PyMem_Free(m->stack);
    }
    if (m->marks != m->marks_inline) {
        PyMem_Free(m->marks);
    }
    intern_cache_clear(m);
    deferred_release(m);
    load_memo_release(&m->memo);
    if (m->in.held != NULL && m->in.file == NULL && !m->in.has_view) {
        Py_CLEAR(m->in.held);       /* loads() of bytes: nothing else */
    }
    else {
        inbuf_close(&m->in);
    }
    Py_XDECREF(m->encoding);
    Py_XDECREF(m->errors);
    Py_XDECREF(m->buffers);
    Py_XDECREF(m->find_class);
    Py_XDECREF(m->persistent_load);
}

static int
machine_traverse(machine *m, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < m->len; i++) {
        Py_VISIT(m->stack[i]);
    }
    int rc = load_memo_traverse(&m->memo, visit, arg);
    if (rc) {
        return rc;
    }
    rc = inbuf_traverse(&m->in, visit, arg);
    if (rc) {
        return rc;
    }
    Py_VISIT(m->encoding);
    Py_VISIT(m->errors);
    Py_VISIT(m->buffers);
    Py_VISIT(m->find_class);
    Py_VISIT(m->persistent_load);
    return safe_traverse(m, visit, arg);
}

/* --------------------------------------------------------------- input */

static ALWAYS_INLINE uint32_t
read_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
           | (uint32_t)p[3] << 24;
}

static ALWAYS_INLINE uint64_t
read_u64(const unsigned char *p)
{
    return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32;
}

static ALWAYS_INLINE uint64_t
read_be64(const unsigned char *p)
{
    return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40
           | (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24
           | (uint64_t)p[5] << 16 | (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/* For the handlers outside the loop: make n bytes at m->pos available. */
static int
need(machine *m, Py_ssize_t n)
{
    if (m->in.end - m->pos < n) {
        Py_ssize_t pos = inbuf_fill(&m->in, m->pos, n);
        if (pos < 0) {
            return -1;
        }
        m->pos = pos;
    }
    return 0;
}

/* The line at m->pos (newline included), which is consumed. The pointer
 * is valid until the next read. */
static const char *
read_line(machine *m, Py_ssize_t *len)
{
    Py_ssize_t line_end;
    Py_ssize_t start = inbuf_readline(&m->in, m->pos, &line_end);
    if (start < 0) {
        return NULL;
    }
    m->pos = line_end;
    *len = line_end - start;
    return m->in.data + start;
}

static Py_ssize_t
fetch_opcode(machine *m, Py_ssize_t pos)
{
    if (m->in.file == NULL) {
        PyErr_SetString(PyExc_EOFError, "Ran out of input");
        return -1;
    }
    pos = inbuf_fill_exact(&m->in, pos, 1);
    if (pos < 0 && PyErr_ExceptionMatches(m->st->UnpicklingError)) {
        PyErr_SetString(PyExc_EOFError, "Ran out of input");
    }
    return pos;
}

/* ------------------------------------------------------ text and bytes */

#define HIGH_BITS UTF8_HIGH_BITS      /* utf8.h */

/* New compact strs, their characters left for the caller to write: what
 * PyUnicode_New makes, field for field, without its general checks and
 * size arithmetic, which cost more than the allocation for the short strs
 * that fill most pickles. Other builds (debug, free-threaded, versions
 * whose str layout is not written out here) use PyUnicode_New. */
#if !defined(Py_DEBUG) && !defined(Py_GIL_DISABLED) \
    && !defined(Py_TRACE_REFS) \
    && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
#define COMPACT_STR_INLINE 1
#endif

#ifdef COMPACT_STR_INLINE
/* A compact str of n >= 1 characters of `kind` (ASCII when `ascii`); the
 * header is a PyASCIIObject for ASCII, else a PyCompactUnicodeObject. */
static ALWAYS_INLINE PyObject *
new_compact_str(Py_ssize_t n, int kind, int ascii)
{
    size_t header = ascii ? sizeof(PyASCIIObject)
                          : sizeof(PyCompactUnicodeObject);
    if (UNLIKELY(n > (PY_SSIZE_T_MAX - (Py_ssize_t)header) / kind - 1)) {
        return PyErr_NoMemory();
    }
    PyASCIIObject *str = PyObject_Malloc(header + ((size_t)n + 1) * kind);
    if (str == NULL) {
        return PyErr_NoMemory();
    }
    /* PyObject_Init without the call: PyUnicode_Type is static (no type
     * reference to take); _Py_NewReference keeps tracemalloc informed. */
    Py_SET_TYPE((PyObject *)str, &PyUnicode_Type);
    _Py_NewReference((PyObject *)str);
    str->length = n;
    str->hash = -1;
    str->state.interned = 0;
    str->state.kind = kind;
    str->state.compact = 1;
    str->state.ascii = ascii;
#if PY_VERSION_HEX < 0x030C0000
    str->state.ready = 1;
    str->wstr = NULL;
#else
    str->state.statically_allocated = 0;
#endif
    if (!ascii) {
        PyCompactUnicodeObject *wide = (PyCompactUnicodeObject *)str;
        wide->utf8_length = 0;
        wide->utf8 = NULL;
#if PY_VERSION_HEX < 0x030C0000
        wide->wstr_length = 0;
#endif
    }
    char *data = (char *)str + header;
    switch (kind) {
    case PyUnicode_1BYTE_KIND:
        ((Py_UCS1 *)data)[n] = 0;
        break;
    case PyUnicode_2BYTE_KIND:
        ((Py_UCS2 *)data)[n] = 0;
        break;
    default:
        ((Py_UCS4 *)data)[n] = 0;
        break;
    }
    return (PyObject *)str;
}
#endif

/* A new compact ASCII str of n >= 1 characters, its characters (at
 * ((PyASCIIObject *)str) + 1) left for the caller to write. */
static ALWAYS_INLINE PyObject *
new_ascii_str(Py_ssize_t n)
{
#ifdef COMPACT_STR_INLINE
    return new_compact_str(n, PyUnicode_1BYTE_KIND, 1);
#else
    return PyUnicode_New(n, 127);
#endif
}

/* A new ASCII str of n characters, w <= n <= 2w, from its first and last
 * w bytes (overlapping), which the caller has checked are ASCII. */
static ALWAYS_INLINE PyObject *
ascii_str_from_ends(const void *first, const void *last, size_t w,
                    Py_ssize_t n)
{
    PyObject *str = new_ascii_str(n);
    if (str != NULL) {
        unsigned char *out = (unsigned char *)(((PyASCIIObject *)str) + 1);
        memcpy(out, first, w);
        memcpy(out + n - w, last, w);
    }
    return str;
}

/* A new compact str of n >= 1 characters whose widest is maxchar (0xFF,
 * 0xFFFF or 0x10FFFF); the caller returns CPython's singletons for one
 * Latin-1 character itself. */
static ALWAYS_INLINE PyObject *
new_wide_str(Py_ssize_t n, Py_UCS4 maxchar)
{
#ifdef COMPACT_STR_INLINE
    int kind = maxchar == 0xFF ? PyUnicode_1BYTE_KIND
               : maxchar == 0xFFFF ? PyUnicode_2BYTE_KIND
                                   : PyUnicode_4BYTE_KIND;
    return new_compact_str(n, kind, 0);
#else
    return PyUnicode_New(n, maxchar);
#endif
}

/* The longest text (in bytes) that decode_utf8_wide decodes itself, into
 * a buffer on the C stack. */
#define WIDE_STACK_CHARS 128

/* Copy k code points into str's data, narrowed to its kind. */
#define NARROW_INTO(TYPE) \
    do { \
        TYPE *out_ = (TYPE *)PyUnicode_DATA(str); \
        for (Py_ssize_t j_ = 0; j_ < k; j_++) { \
            out_[j_] = (TYPE)buf[j_]; \
        } \
    } while (0)

/* Decode UTF-8 with non-ASCII characters from `ascii` on: short text in
 * one pass into a buffer of code points (which also gives the widest
 * character's kind, from the OR of them all), then into a string of that
 * kind.
 * Encoded surrogates (ED A0..BF xx) are accepted as the "surrogatepass"
 * error handler does; anything else that is not strict UTF-8 goes to
 * CPython's decoder, which raises the right error. */
static PyObject *
decode_utf8_wide(const unsigned char *s, Py_ssize_t n, Py_ssize_t ascii)
{
    if (n > WIDE_STACK_CHARS) {
        /* Long text: the two-pass decoder of utf8.c, which writes the
         * string of the right kind directly. */
        return utf8_decode_text(s, n);
    }
    /* At most one character per byte. */
    Py_UCS4 buf[WIDE_STACK_CHARS];
    Py_ssize_t i = 0, k = 0;
    Py_UCS4 bits = 0;
    for (; i < ascii; i++) {
        buf[i] = s[i];
    }
    k = ascii;
    while (i < n) {
        unsigned int c = s[i];
        if (c < 0x80) {
            uint64_t word;
            if (n - i >= 8 && (memcpy(&word, s + i, 8), !(word & HIGH_BITS))) {
                for (int j = 0; j < 8; j++) {
                    buf[k + j] = s[i + j];
                }
                i += 8;
                k += 8;
            }
            else {
                buf[k++] = c;
                i++;
            }
            continue;
        }
        Py_UCS4 ch;
        if (c < 0xE0) {
            if (c < 0xC2 || n - i < 2 || (s[i + 1] & 0xC0) != 0x80) {
                goto invalid;           /* continuation byte, overlong */
            }
            ch = (c & 0x1F) << 6 | (s[i + 1] & 0x3F);
            i += 2;
        }
        else if (c < 0xF0) {
            if (n - i < 3 || (s[i + 1] & 0xC0) != 0x80
                || (s[i + 2] & 0xC0) != 0x80) {
                goto invalid;
            }
            ch = (c & 0x0F) << 12 | (Py_UCS4)(s[i + 1] & 0x3F) << 6
                 | (s[i + 2] & 0x3F);
            if (ch < 0x800) {
                goto invalid;           /* overlong */
            }
            i += 3;
        }
        else {
            if (c > 0xF4 || n - i < 4 || (s[i + 1] & 0xC0) != 0x80
                || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) {
                goto invalid;
            }
            ch = (c & 0x07) << 18 | (Py_UCS4)(s[i + 1] & 0x3F) << 12
                 | (Py_UCS4)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
            if (ch < 0x10000 || ch > 0x10FFFF) {
                goto invalid;           /* overlong, beyond Unicode */
            }
            i += 4;
        }
        bits |= ch;
        buf[k++] = ch;
    }
    if (k == 1 && bits < 0x100) {
        return PyUnicode_FromOrdinal(buf[0]);   /* CPython's singleton */
    }
    /* The OR is below 0x100 (0x10000) exactly when every character is. */
    Py_UCS4 maxchar = bits < 0x100 ? 0xFF : bits < 0x10000 ? 0xFFFF
                                                            : 0x10FFFF;
    PyObject *str = new_wide_str(k, maxchar);
    if (str != NULL) {
        switch (PyUnicode_KIND(str)) {
        case PyUnicode_1BYTE_KIND:
            NARROW_INTO(Py_UCS1);
            break;
        case PyUnicode_2BYTE_KIND:
            NARROW_INTO(Py_UCS2);
            break;
        default:
            memcpy(PyUnicode_DATA(str), buf, (size_t)k * sizeof(Py_UCS4));
            break;
        }
    }
    return str;

invalid:
    return PyUnicode_DecodeUTF8((const char *)s, n, "surrogatepass");
}

#undef NARROW_INTO

/* decode_utf8 below for the sizes it does not do inline: under 8 bytes,
 * or over 16. */
static PyObject *
decode_utf8_other(const unsigned char *s, Py_ssize_t n)
{
    uint64_t word;
    if (n < 8) {
        if (n >= 4) {
            /* The first and last 4 bytes (overlapping) are all of it. */
            uint32_t first, last;
            memcpy(&first, s, 4);
            memcpy(&last, s + n - 4, 4);
            if ((first | last) & UINT32_C(0x80808080)) {
                return decode_utf8_wide(s, n, 0);
            }
            return ascii_str_from_ends(&first, &last, 4, n);
        }
        if (n <= 1) {
            if (n == 0) {
                return PyUnicode_New(0, 0);
            }
            return s[0] & 0x80 ? decode_utf8_wide(s, n, 0)
                               : PyUnicode_FromOrdinal(s[0]);
        }
        if ((s[0] | s[1] | s[n - 1]) & 0x80) {
            return decode_utf8_wide(s, n, 0);
        }
        PyObject *str = new_ascii_str(n);
        if (str != NULL) {
            unsigned char *out = (unsigned char *)(((PyASCIIObject *)str) + 1);
            out[0] = s[0];
            out[1] = s[1];
            out[n - 1] = s[n - 1];
        }
        return str;
    }
    memcpy(&word, s, 8);
    uint64_t head = word;
    memcpy(&word, s + 8, 8);
    head |= word;
    if (head & HIGH_BITS) {
        return decode_utf8_wide(s, n, 0);
    }
    PyObject *str = new_ascii_str(n);
    if (str == NULL) {
        return NULL;
    }
    /* A compact ASCII string's characters follow its header. */
    unsigned char *out = (unsigned char *)(((PyASCIIObject *)str) + 1);
    Py_ssize_t ascii = utf8_copy_ascii(out, s, n);
    if (ascii < n) {
        Py_DECREF(str);
        return decode_utf8_wide(s, n, ascii);
    }
    return str;
}

/* str from UTF-8 with surrogates allowed, as pickles write it. Most text
 * is ASCII: it is copied straight into a new ASCII string while checking
 * the high bits, in one pass; the first 16 bytes are checked before
 * allocating, so text that starts with a wide character is not copied
 * for nothing. Strs of 8 to 16 bytes, the commonest (words, names), are
 * done inline, without a call: their first and last 8 bytes (overlapping)
 * are all of them. */
static ALWAYS_INLINE PyObject *
decode_utf8(const unsigned char *s, Py_ssize_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t first, last;
        memcpy(&first, s, 8);
        memcpy(&last, s + n - 8, 8);
        if (!((first | last) & HIGH_BITS)) {
            return ascii_str_from_ends(&first, &last, 8, n);
        }
        return decode_utf8_wide(s, n, 0);
    }
    return decode_utf8_other(s, n);
}

/* A Python 2 str: bytes with encoding="bytes", else decoded. */
static PyObject *
decode_py2_str(machine *m, const char *s, Py_ssize_t n)
{
    Py_ssize_t enc_len, err_len;
    const char *encoding = PyUnicode_AsUTF8AndSize(m->encoding, &enc_len);
    if (encoding == NULL) {
        return NULL;
    }
    if (enc_len == 5 && memcmp(encoding, "bytes", 5) == 0) {
        return PyBytes_FromStringAndSize(s, n);
    }
    const char *errors = PyUnicode_AsUTF8AndSize(m->errors, &err_len);
    if (errors == NULL) {
        return NULL;
    }
    if ((Py_ssize_t)strlen(encoding) != enc_len
        || (Py_ssize_t)strlen(errors) != err_len) {
        PyErr_SetString(PyExc_ValueError, "embedded null character");
        return NULL;
    }
    return PyUnicode_Decode(s, n, encoding, errors);
}

/* Whether s[0:n] is ASCII without a backslash: raw-unicode-escape text
 * that means itself. */
static int
is_plain_ascii(const unsigned char *s, Py_ssize_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    Py_ssize_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t word, slash;
        memcpy(&word, s + i, 8);
        slash = word ^ (ones * '\\');
        /* The high bits of non-ASCII bytes, and of the zero-byte test of
         * the word XOR backslashes (exact as a yes/no answer). */
        if ((word | ((slash - ones) & ~slash)) & HIGH_BITS) {
            return 0;
        }
    }
    for (; i < n; i++) {
        if (s[i] >= 0x80 || s[i] == '\\') {
            return 0;
        }
    }
    return 1;
}

/* UNICODE: a line of raw-unicode-escape text. Python writes most of it
 * as plain ASCII, which is its own decoding (built as the str opcodes
 * build ASCII); escapes and Latin-1 bytes go to CPython's decoder. */
static int
op_unicode(machine *m)
{
    Py_ssize_t len;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    const unsigned char *text = (const unsigned char *)line;
    PyObject *value = is_plain_ascii(text, len - 1)
                      ? decode_utf8(text, len - 1)
                      : text_decode_unicode(m->st->UnpicklingError, line, len);
    return value == NULL ? -1 : stack_push(m, value);
}

/* "<name> exceeds system's maximum size" for 8-byte lengths. */
static int
size_overflow(machine *m, const char *label)
{
    PyErr_Format(PyExc_OverflowError,
                 "%s exceeds system's maximum size of %zd bytes", label,
                 PY_SSIZE_T_MAX);
    return -1;
}

/* ---------------------------------------------------- calling out */

static PyObject *
find_class(machine *m, PyObject *module_name, PyObject *name)
{
    if (m->safe != NULL) {
        return safe_find_class(m, module_name, name);
    }
    if (m->find_class != NULL) {
        PyObject *args[2] = {module_name, name};
        return PyObject_Vectorcall(m->find_class, args, 2, NULL);
    }
    return globals_find_class(m->st, module_name, name, m->proto,
                              m->fix_imports);
}

/* cls.__new__(cls, *args, **kwargs); args a tuple, kwargs a dict or
 * NULL. */
static PyObject *
new_instance(machine *m, PyObject *cls, PyObject *args, PyObject *kwargs)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    if (Py_IS_TYPE(cls, &PyType_Type)
        && type->tp_new == PyBaseObject_Type.tp_new
        && PyTuple_CheckExact(args)
        && (kwargs == NULL || PyDict_CheckExact(kwargs))) {
        /* cls.__new__ is object.__new__: call it without the lookup. */
        return type->tp_new(type, args, kwargs);
    }
    PyObject *new_ = PyObject_GetAttr(cls, m->ust->new_);
    if (new_ == NULL) {
        return NULL;
    }
    PyObject *res = NULL, *full_args = NULL, *kw = NULL;
    PyObject *seq = PyTuple_CheckExact(args) ? Py_NewRef(args)
                                             : PySequence_Tuple(args);
    if (seq == NULL) {
        goto done;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    full_args = PyTuple_New(n + 1);
    if (full_args == NULL) {
        goto done;
    }
    PyTuple_SET_ITEM(full_args, 0, Py_NewRef(cls));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTuple_SET_ITEM(full_args, i + 1,
                         Py_NewRef(PyTuple_GET_ITEM(seq, i)));
    }
    if (kwargs != NULL && !PyDict_CheckExact(kwargs)) {
        kw = PyDict_New();
        if (kw == NULL || PyDict_Update(kw, kwargs) < 0) {
            goto done;
        }
    }
    else {
        kw = Py_XNewRef(kwargs);
    }
    res = PyObject_Call(new_, full_args, kw);
done:
    Py_DECREF(new_);
    Py_XDECREF(seq);
    Py_XDECREF(full_args);
    Py_XDECREF(kw);
    return res;
}

/* INST and OBJ: cls(*args), or cls.__new__(cls) for a class without
 * __getinitargs__ when there are no arguments (Python 2 instances). */
static PyObject *
instantiate(machine *m, PyObject *cls, PyObject *args)
{
    if (PyTuple_GET_SIZE(args) == 0 && PyType_Check(cls)) {
        PyObject *initargs;
        if (inbuf_lookup_attr(cls, m->ust->getinitargs, &initargs) < 0) {
            return NULL;
        }
        int plain = initargs == NULL || initargs == Py_None;
        Py_XDECREF(initargs);
        if (plain) {
            return new_instance(m, cls, args, NULL);
        }
    }
    return PyObject_Call(cls, args, NULL);
}

/* ---------------------------------------------- handlers outside the loop
 * Each reads its argument from m->pos and returns 0 or -1. */

/* INT, LONG, FLOAT and UNICODE: a line, parsed into the object pushed. */
static int
op_text(machine *m,
        PyObject *(*parse)(PyObject *error, const char *line, Py_ssize_t len))
{
    Py_ssize_t len;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    PyObject *value = parse(m->st->UnpicklingError, line, len);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_counted_long(machine *m, int size)
{
    if (need(m, size) < 0) {
        return -1;
    }
    const unsigned char *p = (const unsigned char *)m->in.data + m->pos;
    Py_ssize_t n;
    if (size == 1) {
        n = p[0];
    }
    else {
        n = (int32_t)read_u32(p);
        if (n < 0) {
            PyErr_SetString(m->st->UnpicklingError,
                            "LONG pickle has negative byte count");
            return -1;
        }
    }
    m->pos += size;
    if (need(m, n) < 0) {
        return -1;
    }
    p = (const unsigned char *)m->in.data + m->pos;
    PyObject *value = n == 0 ? PyLong_FromLong(0)
                             : _PyLong_FromByteArray(p, (size_t)n, 1, 1);
    m->pos += n;
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_string(machine *m)
{
    Py_ssize_t len;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    PyObject *bytes = text_decode_string(m->st->UnpicklingError, line, len);
    if (bytes == NULL) {
        return -1;
    }
    PyObject *value = decode_py2_str(m, PyBytes_AS_STRING(bytes),
                                     PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    return value == NULL ? -1 : stack_push(m, value);
}

/* GET: a text index, looked up. */
static int
op_get(machine *m)
{
    Py_ssize_t len, index;
    PyObject *as_int;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    if (text_parse_memo_index(m->st->UnpicklingError, line, len, &index,
                              &as_int) < 0) {
        return -1;
    }
    if (as_int != NULL) {
        index = PyLong_AsSsize_t(as_int);
        Py_DECREF(as_int);
        if (index == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    PyObject *value = load_memo_lookup(&m->memo, index);
    if (value == NULL) {
        return memo_missing(m, index);
    }
    if (UNLIKELY(m->ndeferred > 0) && deferred_fill(m, index, value) < 0) {
        return -1;
    }
    return stack_push(m, Py_NewRef(value));
}

static int
op_put(machine *m)
{
    Py_ssize_t len, index;
    PyObject *as_int;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    if (len < 2) {
        PyErr_SetString(m->st->UnpicklingError, "pickle data was truncated");
        return -1;
    }
    if (m->len <= m->fence) {
        return stack_error(m);
    }
    if (text_parse_memo_index(m->st->UnpicklingError, line, len, &index,
                              &as_int) < 0) {
        return -1;
    }
    PyObject *top = m->stack[m->len - 1];
    if (as_int == NULL) {
        return load_memo_store(&m->memo, index, top);
    }
    if (_PyLong_Sign(as_int) < 0) {
        Py_DECREF(as_int);
        PyErr_SetString(PyExc_ValueError, "negative PUT argument");
        return -1;
    }
    index = PyLong_AsSsize_t(as_int);     /* OverflowError past ssize_t */
    Py_DECREF(as_int);
    if (index == -1 && PyErr_Occurred()) {
        return -1;
    }
    return load_memo_store(&m->memo, index, top);
}

/* A name line of GLOBAL or INST, decoded. */
static PyObject *
read_name_line(machine *m, int ascii)
{
    Py_ssize_t len;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return NULL;
    }
    if (len < 2) {
        PyErr_SetString(m->st->UnpicklingError, "pickle data was truncated");
        return NULL;
    }
    return ascii ? PyUnicode_DecodeASCII(line, len - 1, "strict")
                 : PyUnicode_DecodeUTF8(line, len - 1, "strict");
}

static int
op_global(machine *m)
{
    PyObject *module_name = read_name_line(m, 0);
    if (module_name == NULL) {
        return -1;
    }
    PyObject *name = read_name_line(m, 0);
    if (name == NULL) {
        Py_DECREF(module_name);
        return -1;
    }
    PyObject *value = find_class(m, module_name, name);
    Py_DECREF(module_name);
    Py_DECREF(name);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_stack_global(machine *m)
{
    PyObject *module_name, *name, *value = NULL;
    if (stack_pop2(m, &module_name, &name) < 0) {
        return -1;
    }
    if (!PyUnicode_CheckExact(module_name) || !PyUnicode_CheckExact(name)) {
        PyErr_SetString(m->st->UnpicklingError, "STACK_GLOBAL requires str");
    }
    else {
        value = find_class(m, module_name, name);
    }
    Py_DECREF(module_name);
    Py_DECREF(name);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_inst(machine *m)
{
    Py_ssize_t mark = pop_mark(m);
    if (mark < 0) {
        return -1;
    }
    PyObject *args = stack_pop_tuple(m, mark);
    if (args == NULL) {
        return -1;
    }
    PyObject *module_name = NULL, *name = NULL, *cls = NULL, *value = NULL;
    module_name = read_name_line(m, 1);
    if (module_name == NULL) {
        goto done;
    }
    name = read_name_line(m, 1);
    if (name == NULL) {
        goto done;
    }
    cls = find_class(m, module_name, name);
    if (cls == NULL) {
        goto done;
    }
    value = m->safe != NULL ? safe_instantiate(m, cls, args, "INST")
                            : instantiate(m, cls, args);
done:
    Py_DECREF(args);
    Py_XDECREF(module_name);
    Py_XDECREF(name);
    Py_XDECREF(cls);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_obj(machine *m)
{
    Py_ssize_t mark = pop_mark(m);
    if (mark < 0) {
        return -1;
    }
    if (m->len == mark) {
        return stack_error(m);
    }
    PyObject *args = stack_pop_tuple(m, mark + 1);
    if (args == NULL) {
        return -1;
    }
    PyObject *cls = m->stack[--m->len];
    PyObject *value = m->safe != NULL ? safe_instantiate(m, cls, args, "OBJ")
                                      : instantiate(m, cls, args);
    Py_DECREF(cls);
    Py_DECREF(args);
    return value == NULL ? -1 : stack_push(m, value);
}

/* _codecs.encode(text, "latin1"), which pickles of bytes below protocol
 * 3 call: for an exact str whose characters all fit in a byte, the codec
 * returns exactly those bytes (as str.encode("latin1") does, but after a
 * codec registry lookup that costs more than the copy). NULL without an
 * exception when the call is something else. */
static PyObject *
encode_latin1_call(machine *m, PyObject *func, PyObject *args)
{
    if (func != m->ust->codecs_encode || PyTuple_GET_SIZE(args) != 2) {
        return NULL;
    }
    PyObject *text = PyTuple_GET_ITEM(args, 0);
    PyObject *encoding = PyTuple_GET_ITEM(args, 1);
    if (!PyUnicode_CheckExact(text) || !PyUnicode_CheckExact(encoding)
        || PyUnicode_CompareWithASCIIString(encoding, "latin1") != 0) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        PyErr_Clear();          /* the call reports it */
        return NULL;
    }
#endif
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        return NULL;            /* may fail: the codec says how */
    }
    return PyBytes_FromStringAndSize((const char *)PyUnicode_DATA(text),
                                     PyUnicode_GET_LENGTH(text));
}

static int
op_reduce(machine *m)
{
    PyObject *func, *args, *value = NULL;
    if (stack_pop2(m, &func, &args) < 0) {
        return -1;
    }
    if (!PyTuple_Check(args)) {
        PyErr_SetString(PyExc_TypeError, "argument list must be a tuple");
    }
    else if (m->safe != NULL) {
        value = safe_reduce(m, func, args);
    }
    else if (PyTuple_CheckExact(args)) {
        value = encode_latin1_call(m, func, args);
        if (value == NULL && !PyErr_Occurred()) {
            value = PyObject_Call(func, args, NULL);
        }
    }
    else {
        PyObject *seq = PySequence_Tuple(args);      /* func(*args) */
        if (seq != NULL) {
            value = PyObject_Call(func, seq, NULL);
            Py_DECREF(seq);
        }
    }
    Py_DECREF(args);
    Py_DECREF(func);
    return value == NULL ? -1 : stack_push(m, value);
}

/* NEWOBJ(_EX)'s checks, in C's order and words (kwargs NULL: NEWOBJ). */
static int
check_newobj(machine *m, const char *op, PyObject *cls, PyObject *args,
             PyObject *kwargs)
{
    if (!PyType_Check(cls)) {
        PyErr_Format(m->st->UnpicklingError,
                     "%s class argument must be a type, not %.200s",
                     op, Py_TYPE(cls)->tp_name);
        return -1;
    }
    if (PyType_HasFeature((PyTypeObject *)cls,
                          Py_TPFLAGS_DISALLOW_INSTANTIATION)) {
        /* (C names the metaclass here, not the class.) */
        PyErr_Format(m->st->UnpicklingError,
                     "%s class argument '%.200s' doesn't have __new__",
                     op, Py_TYPE(cls)->tp_name);
        return -1;
    }
    if (!PyTuple_Check(args)) {
        PyErr_Format(m->st->UnpicklingError,
                     "%s args argument must be a tuple, not %.200s",
                     op, Py_TYPE(args)->tp_name);
        return -1;
    }
    if (kwargs != NULL && !PyDict_Check(kwargs)) {
        PyErr_Format(m->st->UnpicklingError,
                     "%s kwargs argument must be a dict, not %.200s",
                     op, Py_TYPE(kwargs)->tp_name);
        return -1;
    }
    return 0;
}

static int
op_newobj(machine *m)
{
    if (m->len - m->fence < 2) {
        return stack_error(m);
    }
    PyObject *args = m->stack[--m->len];
    PyObject *cls = m->stack[--m->len];
    PyObject *value = NULL;
    if (check_newobj(m, "NEWOBJ", cls, args, NULL) == 0) {
        value = m->safe != NULL ? safe_newobj(m, cls, args, NULL)
                                : new_instance(m, cls, args, NULL);
    }
    Py_DECREF(cls);
    Py_DECREF(args);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_newobj_ex(machine *m)
{
    if (m->len - m->fence < 3) {
        return stack_error(m);
    }
    PyObject *kwargs = m->stack[--m->len];
    PyObject *args = m->stack[--m->len];
    PyObject *cls = m->stack[--m->len];
    PyObject *value = NULL;
    if (check_newobj(m, "NEWOBJ_EX", cls, args, kwargs) == 0) {
        value = m->safe != NULL ? safe_newobj(m, cls, args, kwargs)
                                : new_instance(m, cls, args, kwargs);
    }
    Py_DECREF(cls);
    Py_DECREF(args);
    Py_DECREF(kwargs);
    return value == NULL ? -1 : stack_push(m, value);
}

/* `key, value = item` for the items of a mapping's items(). */
static int
unpack_pair(PyObject *item, PyObject **key, PyObject **value)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        *key = Py_NewRef(PyTuple_GET_ITEM(item, 0));
        *value = Py_NewRef(PyTuple_GET_ITEM(item, 1));
        return 0;
    }
    PyObject *seq = PySequence_Tuple(item);
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    if (n != 2) {
        if (n < 2) {
            PyErr_Format(PyExc_ValueError,
                         "not enough values to unpack (expected 2, got %zd)",
                         n);
        }
        else {
            PyErr_SetString(PyExc_ValueError,
                            "too many values to unpack (expected 2)");
        }
        Py_DECREF(seq);
        return -1;
    }
    *key = Py_NewRef(PyTuple_GET_ITEM(seq, 0));
    *value = Py_NewRef(PyTuple_GET_ITEM(seq, 1));
    Py_DECREF(seq);
    return 0;
}

/* A running iteration over a mapping's items: PyDict_Next for an exact
 * dict, the items() method otherwise (a subclass may override it). */
typedef struct {
    PyObject *dict;
    Py_ssize_t pos;
    PyObject *iter;
} items_iter;

static int
items_begin(machine *m, items_iter *it, PyObject *mapping)
{
    it->dict = NULL;
    it->pos = 0;
    it->iter = NULL;
    if (PyDict_CheckExact(mapping)) {
        it->dict = mapping;
        return 0;
    }
    PyObject *items = PyObject_CallMethodNoArgs(mapping, m->ust->items);
    if (items == NULL) {
        return -1;
    }
    it->iter = PyObject_GetIter(items);
    Py_DECREF(items);
    return it->iter == NULL ? -1 : 0;
}

/* 1 with new references in *key and *value, 0 at the end, -1. */
static int
items_next(items_iter *it, PyObject **key, PyObject **value)
{
    if (it->dict != NULL) {
        if (!PyDict_Next(it->dict, &it->pos, key, value)) {
            return 0;
        }
        Py_INCREF(*key);
        Py_INCREF(*value);
        return 1;
    }
    PyObject *item = PyIter_Next(it->iter);
    if (item == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int rc = unpack_pair(item, key, value);
    Py_DECREF(item);
    return rc < 0 ? -1 : 1;
}

/* ------------------------------------------------ BUILD's interned keys */

#define INTERN_CACHE_BITS 6
#define INTERN_CACHE_SIZE (1 << INTERN_CACHE_BITS)

struct intern_slot {
    PyObject *key;              /* a key object seen in this load (held, so
                                   its address is not reused) */
    PyObject *interned;         /* its interned equal */
    /* plain_attribute_key found that no data descriptor of this type
     * (at this version tag, which changes with the type) has the key's
     * name; address only. */
    PyTypeObject *plain_type;
    unsigned int plain_version;
};

/* The slot for key: by address, spread by a multiplicative hash (the
 * low bits of small objects' addresses vary little). NULL when the cache
 * could not be allocated. */
static inline struct intern_slot *
intern_slot_of(machine *m, PyObject *key)
{
    if (m->intern_cache == NULL) {
        m->intern_cache = PyMem_Calloc(INTERN_CACHE_SIZE,
                                       sizeof(struct intern_slot));
        if (m->intern_cache == NULL) {
            return NULL;
        }
    }
    uint64_t h = (uint64_t)(uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15);
    return &m->intern_cache[h >> (64 - INTERN_CACHE_BITS)];
}

static void
intern_cache_clear(machine *m)
{
    struct intern_slot *cache = m->intern_cache;
    if (cache == NULL) {
        return;
    }
    m->intern_cache = NULL;
    for (Py_ssize_t i = 0; i < INTERN_CACHE_SIZE; i++) {
        Py_XDECREF(cache[i].key);
        Py_XDECREF(cache[i].interned);
    }
    PyMem_Free(cache);
}

/* sys.intern(key) for an exact str (new reference). */
static PyObject *
intern_key(machine *m, PyObject *key)
{
    if (PyUnicode_CHECK_INTERNED(key)) {
        return Py_NewRef(key);
    }
    struct intern_slot *slot = intern_slot_of(m, key);
    if (slot != NULL && slot->key == key) {
        return Py_NewRef(slot->interned);
    }
    PyObject *interned = Py_NewRef(key);
    PyUnicode_InternInPlace(&interned);
    if (slot != NULL) {
        PyObject *old_key = slot->key, *old_interned = slot->interned;
        slot->key = Py_NewRef(key);
        slot->interned = Py_NewRef(interned);
        slot->plain_type = NULL;
        Py_XDECREF(old_key);
        Py_XDECREF(old_interned);
    }
    return interned;
}

/* Whether BUILD may write dict state on instances of type through the
 * generic setattr: the same as inst.__dict__[key] = value when setattr and
 * getattr are the generic ones, __dict__ is the standard descriptor (and
 * the type has no __setstate__, which BUILD would call instead), but it
 * fills the instance's inline values without making its __dict__ a
 * separate dict object. The answer for the last type is remembered at its
 * version tag (which changes whenever the type or a base does); *version
 * is that tag, 0 when it cannot be remembered. */
static inline int
plain_attributes_type(machine *m, PyTypeObject *type, unsigned int *version)
{
    if (type->tp_setattro != PyObject_GenericSetAttr
        || type->tp_getattro != PyObject_GenericGetAttr) {
        return 0;
    }
    unsigned int tag = PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)
                       ? type->tp_version_tag : 0;
    if (tag == 0 || type != m->plain_type || tag != m->plain_version) {
        if (_PyType_Lookup(type, m->ust->setstate) != NULL) {
            return 0;
        }
        PyObject *dict_descr = _PyType_Lookup(type, m->ust->dict);
        if (dict_descr == NULL
            || !Py_IS_TYPE(dict_descr, &PyGetSetDescr_Type)) {
            return 0;
        }
        /* The lookups may have given the type its tag. */
        tag = PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)
              ? type->tp_version_tag : 0;
        m->plain_type = tag != 0 ? type : NULL;
        m->plain_version = tag;
    }
    *version = tag;
    return 1;
}

/* key names an attribute BUILD may set through the generic setattr on a
 * plain_attributes_type: an exact str naming no data descriptor of type
 * (remembered in the key's intern slot by plain_attribute_name). */
static inline int
plain_attribute_key(machine *m, PyTypeObject *type, unsigned int version,
                    PyObject *key)
{
    if (!PyUnicode_CheckExact(key)) {
        return 0;
    }
    struct intern_slot *slot = intern_slot_of(m, key);
    if (version != 0 && slot != NULL && slot->key == key
        && slot->plain_type == type && slot->plain_version == version) {
        return 1;
    }
    PyObject *descr = _PyType_Lookup(type, key);
    return descr == NULL || Py_TYPE(descr)->tp_descr_set == NULL;
}

/* The interned name for a key plain_attribute_key accepted, the check
 * remembered in its intern slot. New reference, NULL on error. */
static inline PyObject *
plain_attribute_name(machine *m, PyTypeObject *type, unsigned int version,
                     PyObject *key)
{
    PyObject *name = intern_key(m, key);
    if (name != NULL && version != 0) {
        struct intern_slot *slot = intern_slot_of(m, key);
        if (slot != NULL && slot->key == key) {
            slot->plain_type = type;
            slot->plain_version = version;
        }
    }
    return name;
}

/* BUILD's dict state for a plain instance (plain_attributes_type), set
 * through the generic setattr. Returns 1 when done, 0 when the object or
 * a key does not qualify, -1 on error. */
static int
setstate_as_attributes(machine *m, PyObject *inst, PyObject *state)
{
    PyTypeObject *type = Py_TYPE(inst);
    unsigned int version;
    PyObject *key, *value;
    Py_ssize_t it = 0;

    if (!PyDict_CheckExact(state)
        || !plain_attributes_type(m, type, &version)) {
        return 0;
    }
    /* Keys are checked as they come: when one does not qualify, the
     * caller starts over through __dict__, which sets the keys done here
     * again to the same values (their order in the dict unchanged). */
    while (PyDict_Next(state, &it, &key, &value)) {
        if (!plain_attribute_key(m, type, version, key)) {
            return 0;
        }
        Py_INCREF(value);
        PyObject *name = plain_attribute_name(m, type, version, key);
        int rc = name == NULL ? -1 : PyObject_GenericSetAttr(inst, name,
                                                             value);
        Py_XDECREF(name);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
    }
    return 1;
}

/* BUILD without __setstate__: update __dict__ (str keys interned), then
 * set the slot state's attributes. */
static int
default_setstate(machine *m, PyObject *inst, PyObject *state)
{
    PyObject *slotstate = Py_None;
    PyObject *key, *value;
    items_iter it;
    int rc;

    if (PyTuple_CheckExact(state) && PyTuple_GET_SIZE(state) == 2) {
        slotstate = PyTuple_GET_ITEM(state, 1);
        state = PyTuple_GET_ITEM(state, 0);
    }
    if (state != Py_None) {
        if (!PyDict_Check(state)) {
            PyErr_SetString(m->st->UnpicklingError,
                            "state is not a dictionary");
            return -1;
        }
        int done = setstate_as_attributes(m, inst, state);
        if (done < 0) {
            return -1;
        }
        if (done) {
            goto slots;
        }
        PyObject *inst_dict = PyObject_GetAttr(inst, m->ust->dict);
        if (inst_dict == NULL) {
            return -1;
        }
        if (items_begin(m, &it, state) < 0) {
            Py_DECREF(inst_dict);
            return -1;
        }
        int exact = PyDict_CheckExact(inst_dict);
        while ((rc = items_next(&it, &key, &value)) > 0) {
            if (PyUnicode_CheckExact(key)) {
                Py_SETREF(key, intern_key(m, key));
                if (key == NULL) {
                    Py_DECREF(value);
                    rc = -1;
                    break;
                }
            }
            rc = exact ? PyDict_SetItem(inst_dict, key, value)
                       : PyObject_SetItem(inst_dict, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (rc < 0) {
                break;
            }
        }
        Py_XDECREF(it.iter);
        Py_DECREF(inst_dict);
        if (rc < 0) {
            return -1;
        }
    }
slots:
    if (slotstate != Py_None) {
        if (!PyDict_Check(slotstate)) {
            PyErr_SetString(m->st->UnpicklingError,
                            "slot state is not a dictionary");
            return -1;
        }
        if (items_begin(m, &it, slotstate) < 0) {
            return -1;
        }
        while ((rc = items_next(&it, &key, &value)) > 0) {
            if (PyUnicode_CheckExact(key)) {
                /* setattr would intern the name itself, at a cost. */
                Py_SETREF(key, intern_key(m, key));
                if (key == NULL) {
                    Py_DECREF(value);
                    rc = -1;
                    break;
                }
            }
            rc = PyObject_SetAttr(inst, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (rc < 0) {
                break;
            }
        }
        Py_XDECREF(it.iter);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* BUILD once inst.__setstate__ has been looked up (rc and setstate as
 * inbuf_lookup_attr gives them); releases state and setstate. */
static int
build_after_lookup(machine *m, PyObject *inst, PyObject *state, int rc,
                   PyObject *setstate)
{
    /* As CPython's C unpickler: a __setstate__ of None is called too. */
    if (rc > 0) {
        PyObject *res = PyObject_CallOneArg(setstate, state);
        rc = res == NULL ? -1 : 0;
        Py_XDECREF(res);
    }
    else if (rc >= 0) {
        rc = default_setstate(m, inst, state);
    }
    Py_XDECREF(setstate);
    Py_DECREF(state);
    return rc;
}

static int
op_build(machine *m)
{
    if (m->len - m->fence < 2) {
        return stack_error(m);
    }
    PyObject *state = m->stack[--m->len];
    PyObject *inst = m->stack[m->len - 1];
    if (m->safe != NULL) {
        int safe_rc = safe_build(m, inst, state);
        Py_DECREF(state);
        return safe_rc;
    }
    PyObject *setstate;
    int rc = inbuf_lookup_attr(inst, m->ust->setstate, &setstate);
    return build_after_lookup(m, inst, state, rc, setstate);
}

/* ---------------------------------- SETITEMS + BUILD on a plain instance
 *
 * A plain instance pickles as NEWOBJ, EMPTY_DICT, PUT, MARK, key, value,
 * ..., SETITEMS, BUILD: CPython fills the state dict, then copies it into
 * the instance's __dict__, and the state dict lives on in the memo. When
 * SETITEMS fills a fresh, empty dict that nothing but the stack and one
 * memo entry holds, and BUILD follows on an instance whose BUILD would set
 * these str keys through the generic setattr (plain_attributes_type and
 * plain_attribute_key), the items go straight from the stack to the instance's
 * attributes, and the dict itself is only filled if a GET fetches it
 * (deferred_fill): the same objects come out, for less work. */

struct deferred_dict {
    Py_ssize_t index;           /* memo index */
    PyObject *dict;             /* owned: the empty dict put there */
    Py_ssize_t start;           /* its items in m->deferred_items */
    Py_ssize_t n;               /* 2 * number of items; -1 once filled */
};

static inline void
deferred_release(machine *m)
{
    if (m->deferred == NULL && m->deferred_items == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < m->ndeferred; i++) {
        Py_DECREF(m->deferred[i].dict);
    }
    for (Py_ssize_t i = 0; i < m->ndeferred_items; i++) {
        Py_DECREF(m->deferred_items[i]);
    }
    PyMem_Free(m->deferred);
    PyMem_Free(m->deferred_items);
    m->deferred = NULL;
    m->deferred_items = NULL;
    m->ndeferred = m->deferred_capacity = 0;
    m->ndeferred_items = m->deferred_items_capacity = 0;
}

/* GET of memo[index] == value: fill value first if it is a deferred
 * state dict. Returns 0 or -1. */
static int
deferred_fill(machine *m, Py_ssize_t index, PyObject *value)
{
    if (!PyDict_CheckExact(value) || PyDict_GET_SIZE(value) != 0) {
        return 0;
    }
    Py_ssize_t lo = 0, hi = m->ndeferred;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (m->deferred[mid].index < index) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    if (lo == m->ndeferred || m->deferred[lo].index != index) {
        return 0;
    }
    struct deferred_dict *d = &m->deferred[lo];
    if (d->dict != value || d->n < 0) {
        return 0;
    }
    PyObject **items = m->deferred_items + d->start;
    Py_ssize_t n = d->n;
    d->n = -1;
    for (Py_ssize_t i = 0; i < n; i += 2) {
        if (PyDict_SetItem(value, items[i], items[i + 1]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Record the items stack[mark:len] (references moved) for dict, put at
 * memo index `index`. Returns 0 or -1 (nothing moved). */
static int
deferred_add(machine *m, Py_ssize_t index, PyObject *dict, Py_ssize_t mark)
{
    Py_ssize_t n = m->len - mark;
    if (m->ndeferred == m->deferred_capacity) {
        Py_ssize_t capacity = m->deferred_capacity ? 2 * m->deferred_capacity
                                                   : 64;
        struct deferred_dict *deferred = PyMem_Realloc(
            m->deferred, (size_t)capacity * sizeof(*deferred));
        if (deferred == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        m->deferred = deferred;
        m->deferred_capacity = capacity;
    }
    if (m->deferred_items_capacity - m->ndeferred_items < n) {
        Py_ssize_t capacity = m->deferred_items_capacity
                              ? m->deferred_items_capacity : 512;
        while (capacity - m->ndeferred_items < n) {
            capacity *= 2;
        }
        PyObject **items = PyMem_Realloc(
            m->deferred_items, (size_t)capacity * sizeof(PyObject *));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        m->deferred_items = items;
        m->deferred_items_capacity = capacity;
    }
    struct deferred_dict *d = &m->deferred[m->ndeferred++];
    d->index = index;
    d->dict = Py_NewRef(dict);
    d->start = m->ndeferred_items;
    d->n = n;
    memcpy(m->deferred_items + m->ndeferred_items, m->stack + mark,
           (size_t)n * sizeof(PyObject *));
    m->ndeferred_items += n;
    m->len = mark;
    return 0;
}

/* SETITEMS with BUILD next (m->pos is at BUILD). Returns 0 when the pair
 * does not qualify (nothing done, no exception), 1 when both ran (m->pos
 * after BUILD), -1 on error (*at_build set when BUILD raised). */
static int
fused_setitems_build(machine *m, int *at_build)
{
    if (m->nmarks == 0) {
        return 0;
    }
    Py_ssize_t mark = m->marks[m->nmarks - 1];
    Py_ssize_t below = m->nmarks > 1 ? m->marks[m->nmarks - 2] : 0;
    Py_ssize_t n = m->len - mark;
    if (mark - 2 < below || n == 0 || n % 2) {
        return 0;               /* the stack errors are SETITEMS's */
    }
    PyObject *dict = m->stack[mark - 1];
    PyObject *inst = m->stack[mark - 2];
    if (!PyDict_CheckExact(dict) || PyDict_GET_SIZE(dict) != 0) {
        return 0;
    }
    /* Who else sees the dict: nobody, or memo[index] alone (an index
     * above the recorded ones, so that they stay sorted). */
    Py_ssize_t index = -1;
    if (Py_REFCNT(dict) != 1) {
        index = m->fresh_dict_index;
        if (Py_REFCNT(dict) != 2 || dict != m->fresh_dict || index < 0
            || load_memo_lookup(&m->memo, index) != dict
            || (m->ndeferred > 0
                && m->deferred[m->ndeferred - 1].index >= index)) {
            return 0;
        }
    }
    PyTypeObject *type = Py_TYPE(inst);
    unsigned int version;
    if (!plain_attributes_type(m, type, &version)) {
        return 0;
    }
    for (Py_ssize_t i = mark; i < m->len; i += 2) {
        if (!plain_attribute_key(m, type, version, m->stack[i])) {
            return 0;
        }
    }
    /* The type has no __setstate__; the instance may (in its __dict__).
     * From here on both opcodes run, whatever the lookup finds. */
    PyObject *setstate;
    int rc = inbuf_lookup_attr(inst, m->ust->setstate, &setstate);
    if (rc != 0) {
        /* Found or failed: SETITEMS as usual, then BUILD with it. */
        if (op_setitems(m) < 0) {
            Py_XDECREF(setstate);
            return -1;
        }
        *at_build = 1;
        m->pos += 1;
        PyObject *state = m->stack[--m->len];
        return build_after_lookup(m, inst, state, rc, setstate) < 0 ? -1 : 1;
    }
    *at_build = 1;
    m->pos += 1;
    m->nmarks--;
    m->fence = below;
    for (Py_ssize_t i = mark; i < m->len; i += 2) {
        PyObject *name = plain_attribute_name(m, type, version,
                                              m->stack[i]);
        if (name == NULL) {
            return -1;
        }
        int set_rc = PyObject_GenericSetAttr(inst, name, m->stack[i + 1]);
        Py_DECREF(name);
        if (set_rc < 0) {
            return -1;
        }
    }
    if (index >= 0) {
        if (deferred_add(m, index, dict, mark) < 0) {
            return -1;
        }
    }
    else {
        stack_drop_to(m, mark);
    }
    m->len--;                   /* the dict, popped by BUILD */
    Py_DECREF(dict);
    return 1;
}

/* APPEND(S) on something that is not a list: extend(items) when it has
 * an extend, else append(item) for each item. Steals `items`. */
static int
extend_other(machine *m, PyObject *target, PyObject *items)
{
    PyObject *extend, *res;
    int rc = -1;
    if (inbuf_lookup_attr(target, m->ust->extend, &extend) < 0) {
        goto done;
    }
    if (extend != NULL && extend != Py_None) {
        res = PyObject_CallOneArg(extend, items);
        Py_DECREF(extend);
        rc = res == NULL ? -1 : 0;
        Py_XDECREF(res);
        goto done;
    }
    Py_XDECREF(extend);
    PyObject *append = PyObject_GetAttr(target, m->ust->append);
    if (append == NULL) {
        goto done;
    }
    rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        res = PyObject_CallOneArg(append, PyList_GET_ITEM(items, i));
        if (res == NULL) {
            rc = -1;
            break;
        }
        Py_DECREF(res);
    }
    Py_DECREF(append);
done:
    Py_DECREF(items);
    return rc;
}

static int
op_append(machine *m)
{
    if (m->len - m->fence < 2) {
        return stack_error(m);
    }
    PyObject *value = m->stack[--m->len];
    PyObject *target = m->stack[m->len - 1];
    if (PyList_CheckExact(target)) {
        int rc = PyList_Append(target, value);
        Py_DECREF(value);
        return rc;
    }
    PyObject *items = PyList_New(1);
    if (items == NULL) {
        Py_DECREF(value);
        return -1;
    }
    PyList_SET_ITEM(items, 0, value);
    return extend_other(m, target, items);
}

/* list.extend(stack[height:]) for an exact list; the items leave the
 * stack. */
static int
list_extend_from_stack(machine *m, PyObject *list, Py_ssize_t height)
{
    Py_ssize_t n = m->len - height;
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030E0000
    /* CPython keeps a list's items in PyMem memory (list_resize uses
     * PyMem_Realloc): grow it once, with the same over-allocation, and
     * move the stack's references in. */
    PyListObject *l = (PyListObject *)list;
    Py_ssize_t size = Py_SIZE(l);
    if (l->allocated - size < n) {
        Py_ssize_t want = size + n;
        if (want > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) / 2) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t allocated = (want + (want >> 3) + 6) & ~(Py_ssize_t)3;
        PyObject **items = PyMem_Realloc(
            l->ob_item, (size_t)allocated * sizeof(PyObject *));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        l->ob_item = items;
        l->allocated = allocated;
    }
    memcpy(l->ob_item + size, m->stack + height,
           (size_t)n * sizeof(PyObject *));
    Py_SET_SIZE(l, size + n);
    m->len = height;
    return 0;
#else
    PyObject *items = stack_pop_list(m, height);
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t size = PyList_GET_SIZE(list);
    int rc = PyList_SetSlice(list, size, size, items);
    Py_DECREF(items);
    return rc;
#endif
}

/* APPENDS, SETITEMS, ADDITEMS: pop the topmost mark and find the object
 * just below it (*target, borrowed), which the items above the mark go
 * into. Returns the mark's height, or -1. */
static Py_ssize_t
pop_mark_below(machine *m, PyObject **target)
{
    Py_ssize_t mark = pop_mark(m);
    if (mark < 0) {
        return -1;
    }
    if (mark == m->fence) {
        return stack_error(m);
    }
    *target = m->stack[mark - 1];
    return mark;
}

static int
op_appends(machine *m)
{
    PyObject *target;
    Py_ssize_t mark = pop_mark_below(m, &target);
    if (mark < 0) {
        return -1;
    }
    if (m->len == mark) {
        return 0;
    }
    if (PyList_CheckExact(target)) {
        return list_extend_from_stack(m, target, mark);
    }
    PyObject *items = stack_pop_list(m, mark);
    if (items == NULL) {
        return -1;
    }
    return extend_other(m, target, items);
}

static int
op_setitem(machine *m)
{
    PyObject *key, *value;
    if (m->len - m->fence < 3) {
        return stack_error(m);
    }
    (void)stack_pop2(m, &key, &value);
    PyObject *target = m->stack[m->len - 1];
    int rc = PyDict_CheckExact(target) ? PyDict_SetItem(target, key, value)
                                       : PyObject_SetItem(target, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return rc;
}

/* (Inlined into both callers: the loop's hot path and the fused one.) */
static ALWAYS_INLINE int
op_setitems(machine *m)
{
    PyObject *target;
    Py_ssize_t mark = pop_mark_below(m, &target);
    if (mark < 0) {
        return -1;
    }
    Py_ssize_t n = m->len - mark;
    if (n == 0) {
        return 0;
    }
    if (n % 2) {
        PyErr_SetString(m->st->UnpicklingError,
                        "odd number of items for SETITEMS");
        return -1;
    }
    int exact = PyDict_CheckExact(target);
    for (Py_ssize_t i = mark; i < m->len; i += 2) {
        PyObject *key = m->stack[i], *value = m->stack[i + 1];
        if ((exact ? PyDict_SetItem(target, key, value)
                   : PyObject_SetItem(target, key, value)) < 0) {
            return -1;
        }
    }
    stack_drop_to(m, mark);
    return 0;
}

static int
op_additems(machine *m)
{
    PyObject *target;
    Py_ssize_t mark = pop_mark_below(m, &target);
    if (mark < 0) {
        return -1;
    }
    if (m->len == mark) {
        return 0;
    }
    if (PySet_Check(target)) {
        for (Py_ssize_t i = mark; i < m->len; i++) {
            if (PySet_Add(target, m->stack[i]) < 0) {
                return -1;
            }
        }
        stack_drop_to(m, mark);
        return 0;
    }
    PyObject *add = PyObject_GetAttr(target, m->ust->add);
    if (add == NULL) {
        return -1;
    }
    PyObject *items = stack_pop_list(m, mark);
    int rc = items == NULL ? -1 : 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++) {
        PyObject *res = PyObject_CallOneArg(add, PyList_GET_ITEM(items, i));
        if (res == NULL) {
            rc = -1;
        }
        Py_XDECREF(res);
    }
    Py_XDECREF(items);
    Py_DECREF(add);
    return rc;
}

static int
op_dict(machine *m)
{
    Py_ssize_t mark = pop_mark(m);
    if (mark < 0) {
        return -1;
    }
    if ((m->len - mark) % 2) {
        PyErr_SetString(m->st->UnpicklingError,
                        "odd number of items for DICT");
        return -1;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return -1;
    }
    for (Py_ssize_t i = mark; i < m->len; i += 2) {
        if (PyDict_SetItem(dict, m->stack[i], m->stack[i + 1]) < 0) {
            Py_DECREF(dict);
            return -1;
        }
    }
    stack_drop_to(m, mark);
    return stack_push(m, dict);
}

static int
op_frozenset(machine *m)
{
    Py_ssize_t mark = pop_mark(m);
    if (mark < 0) {
        return -1;
    }
    PyObject *items = stack_pop_tuple(m, mark);
    if (items == NULL) {
        return -1;
    }
    PyObject *value = PyFrozenSet_New(items);
    Py_DECREF(items);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_pop(machine *m)
{
    if (m->len > m->fence) {
        PyObject *obj = m->stack[--m->len];
        Py_DECREF(obj);
        return 0;
    }
    if (m->nmarks > 0) {
        return pop_mark(m) < 0 ? -1 : 0;      /* POP of a bare mark */
    }
    return stack_error(m);
}

static int
op_ext(machine *m, int size)
{
    if (need(m, size) < 0) {
        return -1;
    }
    const unsigned char *p = (const unsigned char *)m->in.data + m->pos;
    long code = size == 1 ? p[0]
                : size == 2 ? (long)(p[0] | p[1] << 8)
                : (long)(int32_t)read_u32(p);
    m->pos += size;
    if (code <= 0) {
        PyErr_SetString(m->st->UnpicklingError, "EXT specifies code <= 0");
        return -1;
    }
    if (m->safe != NULL) {
        PyObject *found = safe_ext(m, code);
        return found == NULL ? -1 : stack_push(m, found);
    }
    PyObject *key = PyLong_FromLong(code);
    if (key == NULL) {
        return -1;
    }
    PyObject *obj = PyDict_GetItemWithError(m->st->extension_cache, key);
    if (obj != NULL) {
        Py_DECREF(key);
        return stack_push(m, Py_NewRef(obj));
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    }
    PyObject *pair = PyDict_GetItemWithError(m->st->inverted_registry, key);
    if (pair == NULL) {
        Py_DECREF(key);
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "unregistered extension code %ld",
                         code);
        }
        return -1;
    }
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
        || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))
        || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
        Py_DECREF(key);
        PyErr_Format(PyExc_ValueError,
                     "_inverted_registry[%ld] isn't a 2-tuple of strings",
                     code);
        return -1;
    }
    Py_INCREF(pair);
    obj = find_class(m, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1));
    Py_DECREF(pair);
    if (obj == NULL
        || PyDict_SetItem(m->st->extension_cache, key, obj) < 0) {
        Py_DECREF(key);
        Py_XDECREF(obj);
        return -1;
    }
    Py_DECREF(key);
    return stack_push(m, obj);
}

static int
no_persistent_load(machine *m)
{
    PyErr_SetString(m->st->UnpicklingError,
                    BRINERY_NO_PERSISTENT_LOAD_MESSAGE);
    return -1;
}

/* Before 3.13 a missing persistent_load is reported before the opcode's
 * argument is read; since, after (see accel.h). */
static int
op_persid(machine *m)
{
    if (m->persistent_load == NULL && !BRINERY_PERSISTENT_HOOKS_ARE_METHODS) {
        return no_persistent_load(m);
    }
    Py_ssize_t len;
    const char *line = read_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    PyObject *pid = PyUnicode_DecodeASCII(line, len - 1, "strict");
    if (pid == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return -1;
        }
        PyErr_Clear();
        PyErr_SetString(m->st->UnpicklingError,
                        "persistent IDs in protocol 0 must be ASCII strings");
        return -1;
    }
    if (m->persistent_load == NULL) {
        Py_DECREF(pid);
        return no_persistent_load(m);
    }
    PyObject *value = m->safe != NULL ? safe_persistent(m, pid)
                      : PyObject_CallOneArg(m->persistent_load, pid);
    Py_DECREF(pid);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_binpersid(machine *m)
{
    if (m->persistent_load == NULL && !BRINERY_PERSISTENT_HOOKS_ARE_METHODS) {
        return no_persistent_load(m);
    }
    if (m->len <= m->fence) {
        return stack_error(m);
    }
    if (m->persistent_load == NULL) {
        return no_persistent_load(m);
    }
    PyObject *pid = m->stack[--m->len];
    PyObject *value = m->safe != NULL ? safe_persistent(m, pid)
                      : PyObject_CallOneArg(m->persistent_load, pid);
    Py_DECREF(pid);
    return value == NULL ? -1 : stack_push(m, value);
}

static int
op_next_buffer(machine *m)
{
    if (m->buffers == NULL) {
        PyErr_SetString(m->st->UnpicklingError,
                        "pickle stream refers to out-of-band data but no "
                        "*buffers* argument was given");
        return -1;
    }
    PyObject *buf = PyIter_Next(m->buffers);
    if (buf == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(m->st->UnpicklingError,
                            "not enough out-of-band buffers");
        }
        return -1;
    }
    if (stack_push(m, buf) < 0) {
        return -1;
    }
    return m->safe != NULL ? safe_buffer(m) : 0;
}

static int
op_readonly_buffer(machine *m)
{
    if (m->len <= m->fence) {
        return stack_error(m);
    }
    PyObject *view = PyMemoryView_FromObject(m->stack[m->len - 1]);
    if (view == NULL) {
        return -1;
    }
    if (PyMemoryView_GET_BUFFER(view)->readonly) {
        Py_DECREF(view);
        return 0;
    }
    PyObject *readonly = PyObject_CallMethodNoArgs(view, m->ust->toreadonly);
    Py_DECREF(view);
    if (readonly == NULL) {
        return -1;
    }
    Py_SETREF(m->stack[m->len - 1], readonly);
    return 0;
}

/* ------------------------------------------------------------ the loop */

/* GCC and Clang can jump through a table of labels ("computed goto"),
 * which dispatches faster than a switch. */
#if defined(__GNUC__) && !defined(BRINERY_NO_COMPUTED_GOTO)
#  define USE_COMPUTED_GOTO 1
#  define TARGET(name) case name: target_##name:
#  define TARGET_INVALID default: target_invalid:
/* Fetch the next opcode and jump to its code (the slow case, refilling
 * the window, goes through the top of the loop). */
#  define DISPATCH() \
    do { \
        if (UNLIKELY(pos >= end)) { \
            goto next_opcode; \
        } \
        op_offset = base + pos; \
        op = data[pos++]; \
        goto *op_table[op]; \
    } while (0)
#else
#  define USE_COMPUTED_GOTO 0
#  define TARGET(name) case name:
#  define TARGET_INVALID default:
#  define DISPATCH() continue
#endif

/* ----------------------------------------------------------- dict keys */

/* Many small pickles of the same shape (RPC messages, cache entries, one
 * record per call) spend much of a load decoding, allocating and hashing
 * the same few dict keys again: within one pickle the pickler memoizes a
 * repeated key, across pickles nothing can. So the str opcodes that push
 * a dict's key (the object below the topmost MARK is an exact dict and an
 * even number of items sits above it) look short ASCII keys up in a cache
 * in the module state that outlives the load, and reuse the str found
 * there, hash included. A str is immutable: sharing it between loads
 * gives equal results, only `is` can tell (as with interned names).
 * A load that keeps missing (unique keys, e.g. a dict of 100k distinct
 * names) stops looking after KEY_MISS_BUDGET misses more than hits. */

#define KEY_MISS_BUDGET 64

/* (head, tail) with the size tell any two byte strings of up to 16 bytes
 * apart: the first and last 8 bytes (they overlap below 16), or for
 * fewer than 8 bytes the first and last 4, or every byte. */
static ALWAYS_INLINE void
key_words(const unsigned char *s, Py_ssize_t n, uint64_t *head,
          uint64_t *tail)
{
    if (n >= 8) {
        memcpy(head, s, 8);
        memcpy(tail, s + n - 8, 8);
    }
    else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        *head = a;
        *tail = b;
    }
    else {
        *head = n == 0 ? 0 : (uint64_t)s[0] | (uint64_t)s[n / 2] << 8
                             | (uint64_t)s[n - 1] << 16;
        *tail = 0;
    }
}

/* Whether the str about to be pushed is a dict key, by the stack's shape
 * (the SETITEMS that will take it does not matter: a wrong guess only
 * costs a lookup). */
#define AT_DICT_KEY(m) \
    ((((m)->len - (m)->fence) & 1) == 0 && (m)->fence > 0 \
     && PyDict_CheckExact((m)->stack[(m)->fence - 1]))

/* The str of n <= KEY_CACHE_MAX_BYTES UTF-8 bytes at s (new reference),
 * from the key cache when it holds it. *budget counts misses down. */
static PyObject *
decode_dict_key(machine *m, const unsigned char *s, Py_ssize_t n,
                int *budget)
{
    uint64_t head, tail;
    key_words(s, n, &head, &tail);
    uint64_t h = (head ^ (tail * UINT64_C(0xC2B2AE3D27D4EB4F)) ^ (uint64_t)n)
                 * UINT64_C(0x9E3779B97F4A7C15);
    key_cache_entry *e = &m->ust->key_cache[h >> (64 - KEY_CACHE_BITS)];
    if (e->str != NULL && e->size == n && e->head == head
        && e->tail == tail
        && (n <= 16 || memcmp((const char *)PyUnicode_DATA(e->str) + 8,
                              s + 8, (size_t)(n - 16)) == 0)) {
        if (*budget < KEY_MISS_BUDGET) {
            (*budget)++;
        }
        return Py_NewRef(e->str);
    }
    (*budget)--;
    PyObject *str = decode_utf8(s, n);
    if (str != NULL && PyUnicode_IS_ASCII(str)) {
        Py_XSETREF(e->str, Py_NewRef(str));
        e->size = n;
        e->head = head;
        e->tail = tail;
    }
    return str;
}

/* The str argument of SHORT_BINUNICODE, BINUNICODE and BINUNICODE8 (new
 * reference): through the key cache when it is a short dict key, else
 * decoded. */
static ALWAYS_INLINE PyObject *
decode_text_arg(machine *m, const unsigned char *s, Py_ssize_t n,
                int *key_budget)
{
    if (n <= KEY_CACHE_MAX_BYTES && *key_budget > 0 && AT_DICT_KEY(m)) {
        return decode_dict_key(m, s, n, key_budget);
    }
    return decode_utf8(s, n);
}

static void
key_cache_clear(unpickler_state *ust)
{
    if (ust->key_cache == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < KEY_CACHE_SIZE; i++) {
        Py_CLEAR(ust->key_cache[i].str);
    }
}

/* Run the machine from m->pos to STOP. Returns the object on top of the
 * stack at STOP (new reference) and leaves m->pos after STOP, or NULL
 * with an exception carrying the position note. */
static PyObject *
machine_run(machine *m)
{
    const unsigned char *data = (const unsigned char *)m->in.data;
    Py_ssize_t pos = m->pos, end = m->in.end, base = m->in.base;
    Py_ssize_t op_offset = 0;
    int op = 0;
    /* Safe mode: every opcode goes through the top of the loop, where
     * safe_before/safe_after check it (unpickler_safe.c). */
    const int safe_mode = m->safe != NULL;
    int key_budget = KEY_MISS_BUDGET;

/* After the input window may have moved (a fill or a handler that read). */
#define RELOAD() \
    (data = (const unsigned char *)m->in.data, end = m->in.end, \
     base = m->in.base)
#define NEED_WITH(fill, n) \
    do { \
        if (UNLIKELY(end - pos < (Py_ssize_t)(n))) { \
            Py_ssize_t filled_ = fill(&m->in, pos, (n)); \
            RELOAD(); \
            if (filled_ < 0) { \
                pos = 0; \
                goto error; \
            } \
            pos = filled_; \
        } \
    } while (0)
/* n bytes of the opcode's argument (inbuf_fill: more follows them). */
#define NEED(n) NEED_WITH(inbuf_fill, n)
#define PUSH(expr) \
    do { \
        PyObject *obj_ = (expr); \
        if (UNLIKELY(obj_ == NULL) || UNLIKELY(stack_push(m, obj_) < 0)) { \
            goto error; \
        } \
    } while (0)
/* CPython reads a bytes payload from memory so that even an empty one
 * must not start at the very end of the input. */
#define BYTES_PAYLOAD_AT(start) \
    do { \
        if (UNLIKELY((start) == end) && m->in.file == NULL) { \
            PyErr_SetString(m->st->UnpicklingError, \
                            "pickle data was truncated"); \
            goto error; \
        } \
    } while (0)
/* A handler outside the loop, reading from m->pos. */
#define CALL(handler_call) \
    do { \
        m->pos = pos; \
        int rc_ = (handler_call); \
        RELOAD(); \
        pos = m->pos; \
        if (UNLIKELY(rc_ < 0)) { \
            goto error; \
        } \
    } while (0)
#define AVAILABLE() (m->len - m->fence)
/* After pushing a new object: picklers memoize nearly every one, so take
 * a MEMOIZE or BINPUT that follows right here, saving a trip through the
 * dispatch (it is exactly what its case below does; the stack is not
 * empty). */
#define TAKE_MEMO_OPCODE() \
    do { \
        if (UNLIKELY(safe_mode)) { \
        } \
        else if (pos < end && data[pos] == OP_MEMOIZE) { \
            op = OP_MEMOIZE; \
            op_offset = base + pos; \
            pos += 1; \
            if (UNLIKELY(load_memo_store(&m->memo, load_memo_size(&m->memo), \
                                    m->stack[m->len - 1]) < 0)) { \
                goto error; \
            } \
        } \
        else if (end - pos >= 2 && data[pos] == OP_BINPUT) { \
            op = OP_BINPUT; \
            op_offset = base + pos; \
            if (UNLIKELY(load_memo_store(&m->memo, data[pos + 1], \
                                    m->stack[m->len - 1]) < 0)) { \
                goto error; \
            } \
            pos += 2; \
        } \
        else if (end - pos >= 5 && data[pos] == OP_LONG_BINPUT) { \
            op = OP_LONG_BINPUT; \
            op_offset = base + pos; \
            if (UNLIKELY(load_memo_store(&m->memo, \
                                    (Py_ssize_t)read_u32(data + pos + 1), \
                                    m->stack[m->len - 1]) < 0)) { \
                goto error; \
            } \
            pos += 5; \
        } \
    } while (0)

#if USE_COMPUTED_GOTO
    /* Threaded dispatch: each opcode's code jumps straight to the next
     * one's (see DISPATCH); the switch below is the portable form. */
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Woverride-init"
    static const void *const dispatch_table[256] = {
        [0 ... 255] = &&target_invalid,
        [OP_EMPTY_LIST] = &&target_OP_EMPTY_LIST,
        [OP_EMPTY_DICT] = &&target_OP_EMPTY_DICT,
        [OP_EMPTY_TUPLE] = &&target_OP_EMPTY_TUPLE,
        [OP_EMPTY_SET] = &&target_OP_EMPTY_SET,
        [OP_MARK] = &&target_OP_MARK,
        [OP_APPEND] = &&target_OP_APPEND,
        [OP_APPENDS] = &&target_OP_APPENDS,
        [OP_SETITEM] = &&target_OP_SETITEM,
        [OP_SETITEMS] = &&target_OP_SETITEMS,
        [OP_ADDITEMS] = &&target_OP_ADDITEMS,
        [OP_LIST] = &&target_OP_LIST,
        [OP_TUPLE] = &&target_OP_TUPLE,
        [OP_TUPLE1] = &&target_OP_TUPLE1,
        [OP_TUPLE2] = &&target_OP_TUPLE2,
        [OP_TUPLE3] = &&target_OP_TUPLE3,
        [OP_DICT] = &&target_OP_DICT,
        [OP_FROZENSET] = &&target_OP_FROZENSET,
        [OP_POP] = &&target_OP_POP,
        [OP_POP_MARK] = &&target_OP_POP_MARK,
        [OP_DUP] = &&target_OP_DUP,
        [OP_BINPUT] = &&target_OP_BINPUT,
        [OP_LONG_BINPUT] = &&target_OP_LONG_BINPUT,
        [OP_MEMOIZE] = &&target_OP_MEMOIZE,
        [OP_BINGET] = &&target_OP_BINGET,
        [OP_LONG_BINGET] = &&target_OP_LONG_BINGET,
        [OP_GET] = &&target_OP_GET,
        [OP_PUT] = &&target_OP_PUT,
        [OP_NONE] = &&target_OP_NONE,
        [OP_NEWTRUE] = &&target_OP_NEWTRUE,
        [OP_NEWFALSE] = &&target_OP_NEWFALSE,
        [OP_BININT1] = &&target_OP_BININT1,
        [OP_BININT2] = &&target_OP_BININT2,
        [OP_BININT] = &&target_OP_BININT,
        [OP_BINFLOAT] = &&target_OP_BINFLOAT,
        [OP_LONG1] = &&target_OP_LONG1,
        [OP_LONG4] = &&target_OP_LONG4,
        [OP_INT] = &&target_OP_INT,
        [OP_LONG] = &&target_OP_LONG,
        [OP_FLOAT] = &&target_OP_FLOAT,
        [OP_SHORT_BINUNICODE] = &&target_OP_SHORT_BINUNICODE,
        [OP_BINUNICODE] = &&target_OP_BINUNICODE,
        [OP_BINUNICODE8] = &&target_OP_BINUNICODE8,
        [OP_SHORT_BINBYTES] = &&target_OP_SHORT_BINBYTES,
        [OP_BINBYTES] = &&target_OP_BINBYTES,
        [OP_BINBYTES8] = &&target_OP_BINBYTES8,
        [OP_BYTEARRAY8] = &&target_OP_BYTEARRAY8,
        [OP_SHORT_BINSTRING] = &&target_OP_SHORT_BINSTRING,
        [OP_BINSTRING] = &&target_OP_BINSTRING,
        [OP_STRING] = &&target_OP_STRING,
        [OP_UNICODE] = &&target_OP_UNICODE,
        [OP_NEXT_BUFFER] = &&target_OP_NEXT_BUFFER,
        [OP_READONLY_BUFFER] = &&target_OP_READONLY_BUFFER,
        [OP_GLOBAL] = &&target_OP_GLOBAL,
        [OP_STACK_GLOBAL] = &&target_OP_STACK_GLOBAL,
        [OP_REDUCE] = &&target_OP_REDUCE,
        [OP_BUILD] = &&target_OP_BUILD,
        [OP_NEWOBJ] = &&target_OP_NEWOBJ,
        [OP_NEWOBJ_EX] = &&target_OP_NEWOBJ_EX,
        [OP_INST] = &&target_OP_INST,
        [OP_OBJ] = &&target_OP_OBJ,
        [OP_EXT1] = &&target_OP_EXT1,
        [OP_EXT2] = &&target_OP_EXT2,
        [OP_EXT4] = &&target_OP_EXT4,
        [OP_PERSID] = &&target_OP_PERSID,
        [OP_BINPERSID] = &&target_OP_BINPERSID,
        [OP_PROTO] = &&target_OP_PROTO,
        [OP_FRAME] = &&target_OP_FRAME,
        [OP_STOP] = &&target_OP_STOP,
    };
    static const void *const safe_table[256] = {
        [0 ... 255] = &&safe_redo,
    };
    const void *const *op_table = safe_mode ? safe_table : dispatch_table;
#  pragma GCC diagnostic pop
#endif

    for (;;) {
    next_opcode:
        if (UNLIKELY(safe_mode)
            && safe_after(m, base + pos, &op, &op_offset) < 0) {
            goto error;
        }
        if (UNLIKELY(pos >= end)) {
            Py_ssize_t at = base + pos;
            Py_ssize_t filled = fetch_opcode(m, pos);
            RELOAD();
            if (filled < 0) {
                if (safe_mode) {
                    safe_note_error(m, at);
                }
                m->pos = 0;
                return NULL;            /* no opcode: no note */
            }
            pos = filled;
        }
        op_offset = base + pos;
        op = data[pos++];
        if (UNLIKELY(safe_mode)) {
            m->pos = pos;
            int handled = safe_before(m, op, op_offset);
            RELOAD();
            pos = m->pos;
            if (handled < 0) {
                goto error;
            }
            if (handled) {
                continue;
            }
        }
#if USE_COMPUTED_GOTO
        goto *dispatch_table[op];
#endif
        switch (op) {

        /* Containers and the stack. */
        TARGET(OP_EMPTY_LIST)
            PUSH(PyList_New(0));
            TAKE_MEMO_OPCODE();
            DISPATCH();
        TARGET(OP_EMPTY_DICT)
            PUSH(PyDict_New());
            /* Where it goes in the memo, for fused_setitems_build. */
            m->fresh_dict = m->stack[m->len - 1];
            m->fresh_dict_index =
                pos >= end ? -1
                : data[pos] == OP_MEMOIZE ? load_memo_size(&m->memo)
                : data[pos] == OP_BINPUT && end - pos >= 2 ? data[pos + 1]
                : data[pos] == OP_LONG_BINPUT && end - pos >= 5
                ? (Py_ssize_t)read_u32(data + pos + 1)
                : -1;
            TAKE_MEMO_OPCODE();
            DISPATCH();
        TARGET(OP_EMPTY_TUPLE)
            PUSH(PyTuple_New(0));
            DISPATCH();
        TARGET(OP_EMPTY_SET)
            PUSH(PySet_New(NULL));
            DISPATCH();
        TARGET(OP_MARK)
            if (UNLIKELY(push_mark(m) < 0)) {
                goto error;
            }
            DISPATCH();
        TARGET(OP_APPEND) {
            if (AVAILABLE() >= 2 && PyList_CheckExact(m->stack[m->len - 2])) {
                PyObject *value = m->stack[m->len - 1];
                if (UNLIKELY(PyList_Append(m->stack[m->len - 2], value) < 0)) {
                    goto error;
                }
                m->len--;
                Py_DECREF(value);
                DISPATCH();
            }
            CALL(op_append(m));
            DISPATCH();
        }
        TARGET(OP_APPENDS)
            CALL(op_appends(m));
            DISPATCH();
        TARGET(OP_SETITEM)
            CALL(op_setitem(m));
            DISPATCH();
        TARGET(OP_SETITEMS)
            if (pos < end && data[pos] == OP_BUILD && m->owner == NULL
                && !safe_mode) {
                /* SETITEMS then BUILD, fused when it can be (nothing is
                 * done when it returns 0). */
                int at_build = 0;
                m->pos = pos;
                int rc_ = fused_setitems_build(m, &at_build);
                if (rc_ != 0) {
                    if (at_build) {
                        op = OP_BUILD;
                        op_offset = base + pos;
                    }
                    RELOAD();
                    pos = m->pos;
                    if (UNLIKELY(rc_ < 0)) {
                        goto error;
                    }
                    DISPATCH();
                }
            }
            CALL(op_setitems(m));
            DISPATCH();
        TARGET(OP_ADDITEMS)
            CALL(op_additems(m));
            DISPATCH();
        TARGET(OP_LIST) {
            Py_ssize_t mark = pop_mark(m);
            if (mark < 0) {
                goto error;
            }
            PUSH(stack_pop_list(m, mark));
            DISPATCH();
        }
        TARGET(OP_TUPLE) {
            Py_ssize_t mark = pop_mark(m);
            if (mark < 0) {
                goto error;
            }
            PUSH(stack_pop_tuple(m, mark));
            DISPATCH();
        }
        TARGET(OP_TUPLE1)
        TARGET(OP_TUPLE2)
        TARGET(OP_TUPLE3) {
            Py_ssize_t n = op - OP_TUPLE1 + 1;
            if (UNLIKELY(AVAILABLE() < n)) {
                stack_error(m);
                goto error;
            }
            PUSH(stack_pop_tuple(m, m->len - n));
            DISPATCH();
        }
        TARGET(OP_DICT)
            CALL(op_dict(m));
            DISPATCH();
        TARGET(OP_FROZENSET)
            CALL(op_frozenset(m));
            DISPATCH();
        TARGET(OP_POP)
            CALL(op_pop(m));
            DISPATCH();
        TARGET(OP_POP_MARK) {
            Py_ssize_t mark = pop_mark(m);
            if (mark < 0) {
                goto error;
            }
            stack_drop_to(m, mark);
            DISPATCH();
        }
        TARGET(OP_DUP)
            if (UNLIKELY(AVAILABLE() < 1)) {
                stack_error(m);
                goto error;
            }
            PUSH(Py_NewRef(m->stack[m->len - 1]));
            DISPATCH();

        /* Memo. */
        TARGET(OP_BINPUT)
            NEED(1);
            if (UNLIKELY(AVAILABLE() < 1)) {
                stack_error(m);
                goto error;
            }
            if (UNLIKELY(load_memo_store(&m->memo, data[pos],
                                    m->stack[m->len - 1]) < 0)) {
                goto error;
            }
            pos += 1;
            DISPATCH();
        TARGET(OP_LONG_BINPUT)
            NEED(4);
            if (UNLIKELY(AVAILABLE() < 1)) {
                stack_error(m);
                goto error;
            }
            if (UNLIKELY(load_memo_store(&m->memo, (Py_ssize_t)read_u32(data + pos),
                                    m->stack[m->len - 1]) < 0)) {
                goto error;
            }
            pos += 4;
            DISPATCH();
        TARGET(OP_MEMOIZE)
            if (UNLIKELY(AVAILABLE() < 1)) {
                stack_error(m);
                goto error;
            }
            if (UNLIKELY(load_memo_store(&m->memo, load_memo_size(&m->memo),
                                    m->stack[m->len - 1]) < 0)) {
                goto error;
            }
            DISPATCH();
        TARGET(OP_BINGET)
        TARGET(OP_LONG_BINGET) {
            Py_ssize_t index;
            if (op == OP_BINGET) {
                NEED(1);
                index = data[pos++];
            }
            else {
                NEED(4);
                index = (Py_ssize_t)read_u32(data + pos);
                pos += 4;
            }
            PyObject *value = load_memo_lookup(&m->memo, index);
            if (UNLIKELY(value == NULL)) {
                memo_missing(m, index);
                goto error;
            }
            if (UNLIKELY(m->ndeferred > 0)
                && deferred_fill(m, index, value) < 0) {
                goto error;
            }
            PUSH(Py_NewRef(value));
            DISPATCH();
        }
        TARGET(OP_GET)
            CALL(op_get(m));
            DISPATCH();
        TARGET(OP_PUT)
            CALL(op_put(m));
            DISPATCH();

        /* Scalars. */
        TARGET(OP_NONE)
            PUSH(Py_NewRef(Py_None));
            DISPATCH();
        TARGET(OP_NEWTRUE)
            PUSH(Py_NewRef(Py_True));
            DISPATCH();
        TARGET(OP_NEWFALSE)
            PUSH(Py_NewRef(Py_False));
            DISPATCH();
        TARGET(OP_BININT1)
            NEED(1);
            PUSH(PyLong_FromLong(data[pos]));
            pos += 1;
            DISPATCH();
        TARGET(OP_BININT2)
            NEED(2);
            PUSH(PyLong_FromLong(data[pos] | data[pos + 1] << 8));
            pos += 2;
            DISPATCH();
        TARGET(OP_BININT)
            NEED(4);
            PUSH(PyLong_FromLong((int32_t)read_u32(data + pos)));
            pos += 4;
            DISPATCH();
        TARGET(OP_BINFLOAT) {
            NEED(8);
            /* Big-endian IEEE 754, which CPython 3.11+ requires of the
             * platform's double (with the byte order of its integers). */
            uint64_t bits = read_be64(data + pos);
            double value;
            memcpy(&value, &bits, sizeof(value));
            PUSH(PyFloat_FromDouble(value));
            pos += 8;
            DISPATCH();
        }
        TARGET(OP_LONG1)
            CALL(op_counted_long(m, 1));
            DISPATCH();
        TARGET(OP_LONG4)
            CALL(op_counted_long(m, 4));
            DISPATCH();
        TARGET(OP_INT)
            CALL(op_text(m, text_parse_int));
            DISPATCH();
        TARGET(OP_LONG)
            CALL(op_text(m, text_parse_long));
            DISPATCH();
        TARGET(OP_FLOAT)
            CALL(op_text(m, text_parse_float));
            DISPATCH();

        /* Text and bytes. */
        TARGET(OP_SHORT_BINUNICODE) {
            NEED(1);
            Py_ssize_t n = data[pos];
            NEED(1 + n);
            PUSH(decode_text_arg(m, data + pos + 1, n, &key_budget));
            pos += 1 + n;
            TAKE_MEMO_OPCODE();
            DISPATCH();
        }
        TARGET(OP_BINUNICODE) {
            NEED(4);
            Py_ssize_t n = (Py_ssize_t)read_u32(data + pos);
            pos += 4;
            NEED(n);
            PUSH(decode_text_arg(m, data + pos, n, &key_budget));
            pos += n;
            TAKE_MEMO_OPCODE();
            DISPATCH();
        }
        TARGET(OP_BINUNICODE8) {
            NEED(8);
            uint64_t n = read_u64(data + pos);
            if (n > (uint64_t)PY_SSIZE_T_MAX) {
                size_overflow(m, "BINUNICODE");
                goto error;
            }
            pos += 8;
            NEED((Py_ssize_t)n);
            PUSH(decode_text_arg(m, data + pos, (Py_ssize_t)n, &key_budget));
            pos += (Py_ssize_t)n;
            DISPATCH();
        }
        TARGET(OP_SHORT_BINBYTES) {
            NEED(1);
            Py_ssize_t n = data[pos];
            NEED(1 + n);
            BYTES_PAYLOAD_AT(pos + 1);
            PUSH(PyBytes_FromStringAndSize((const char *)data + pos + 1, n));
            pos += 1 + n;
            DISPATCH();
        }
        TARGET(OP_BINBYTES) {
            NEED(4);
            Py_ssize_t n = (Py_ssize_t)read_u32(data + pos);
            pos += 4;
            if (UNLIKELY(end - pos < n) && m->in.file != NULL) {
                /* Read from the file straight into the object. */
                Py_ssize_t next_;
                PyObject *payload_ = inbuf_read_payload(&m->in, pos, n, 0,
                                                        &next_);
                RELOAD();
                pos = payload_ == NULL ? 0 : next_;
                PUSH(payload_);
                DISPATCH();
            }
            NEED(n);
            BYTES_PAYLOAD_AT(pos);
            PUSH(PyBytes_FromStringAndSize((const char *)data + pos, n));
            pos += n;
            DISPATCH();
        }
        TARGET(OP_BINBYTES8)
        TARGET(OP_BYTEARRAY8) {
            NEED(8);
            uint64_t n = read_u64(data + pos);
            if (n > (uint64_t)PY_SSIZE_T_MAX) {
                size_overflow(m, op == OP_BINBYTES8 ? "BINBYTES"
                                                    : "BYTEARRAY8");
                goto error;
            }
            pos += 8;
            if (UNLIKELY(end - pos < (Py_ssize_t)n) && m->in.file != NULL) {
                /* Read from the file straight into the object. */
                Py_ssize_t next_;
                PyObject *payload_ = inbuf_read_payload(
                    &m->in, pos, (Py_ssize_t)n, op == OP_BYTEARRAY8, &next_);
                RELOAD();
                pos = payload_ == NULL ? 0 : next_;
                PUSH(payload_);
                DISPATCH();
            }
            NEED((Py_ssize_t)n);
            BYTES_PAYLOAD_AT(pos);
            const char *s = (const char *)data + pos;
            PUSH(op == OP_BINBYTES8
                 ? PyBytes_FromStringAndSize(s, (Py_ssize_t)n)
                 : PyByteArray_FromStringAndSize(s, (Py_ssize_t)n));
            pos += (Py_ssize_t)n;
            DISPATCH();
        }
        TARGET(OP_SHORT_BINSTRING) {
            NEED(1);
            Py_ssize_t n = data[pos];
            NEED(1 + n);
            PUSH(decode_py2_str(m, (const char *)data + pos + 1, n));
            pos += 1 + n;
            DISPATCH();
        }
        TARGET(OP_BINSTRING) {
            NEED(4);
            Py_ssize_t n = (Py_ssize_t)read_u32(data + pos);
            pos += 4;
            NEED(n);
            PUSH(decode_py2_str(m, (const char *)data + pos, n));
            pos += n;
            DISPATCH();
        }
        TARGET(OP_STRING)
            CALL(op_string(m));
            DISPATCH();
        TARGET(OP_UNICODE)
            CALL(op_unicode(m));
            DISPATCH();
        TARGET(OP_NEXT_BUFFER)
            CALL(op_next_buffer(m));
            DISPATCH();
        TARGET(OP_READONLY_BUFFER)
            CALL(op_readonly_buffer(m));
            DISPATCH();

        /* Objects. */
        TARGET(OP_GLOBAL)
            CALL(op_global(m));
            DISPATCH();
        TARGET(OP_STACK_GLOBAL)
            CALL(op_stack_global(m));
            DISPATCH();
        TARGET(OP_REDUCE)
            CALL(op_reduce(m));
            DISPATCH();
        TARGET(OP_BUILD)
            CALL(op_build(m));
            DISPATCH();
        TARGET(OP_NEWOBJ)
            CALL(op_newobj(m));
            DISPATCH();
        TARGET(OP_NEWOBJ_EX)
            CALL(op_newobj_ex(m));
            DISPATCH();
        TARGET(OP_INST)
            CALL(op_inst(m));
            DISPATCH();
        TARGET(OP_OBJ)
            CALL(op_obj(m));
            DISPATCH();
        TARGET(OP_EXT1)
            CALL(op_ext(m, 1));
            DISPATCH();
        TARGET(OP_EXT2)
            CALL(op_ext(m, 2));
            DISPATCH();
        TARGET(OP_EXT4)
            CALL(op_ext(m, 4));
            DISPATCH();
        TARGET(OP_PERSID)
            CALL(op_persid(m));
            DISPATCH();
        TARGET(OP_BINPERSID)
            CALL(op_binpersid(m));
            DISPATCH();

        /* Framing. */
        TARGET(OP_PROTO)
            NEED(1);
            if (data[pos] > HIGHEST_PROTOCOL) {
                PyErr_Format(PyExc_ValueError,
                             "unsupported pickle protocol: %d", data[pos]);
                goto error;
            }
            m->proto = data[pos];
            pos += 1;
            DISPATCH();
        TARGET(OP_FRAME) {
            NEED(8);
            uint64_t n = read_u64(data + pos);
            if (n > (uint64_t)PY_SSIZE_T_MAX) {
                PyErr_Format(PyExc_OverflowError,
                             "FRAME length exceeds system's maximum of %zd "
                             "bytes", PY_SSIZE_T_MAX);
                goto error;
            }
            pos += 8;
            /* A frame is a read-ahead hint: make sure it is all there
             * (the last one ends the pickle: nothing after it). */
            NEED_WITH(inbuf_fill_exact, (Py_ssize_t)n);
            DISPATCH();
        }
        TARGET(OP_STOP)
            if (UNLIKELY(AVAILABLE() < 1)) {
                stack_error(m);
                goto error;
            }
            m->pos = pos;
            if (safe_mode) {
                safe_end_load(m, base + pos);
            }
            return m->stack[--m->len];

        TARGET_INVALID
            invalid_opcode(m, op);
            goto error;
        }
    }

#if USE_COMPUTED_GOTO
safe_redo:
    pos--;                      /* back to the opcode: the loop's top */
    goto next_opcode;
#endif
error:
    m->pos = pos;
    if (safe_mode) {
        safe_note_error(m, op_offset);
    }
    add_position_note(m, op, op_offset);
    return NULL;

#undef RELOAD
#undef NEED
#undef PUSH
#undef CALL
#undef AVAILABLE
#undef TAKE_MEMO_OPCODE
}

/* One load: reset the stack, run, give back unread input. */
static PyObject *
machine_load(machine *m)
{
    m->proto = 0;
    m->pos = 0;
    if (inbuf_begin(&m->in) < 0) {
        return NULL;
    }
    PyObject *result = machine_run(m);
    /* Give back what was read past the stopping point (after STOP, or
     * after the failing opcode, as CPython's exact reads would leave the
     * file); a failure to seek does not hide the original error. */
    if (result != NULL) {
        if (inbuf_finish(&m->in, m->pos, 1) < 0) {
            Py_CLEAR(result);
        }
    }
    else {
        PyObject *exc = inbuf_take_exception();
        if (inbuf_finish(&m->in, m->pos, 1) < 0) {
            PyErr_Clear();
        }
        inbuf_restore_exception(exc);
    }
    machine_reset_stack(m);
    intern_cache_clear(m);
    return result;
}

/* ------------------------------------------------------------ options */

typedef struct {
    PyObject *fix_imports;      /* borrowed; NULL means the default */
    PyObject *encoding;
    PyObject *errors;
    PyObject *buffers;
} load_options;

static int
require_str(PyObject *value, const char *what)
{
    if (PyUnicode_Check(value)) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "argument '%s' must be str, not %.200s",
                 what, _PyType_Name(Py_TYPE(value)));
    return -1;
}

/* Apply the options, in the pure implementation's order of checks. */
static int
machine_set_options(machine *m, const load_options *opt)
{
    if (opt->fix_imports == NULL && opt->encoding == NULL
        && opt->errors == NULL && opt->buffers == NULL
        && m->encoding == NULL && m->errors == NULL && m->buffers == NULL) {
        m->encoding = Py_NewRef(m->ust->ascii);
        m->errors = Py_NewRef(m->ust->strict);
        m->fix_imports = 1;
        return 0;
    }
    PyObject *encoding = opt->encoding ? opt->encoding : m->ust->ascii;
    PyObject *errors = opt->errors ? opt->errors : m->ust->strict;
    if (require_str(encoding, "encoding") < 0
        || require_str(errors, "errors") < 0) {
        return -1;
    }
    PyObject *buffers = NULL;
    if (opt->buffers != NULL && opt->buffers != Py_None) {
        buffers = PyObject_GetIter(opt->buffers);
        if (buffers == NULL) {
            return -1;
        }
    }
    int fix_imports = 1;
    if (opt->fix_imports != NULL) {
        fix_imports = PyObject_IsTrue(opt->fix_imports);
        if (fix_imports < 0) {
            Py_XDECREF(buffers);
            return -1;
        }
    }
    Py_XSETREF(m->encoding, Py_NewRef(encoding));
    Py_XSETREF(m->errors, Py_NewRef(errors));
    Py_XSETREF(m->buffers, buffers);
    m->fix_imports = fix_imports;
    return 0;
}

/* The arguments of load() and loads(): one positional argument (named
 * `first`; keyword-able only for load) and the keyword-only options. */
static int
parse_load_args(const char *func, const char *first, int first_by_keyword,
                PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                PyObject **first_out, load_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    *first_out = nargs >= 1 ? args[0] : NULL;
    if (nargs == 1 && kwnames == NULL) {
        return 0;
    }
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes 1 positional argument but %zd were given",
                     func, nargs);
        return -1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        PyObject **slot = NULL;
        if (PyUnicode_CompareWithASCIIString(name, "fix_imports") == 0) {
            slot = &opt->fix_imports;
        }
        else if (PyUnicode_CompareWithASCIIString(name, "encoding") == 0) {
            slot = &opt->encoding;
        }
        else if (PyUnicode_CompareWithASCIIString(name, "errors") == 0) {
            slot = &opt->errors;
        }
        else if (PyUnicode_CompareWithASCIIString(name, "buffers") == 0) {
            slot = &opt->buffers;
        }
        else if (PyUnicode_CompareWithASCIIString(name, first) == 0) {
            if (!first_by_keyword) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got some positional-only arguments "
                             "passed as keyword arguments: '%s'", func,
                             first);
                return -1;
            }
            if (*first_out != NULL) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got multiple values for argument '%s'",
                             func, first);
                return -1;
            }
            *first_out = value;
            continue;
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'",
                         func, name);
            return -1;
        }
        *slot = value;
    }
    if (*first_out == NULL) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: '%s'",
                     func, first);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------- module functions */

static accel_state *
ready_state(PyObject *module)
{
    accel_state *st = accel_get_state(module);
    if (st == NULL || st->unpickler == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "brinery._accel is not initialised");
        return NULL;
    }
    return st;
}

PyObject *
accel_loads(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyObject *data, *result = NULL;
    load_options opt;
    machine m;

    accel_state *st = ready_state(module);
    if (st == NULL) {
        return NULL;
    }
    if (parse_load_args("loads", "data", 0, args, nargs, kwnames, &data,
                        &opt) < 0) {
        return NULL;
    }
    machine_init(&m, st);
    if (machine_set_options(&m, &opt) == 0
        && inbuf_open_memory(&m.in, data) == 0) {
        result = machine_run(&m);
    }
    machine_release(&m);
    return result;
}

PyObject *
accel_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyObject *file, *result = NULL;
    load_options opt;
    machine m;

    accel_state *st = ready_state(module);
    if (st == NULL) {
        return NULL;
    }
    if (parse_load_args("load", "file", 1, args, nargs, kwnames, &file,
                        &opt) < 0) {
        return NULL;
    }
    machine_init(&m, st);
    if (inbuf_open_file(&m.in, file) == 0
        && machine_set_options(&m, &opt) == 0) {
        result = machine_load(&m);
    }
    machine_release(&m);
    return result;
}

/* ------------------------------------------------------ the Unpickler type */

typedef struct {
    PyObject_HEAD
    PyObject *dict;
    PyObject *weakreflist;
    int initialized;            /* __init__ ran */
    int running;                /* a load() is in progress */
    machine m;
} UnpicklerObject;

static PyObject *
unpickler_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    accel_state *st = accel_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    UnpicklerObject *self = (UnpicklerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    machine_init(&self->m, st);
    return (PyObject *)self;
}

static int
unpickler_init(UnpicklerObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"file", "fix_imports", "encoding", "errors",
                             "buffers", NULL};
    PyObject *file;
    load_options opt = {NULL, NULL, NULL, NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OOOO:Unpickler",
                                     kwlist, &file, &opt.fix_imports,
                                     &opt.encoding, &opt.errors,
                                     &opt.buffers)) {
        return -1;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Unpickler.__init__() called during load()");
        return -1;
    }
    machine *m = &self->m;
    self->initialized = 0;
    machine_clear(m);
    if (inbuf_open_file(&m->in, file) < 0
        || machine_set_options(m, &opt) < 0) {
        return -1;
    }
    self->initialized = 1;
    return 0;
}

static int
unpickler_traverse(UnpicklerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->dict);
    return machine_traverse(&self->m, visit, arg);
}

static int
unpickler_clear(UnpicklerObject *self)
{
    Py_CLEAR(self->dict);
    if (!self->running) {
        machine_clear(&self->m);
    }
    return 0;
}

static void
unpickler_dealloc(UnpicklerObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Py_CLEAR(self->dict);
    machine_clear(&self->m);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *unpickler_find_class(UnpicklerObject *self,
                                      PyObject *const *args,
                                      Py_ssize_t nargs);
static PyObject *unpickler_persistent_load(UnpicklerObject *self,
                                           PyObject *pid);

/* self.<name> if a subclass or the instance overrides the method `impl`,
 * else NULL (the built-in behaviour applies). None counts as absent. */
static int
lookup_override(UnpicklerObject *self, PyObject *name, void *impl,
                PyObject **result)
{
    PyObject *meth = PyObject_GetAttr((PyObject *)self, name);
    *result = NULL;
    if (meth == NULL) {
        return -1;
    }
    if (meth == Py_None
        || (PyCFunction_Check(meth)
            && PyCFunction_GET_SELF(meth) == (PyObject *)self
            && (void *)PyCFunction_GET_FUNCTION(meth) == impl)) {
        Py_DECREF(meth);
        return 0;
    }
    *result = meth;
    return 0;
}

PyDoc_STRVAR(unpickler_load_doc,
"load($self, /)\n--\n\n"
"Read one pickle from the file and return the object it holds.\n\n"
"The file is left just after the pickle's STOP opcode, so several\n"
"pickles written one after another can be read with repeated calls.\n"
"The memo persists across calls; raises EOFError at the end of input.");

static PyObject *
unpickler_load(UnpicklerObject *self, PyObject *unused)
{
    machine *m = &self->m;
    if (!self->initialized) {
        PyErr_Format(m->st->UnpicklingError,
                     "Unpickler.__init__() was not called by %s.__init__()",
                     _PyType_Name(Py_TYPE(self)));
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Unpickler.load() called during load()");
        return NULL;
    }
    if (lookup_override(self, m->ust->persistent_load,
                        (void *)unpickler_persistent_load,
                        &m->persistent_load) < 0
        || lookup_override(self, m->ust->find_class,
                           (void *)unpickler_find_class,
                           &m->find_class) < 0) {
        Py_CLEAR(m->persistent_load);
        return NULL;
    }
    self->running = 1;
    PyObject *result = machine_load(m);
    self->running = 0;
    /* The overrides are usually bound methods of self: drop them now so
     * no cycle outlives the load. */
    Py_CLEAR(m->find_class);
    Py_CLEAR(m->persistent_load);
    return result;
}

PyDoc_STRVAR(unpickler_find_class_doc,
"find_class($self, module_name, global_name, /)\n--\n\n"
"Return the object module_name.global_name that a pickle refers to.\n\n"
"Imports the module; global_name may be a dotted path from protocol 4.\n"
"At protocols 0-2 with fix_imports, Python 2 names are mapped to their\n"
"Python 3 counterparts. Raises the audit event pickle.find_class.\n"
"Subclasses override this to control which globals a pickle may load.");

static PyObject *
unpickler_find_class(UnpicklerObject *self, PyObject *const *args,
                     Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "find_class expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    return globals_find_class(self->m.st, args[0], args[1], self->m.proto,
                              self->m.fix_imports);
}

PyDoc_STRVAR(unpickler_persistent_load_doc,
"persistent_load($self, pid, /)\n--\n\n"
"Return the object for the persistent ID pid.\n\n"
"The default raises UnpicklingError: a pickle that refers to persistent\n"
"objects needs a subclass that knows them.");

static PyObject *
unpickler_persistent_load(UnpicklerObject *self, PyObject *pid)
{
    PyErr_SetString(self->m.st->UnpicklingError,
                    BRINERY_PERSISTENT_HOOKS_ARE_METHODS
                    ? BRINERY_NO_PERSISTENT_LOAD_MESSAGE
                    : "unsupported persistent id encountered");
    return NULL;
}

static PyObject *
unpickler_get_memo(UnpicklerObject *self, void *closure)
{
    return memo_to_dict(&self->m.memo);
}

static int
unpickler_set_memo(UnpicklerObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "attribute deletion is not supported");
        return -1;
    }
    return load_memo_assign_dict(&self->m.memo, value);
}

/* The object and the heap storage it owns (the memo's vector, the stack
 * and mark arrays when they outgrew their inline storage, the read-ahead
 * buffer), as _pickle's Unpickler counts its own. */
static PyObject *
unpickler_sizeof(UnpicklerObject *self, PyObject *Py_UNUSED(ignored))
{
    machine *m = &self->m;
    Py_ssize_t size = Py_TYPE(self)->tp_basicsize;
    if (m->memo.vec != m->memo.inline_vec) {
        size += m->memo.capacity * (Py_ssize_t)sizeof(PyObject *);
    }
    if (m->stack != m->stack_inline) {
        size += m->capacity * (Py_ssize_t)sizeof(PyObject *);
    }
    if (m->marks != m->marks_inline) {
        size += m->marks_capacity * (Py_ssize_t)sizeof(Py_ssize_t);
    }
    if (m->in.storage != NULL) {
        size += m->in.capacity;
    }
    return PyLong_FromSsize_t(size);
}

/* Safe mode (brinery.safe's C SafeUnpickler; see unpickler_safe.c). */
static PyObject *
unpickler_safe_setup(UnpicklerObject *self, PyObject *const *args,
                     Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "_safe_setup(session, limits, find_class, "
                        "limit_error)");
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "_safe_setup() during load()");
        return NULL;
    }
    if (safe_setup(&self->m, args[0], args[1], args[2], args[3]) < 0) {
        safe_free(&self->m);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _safe_load(find_class, persistent_load, data): one safe load. The
 * overrides are callables or None; data, if not None, replaces the input
 * (a bytes-like object read in place). */
static PyObject *
unpickler_safe_load(UnpicklerObject *self, PyObject *const *args,
                    Py_ssize_t nargs)
{
    machine *m = &self->m;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "_safe_load(find_class, persistent_load, data)");
        return NULL;
    }
    if (!self->initialized || m->safe == NULL) {
        PyErr_SetString(m->st->UnpicklingError,
                        "the safe Unpickler was not initialised");
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Unpickler.load() called during load()");
        return NULL;
    }
    if (args[2] != Py_None) {
        inbuf_close(&m->in);
        if (inbuf_open_memory(&m->in, args[2]) < 0) {
            return NULL;
        }
    }
    Py_XSETREF(m->find_class, args[0] == Py_None ? NULL : Py_NewRef(args[0]));
    Py_XSETREF(m->persistent_load,
               args[1] == Py_None ? NULL : Py_NewRef(args[1]));
    if (safe_begin_load(m) < 0) {
        return NULL;
    }
    self->running = 1;
    PyObject *result = machine_load(m);
    self->running = 0;
    if (safe_finish_load(m) < 0) {
        Py_CLEAR(result);
    }
    Py_CLEAR(m->find_class);
    Py_CLEAR(m->persistent_load);
    return result;
}

static PyObject *
unpickler_safe_info(UnpicklerObject *self, PyObject *unused)
{
    return safe_info(&self->m);
}

static PyObject *
unpickler_get_proto(UnpicklerObject *self, void *closure)
{
    return PyLong_FromLong(self->m.proto);
}

static PyMethodDef unpickler_methods[] = {
    {"_safe_setup", (PyCFunction)(void (*)(void))unpickler_safe_setup,
     METH_FASTCALL, NULL},
    {"_safe_load", (PyCFunction)(void (*)(void))unpickler_safe_load,
     METH_FASTCALL, NULL},
    {"_safe_info", (PyCFunction)unpickler_safe_info, METH_NOARGS, NULL},
    {"load", (PyCFunction)unpickler_load, METH_NOARGS, unpickler_load_doc},
    {"__sizeof__", (PyCFunction)unpickler_sizeof, METH_NOARGS,
     "__sizeof__($self, /)\n--\n\n"
     "Size of the object in memory, in bytes, with the storage it owns."},
    {"find_class", (PyCFunction)(void (*)(void))unpickler_find_class,
     METH_FASTCALL, unpickler_find_class_doc},
    {"persistent_load", (PyCFunction)unpickler_persistent_load, METH_O,
     unpickler_persistent_load_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef unpickler_getset[] = {
    {"_proto", (getter)unpickler_get_proto, NULL,
     "The protocol of the pickle being read (PROTO's argument).", NULL},
    {"memo", (getter)unpickler_get_memo, (setter)unpickler_set_memo,
     "The memo, as a new dict {index: object}. Assign a dict (for\n"
     "example another Unpickler's memo) to replace it.", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef unpickler_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(UnpicklerObject, dict),
     READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(UnpicklerObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}
};

PyDoc_STRVAR(unpickler_doc,
"Unpickler(file, *, fix_imports=True, encoding='ASCII', errors='strict',\n"
"          buffers=())\n"
"--\n\n"
"Read objects back from a pickle data stream, as pickle.Unpickler.\n\n"
"file needs read() and readline(); readinto() is used when present. A\n"
"seekable file is read ahead and left just after each pickle.\n"
"encoding and errors decode Python 2 str objects ('bytes' keeps them as\n"
"bytes); fix_imports maps Python 2 names; buffers is an iterable of\n"
"out-of-band buffers for protocol 5. Subclasses may override find_class\n"
"and persistent_load.");

static PyType_Slot unpickler_slots[] = {
    {Py_tp_doc, (void *)unpickler_doc},
    {Py_tp_new, unpickler_new},
    {Py_tp_init, unpickler_init},
    {Py_tp_dealloc, unpickler_dealloc},
    {Py_tp_traverse, unpickler_traverse},
    {Py_tp_clear, unpickler_clear},
    {Py_tp_methods, unpickler_methods},
    {Py_tp_getset, unpickler_getset},
    {Py_tp_members, unpickler_members},
    {0, NULL}
};

static PyType_Spec unpickler_spec = {
    .name = "brinery._accel.Unpickler",
    .basicsize = sizeof(UnpicklerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = unpickler_slots,
};

/* -------------------------------------------------------- module state */

static int
intern_names(unpickler_state *ust)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&ust->io.peek, "peek"}, {&ust->io.readinto, "readinto"},
        {&ust->io.read, "read"}, {&ust->io.readline, "readline"},
        {&ust->io.seekable, "seekable"}, {&ust->io.seek, "seek"},
        {&ust->io.tell, "tell"}, {&ust->io.release, "release"},
        {&ust->setstate, "__setstate__"}, {&ust->dict, "__dict__"},
        {&ust->new_, "__new__"}, {&ust->getinitargs, "__getinitargs__"},
        {&ust->extend, "extend"}, {&ust->append, "append"},
        {&ust->add, "add"}, {&ust->items, "items"},
        {&ust->find_class, "find_class"},
        {&ust->persistent_load, "persistent_load"},
        {&ust->add_note, "add_note"}, {&ust->toreadonly, "toreadonly"},
        {&ust->import_, "__import__"}, {&ust->ascii, "ASCII"},
        {&ust->strict, "strict"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

int
accel_unpickler_exec(PyObject *module, accel_state *st)
{
    unpickler_state *ust = PyMem_Calloc(1, sizeof(unpickler_state));
    if (ust == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    st->unpickler = ust;
    ust->global_cache = PyMem_Calloc(GLOBAL_CACHE_SIZE,
                                     sizeof(global_cache_entry));
    if (ust->global_cache == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ust->key_cache = PyMem_Calloc(KEY_CACHE_SIZE, sizeof(key_cache_entry));
    if (ust->key_cache == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (intern_names(ust) < 0) {
        return -1;
    }
    PyObject *builtins = PyImport_ImportModule("builtins");
    if (builtins == NULL) {
        return -1;
    }
    ust->import_func = PyObject_GetAttr(builtins, ust->import_);
    Py_DECREF(builtins);
    if (ust->import_func == NULL) {
        return -1;
    }
    PyObject *codecs = PyImport_ImportModule("_codecs");
    if (codecs == NULL) {
        return -1;
    }
    ust->codecs_encode = PyObject_GetAttrString(codecs, "encode");
    Py_DECREF(codecs);
    if (ust->codecs_encode == NULL) {
        return -1;
    }
    PyObject *type = PyType_FromModuleAndSpec(module, &unpickler_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    st->Unpickler_Type = (PyTypeObject *)type;
    return PyModule_AddObjectRef(module, "Unpickler", type);
}

int
accel_unpickler_traverse(accel_state *st, visitproc visit, void *arg)
{
    unpickler_state *ust = st->unpickler;
    if (ust == NULL) {
        return 0;
    }
    Py_VISIT(ust->import_func);
    Py_VISIT(ust->codecs_encode);
    /* The key cache holds exact strs only: they cannot be in a cycle. */
    return globals_cache_traverse(ust, visit, arg);
}

void
accel_unpickler_clear(accel_state *st)
{
    unpickler_state *ust = st->unpickler;
    if (ust == NULL) {
        return;
    }
    st->unpickler = NULL;
    globals_cache_clear(ust);
    PyMem_Free(ust->global_cache);
    key_cache_clear(ust);
    PyMem_Free(ust->key_cache);
    PyObject **names[] = {
        &ust->io.peek, &ust->io.readinto, &ust->io.read, &ust->io.readline,
        &ust->io.seekable, &ust->io.seek, &ust->io.tell, &ust->io.release,
        &ust->setstate, &ust->dict, &ust->new_, &ust->getinitargs,
        &ust->extend, &ust->append, &ust->add, &ust->items,
        &ust->find_class, &ust->persistent_load, &ust->add_note,
        &ust->toreadonly, &ust->import_, &ust->ascii, &ust->strict,
        &ust->import_func, &ust->codecs_encode,
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Py_CLEAR(*names[i]);
    }
    PyMem_Free(ust);
}

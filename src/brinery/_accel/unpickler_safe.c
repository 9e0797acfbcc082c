/* brinery._accel: safe mode of the C Unpickler.
 *
 * Implements, on the C machine, what brinery.safe's module docstring
 * asks of it ("What the C unpickler must enforce in safe mode"): the same
 * limits, the same memory model (COSTS) and the same Session calls as the
 * pure SafeUnpickler, in the same order, so both accept and refuse the
 * same pickles with the same errors at the same offsets.
 *
 * The memory model's counters (memory, str_bytes) and the input consumed
 * live here as C integers; they are written to the Session before every
 * call into it and read back after, so the Session's own charges add up
 * with ours. A charge that goes over budget is raised by the Session
 * itself (session.charge(0)), so the message is the pure one. The budget
 * is recomputed before every opcode (the pure loop computes the same
 * value, lazily).
 */
#include "unpickler_safe.h"
#include "opcodes.h"

#include <limits.h>

/* Cost of the memory model: brinery.safe.COSTS (read at setup). */
enum {
    C_STACK_SLOT, C_MARK, C_MEMO_SLOT, C_LIST, C_LIST_ITEM, C_TUPLE,
    C_TUPLE_ITEM, C_DICT, C_DICT_ITEM, C_SET, C_SET_ITEM, C_MEMORYVIEW,
    C_COUNT
};
static const char *const cost_names[C_COUNT] = {
    "stack_slot", "mark", "memo_slot", "list", "list_item", "tuple",
    "tuple_item", "dict", "dict_item", "set", "set_item", "memoryview",
};

enum {
    L_MAX_OPCODES, L_MAX_STACK_DEPTH, L_MAX_MARK_DEPTH, L_MAX_MEMO_ENTRIES,
    L_MAX_CONTAINER_LEN, L_MAX_STR_BYTES, L_MAX_INT_DIGITS, L_MAX_INT_BYTES,
    L_MEMORY_PER_INPUT_BYTE, L_MEMORY_ALLOWANCE, L_COUNT
};
static const char *const limit_names[L_COUNT] = {
    "max_opcodes", "max_stack_depth", "max_mark_depth", "max_memo_entries",
    "max_container_len", "max_str_bytes", "max_int_digits", "max_int_bytes",
    "memory_per_input_byte", "memory_allowance",
};

/* Session attributes and methods used, by index. */
enum {
    A_MEMORY, A_STR_BYTES, A_CONSUMED, A_BUDGET, A_GUARDED, A_CHARGE,
    A_COUNT_STR_BYTES, A_CHECK_KEYS, A_ADD_ITEMS, A_REDUCE, A_NEWOBJ,
    A_INSTANTIATE, A_BUILD, A_RESOLVE, A_EXT, A_PERSISTENT, A_BUFFER,
    A_COUNT
};
static const char *const attr_names[A_COUNT] = {
    "memory", "str_bytes", "consumed", "budget", "guarded", "charge",
    "count_str_bytes", "check_keys", "add_items", "reduce", "newobj",
    "instantiate", "build", "resolve", "ext", "persistent", "buffer",
};

struct safe_state {
    PyObject *session;
    PyObject *names[A_COUNT];       /* interned attribute names */
    PyObject *guarded;              /* session.guarded (a dict) */
    PyObject *find_class;           /* the unpickler's find_class (EXT) */
    PyObject *limit_error;          /* brinery.safe._limit */
    PyObject *getsizeof;            /* sys.getsizeof */
    long long limit[L_COUNT];
    long long cost[C_COUNT];

    long long memory;               /* mirrors of the Session's counters */
    long long str_bytes;
    long long consumed;
    long long budget;
    long long consumed_before;      /* input of the previous loads */
    Py_ssize_t memo_len;            /* the dense memo's length */

    /* this load */
    long long ops;
    long long high;                 /* the stack's charged high-water mark */
    int prev_op;                    /* -1 before the first opcode */
    Py_ssize_t prev_offset;
    Py_ssize_t prev_nmarks;
    Py_ssize_t error_offset;
    Py_ssize_t last_stop;           /* input of the last successful load */
};

/* ------------------------------------------------------------ helpers */

static long long
sat_add(long long a, long long b)
{
    return a > LLONG_MAX - b ? LLONG_MAX : a + b;
}

static long long
sat_mul(long long a, long long b)
{
    if (a != 0 && b > LLONG_MAX / a) {
        return LLONG_MAX;
    }
    return a * b;
}

static void
set_consumed(safe_state *s, long long consumed)
{
    s->consumed = consumed;
    s->budget = sat_add(sat_mul(s->limit[L_MEMORY_PER_INPUT_BYTE], consumed),
                        s->limit[L_MEMORY_ALLOWANCE]);
}

static int
set_ll_attr(safe_state *s, int which, long long value)
{
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttr(s->session, s->names[which], v);
    Py_DECREF(v);
    return rc;
}

/* obj.<name> as a long long, saturated at LLONG_MAX. */
static int
get_ll(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) {
        return -1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = overflow > 0 ? LLONG_MAX : x;
    return 0;
}

static int
get_ll_attr(safe_state *s, int which, long long *out)
{
    return get_ll(s->session, s->names[which], out);
}

/* Before a Session call: give it our counters. */
static int
sync_out(safe_state *s)
{
    if (set_ll_attr(s, A_MEMORY, s->memory) < 0
        || set_ll_attr(s, A_STR_BYTES, s->str_bytes) < 0
        || set_ll_attr(s, A_CONSUMED, s->consumed) < 0
        || set_ll_attr(s, A_BUDGET, s->budget) < 0) {
        return -1;
    }
    return 0;
}

/* After a Session call (also when it failed): take its counters back. */
static int
sync_in(safe_state *s)
{
    PyObject *exc = inbuf_take_exception();
    int rc = 0;
    if (get_ll_attr(s, A_MEMORY, &s->memory) < 0
        || get_ll_attr(s, A_STR_BYTES, &s->str_bytes) < 0) {
        rc = -1;
    }
    if (exc != NULL) {
        if (rc < 0) {
            PyErr_Clear();
        }
        inbuf_restore_exception(exc);
        return -1;
    }
    return rc;
}

/* session.<method>(*args), counters synchronised around it. */
static PyObject *
session_call(safe_state *s, int method, PyObject *const *args,
             Py_ssize_t nargs)
{
    if (sync_out(s) < 0) {
        return NULL;
    }
    PyObject *meth = PyObject_GetAttr(s->session, s->names[method]);
    PyObject *res = meth == NULL ? NULL
                    : PyObject_Vectorcall(meth, args, nargs, NULL);
    Py_XDECREF(meth);
    if (sync_in(s) < 0) {
        Py_CLEAR(res);
    }
    return res;
}

/* Raise PickleLimitError for `limit` (brinery.safe._limit's message). */
static int
limit_error(safe_state *s, const char *limit, PyObject *message)
{
    if (message == NULL) {
        return -1;
    }
    PyObject *name = PyUnicode_FromString(limit);
    PyObject *exc = NULL;
    if (name != NULL) {
        PyObject *args[2] = {name, message};
        exc = PyObject_Vectorcall(s->limit_error, args, 2, NULL);
    }
    Py_XDECREF(name);
    Py_DECREF(message);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* A counter went over its limit: session.<method>(0) raises the error
 * the pure loader raises (returns -1), or lets it pass (0). */
static int
over_limit(safe_state *s, int method)
{
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return -1;
    }
    PyObject *res = session_call(s, method, &zero, 1);
    Py_DECREF(zero);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Add n to the memory model; over budget, the Session raises. */
static int
charge(safe_state *s, long long n)
{
    s->memory = sat_add(s->memory, n);
    return s->memory <= s->budget ? 0 : over_limit(s, A_CHARGE);
}

static int
count_str_bytes(safe_state *s, long long n)
{
    s->str_bytes = sat_add(s->str_bytes, n);
    return s->str_bytes <= s->limit[L_MAX_STR_BYTES]
           ? 0 : over_limit(s, A_COUNT_STR_BYTES);
}

/* (unpickler.c's pop_mark is inlined in its loop) */
static Py_ssize_t
pop_mark(machine *m)
{
    if (m->nmarks == 0) {
        PyErr_SetString(m->st->UnpicklingError, "could not find MARK");
        return -1;
    }
    Py_ssize_t mark = m->marks[--m->nmarks];
    m->fence = m->nmarks > 0 ? m->marks[m->nmarks - 1] : 0;
    return mark;
}

static PyObject *
stack_slice(machine *m, Py_ssize_t from, Py_ssize_t step)
{
    Py_ssize_t n = (m->len - from + step - 1) / step;
    PyObject *list = PyList_New(n > 0 ? n : 0);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyList_SET_ITEM(list, i, Py_NewRef(m->stack[from + i * step]));
    }
    return list;
}

/* Keys that session.check_keys would pass over without a trace. */
static int
plain_key(PyObject *key)
{
    if (PyUnicode_CheckExact(key) || PyBytes_CheckExact(key)
        || key == Py_None || PyBool_Check(key)) {
        return 1;
    }
    if (PyLong_CheckExact(key)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
        /* |v| < 2**61 - 1 (sys.hash_info.modulus on 64-bit builds) */
        return !overflow && v > -((1LL << 61) - 1) && v < (1LL << 61) - 1
               && sizeof(Py_hash_t) == 8;
    }
    return 0;
}

/* session.check_keys(stack[from::step], size), skipped when it would do
 * nothing. */
static int
check_keys(machine *m, Py_ssize_t from, Py_ssize_t step, Py_ssize_t size)
{
    int all_plain = 1;
    for (Py_ssize_t i = from; i < m->len; i += step) {
        if (!plain_key(m->stack[i])) {
            all_plain = 0;
            break;
        }
    }
    if (all_plain) {
        return 0;
    }
    PyObject *keys = stack_slice(m, from, step);
    PyObject *n = keys == NULL ? NULL : PyLong_FromSsize_t(size);
    PyObject *res = NULL;
    if (n != NULL) {
        PyObject *args[2] = {keys, n};
        res = session_call(m->safe, A_CHECK_KEYS, args, 2);
    }
    Py_XDECREF(keys);
    Py_XDECREF(n);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* sys.getsizeof(obj): CPython's own function where it is exported
 * (3.11, 3.12), else through sys. */
static long long
getsizeof(safe_state *s, PyObject *obj)
{
    /* As brinery.safe's _getsizeof: a str of at most one character is a
     * shared singleton whose size depends on whether someone cached its
     * UTF-8 form; it costs nothing new. */
    if (PyUnicode_CheckExact(obj) && PyUnicode_GET_LENGTH(obj) <= 1) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030D0000
    size_t size = _PySys_GetSizeOf(obj);
    if (size == (size_t)-1) {
        return -1;
    }
    return (long long)size;
#endif
    PyObject *res = PyObject_CallOneArg(s->getsizeof, obj);
    if (res == NULL) {
        return -1;
    }
    long long n = PyLong_AsLongLong(res);
    Py_DECREF(res);
    return n;
}

/* ------------------------------------------------------------- setup */

int
safe_setup(machine *m, PyObject *session, PyObject *limits,
           PyObject *find_class, PyObject *limit_error_func)
{
    safe_free(m);
    safe_state *s = PyMem_Calloc(1, sizeof(safe_state));
    if (s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    m->safe = s;
    s->session = Py_NewRef(session);
    s->find_class = Py_NewRef(find_class);
    s->limit_error = Py_NewRef(limit_error_func);
    for (int i = 0; i < A_COUNT; i++) {
        s->names[i] = PyUnicode_InternFromString(attr_names[i]);
        if (s->names[i] == NULL) {
            return -1;
        }
    }
    s->guarded = PyObject_GetAttr(session, s->names[A_GUARDED]);
    if (s->guarded == NULL) {
        return -1;
    }
    if (!PyDict_CheckExact(s->guarded)) {
        PyErr_SetString(PyExc_TypeError, "session.guarded must be a dict");
        return -1;
    }
    for (int i = 0; i < L_COUNT; i++) {
        PyObject *name = PyUnicode_FromString(limit_names[i]);
        int rc = name == NULL ? -1 : get_ll(limits, name, &s->limit[i]);
        Py_XDECREF(name);
        if (rc < 0) {
            return -1;
        }
    }
    PyObject *safe_module = PyImport_ImportModule("brinery.safe");
    PyObject *costs = safe_module == NULL ? NULL
                      : PyObject_GetAttrString(safe_module, "COSTS");
    Py_XDECREF(safe_module);
    if (costs == NULL) {
        return -1;
    }
    for (int i = 0; i < C_COUNT; i++) {
        PyObject *v = PyMapping_GetItemString(costs, cost_names[i]);
        s->cost[i] = v == NULL ? -1 : PyLong_AsLongLong(v);
        Py_XDECREF(v);
        if (s->cost[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(costs);
            return -1;
        }
    }
    Py_DECREF(costs);
    PyObject *sys = PyImport_ImportModule("sys");
    s->getsizeof = sys == NULL ? NULL
                   : PyObject_GetAttrString(sys, "getsizeof");
    Py_XDECREF(sys);
    if (s->getsizeof == NULL) {
        return -1;
    }
    if (get_ll_attr(s, A_MEMORY, &s->memory) < 0
        || get_ll_attr(s, A_STR_BYTES, &s->str_bytes) < 0) {
        return -1;
    }
    set_consumed(s, 0);
    return 0;
}

void
safe_free(machine *m)
{
    safe_state *s = m->safe;
    if (s == NULL) {
        return;
    }
    m->safe = NULL;
    Py_XDECREF(s->session);
    Py_XDECREF(s->guarded);
    Py_XDECREF(s->find_class);
    Py_XDECREF(s->limit_error);
    Py_XDECREF(s->getsizeof);
    for (int i = 0; i < A_COUNT; i++) {
        Py_XDECREF(s->names[i]);
    }
    PyMem_Free(s);
}

int
safe_traverse(machine *m, visitproc visit, void *arg)
{
    safe_state *s = m->safe;
    if (s != NULL) {
        Py_VISIT(s->session);
        Py_VISIT(s->guarded);
        Py_VISIT(s->find_class);
        Py_VISIT(s->limit_error);
    }
    return 0;
}

int
safe_begin_load(machine *m)
{
    safe_state *s = m->safe;
    if (sync_in(s) < 0) {
        return -1;
    }
    s->ops = 0;
    s->high = 0;
    s->prev_op = -1;
    s->prev_offset = 0;
    s->prev_nmarks = 0;
    s->error_offset = 0;
    set_consumed(s, s->consumed_before);
    return 0;
}

int
safe_finish_load(machine *m)
{
    PyObject *exc = inbuf_take_exception();
    int rc = sync_out(m->safe);
    if (exc != NULL) {
        if (rc < 0) {
            PyErr_Clear();
        }
        inbuf_restore_exception(exc);
    }
    return rc;
}

void
safe_end_load(machine *m, Py_ssize_t stop_offset)
{
    safe_state *s = m->safe;
    s->consumed_before += stop_offset;
    s->last_stop = stop_offset;
}

PyObject *
safe_info(machine *m)
{
    safe_state *s = m->safe;
    if (s == NULL) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("nLn", s->error_offset, s->ops, s->last_stop);
}

void
safe_note_error(machine *m, Py_ssize_t op_offset)
{
    m->safe->error_offset = op_offset;
}

/* ------------------------------------------------- after each opcode */

static int
is_leaf(int op)
{
    switch (op) {
    case OP_INT: case OP_BININT: case OP_BININT2: case OP_LONG:
    case OP_LONG1: case OP_LONG4: case OP_FLOAT: case OP_BINFLOAT:
    case OP_STRING: case OP_BINSTRING: case OP_SHORT_BINSTRING:
    case OP_UNICODE: case OP_BINUNICODE: case OP_SHORT_BINUNICODE:
    case OP_BINUNICODE8: case OP_BINBYTES: case OP_SHORT_BINBYTES:
    case OP_BINBYTES8: case OP_BYTEARRAY8:
        return 1;
    }
    return 0;
}

/* The object a str/bytes/int/float opcode pushed: its size, counted. */
static int
charge_leaf(machine *m, int op)
{
    safe_state *s = m->safe;
    PyObject *obj = m->stack[m->len - 1];
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(obj, &overflow);
        if (!overflow && v >= -5 && v <= 256) {
            return 0;
        }
        if (op == OP_LONG1 || op == OP_LONG4) {
            int64_t bits = (int64_t)_PyLong_NumBits(obj);
            if (bits == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (bits > sat_mul(8, s->limit[L_MAX_INT_BYTES])) {
                return limit_error(s, "max_int_bytes", PyUnicode_FromFormat(
                    "int of %lld bits", (long long)bits));
            }
        }
    }
    else if (PyUnicode_CheckExact(obj) || PyBytes_CheckExact(obj)
             || PyByteArray_CheckExact(obj)) {
        Py_ssize_t n = PyObject_Length(obj);
        if (n < 0 || count_str_bytes(s, n) < 0) {
            return -1;
        }
    }
    long long size = getsizeof(s, obj);
    if (size < 0) {
        return -1;
    }
    return charge(s, size);
}

int
safe_after(machine *m, Py_ssize_t offset, int *op, Py_ssize_t *op_offset)
{
    safe_state *s = m->safe;
    int prev = s->prev_op;
    if (prev < 0) {
        return 0;
    }
    s->prev_op = -1;
    if (is_leaf(prev) && m->len > 0) {
        /* Its payload was input: it counts for the budget. */
        set_consumed(s, s->consumed_before + offset);
        if (charge_leaf(m, prev) < 0) {
            goto error;
        }
    }
    if (m->nmarks > s->prev_nmarks) {
        if (charge(s, s->cost[C_MARK]) < 0) {
            goto error;
        }
        if (m->nmarks > s->limit[L_MAX_MARK_DEPTH]) {
            limit_error(s, "max_mark_depth", PyUnicode_FromFormat(
                "more than %lld open MARKs", s->limit[L_MAX_MARK_DEPTH]));
            goto error;
        }
    }
    if (m->len > s->high) {
        long long limit = s->limit[L_MAX_STACK_DEPTH];
        if (m->len > limit) {
            limit_error(s, "max_stack_depth", PyUnicode_FromFormat(
                "more than %lld items on the stack", limit));
            goto error;
        }
        long long reserve = ((long long)m->len | 1023) + 1;
        if (reserve > limit) {
            reserve = limit;
        }
        long long grow = reserve - s->high;
        s->high = reserve;
        if (charge(s, sat_mul(s->cost[C_STACK_SLOT], grow)) < 0) {
            goto error;
        }
    }
    return 0;
error:
    *op = prev;
    *op_offset = s->prev_offset;
    return -1;
}

/* ------------------------------------------------ before each opcode */

static int
container_len(machine *m, const char *what, Py_ssize_t n)
{
    if (n > m->safe->limit[L_MAX_CONTAINER_LEN]) {
        return limit_error(m->safe, "max_container_len",
                           PyUnicode_FromFormat("%s of %zd items", what, n));
    }
    return 0;
}

/* Make n bytes at m->pos available (the opcode's argument, not
 * consumed). */
static const unsigned char *
peek(machine *m, Py_ssize_t n)
{
    if (m->in.end - m->pos < n) {
        Py_ssize_t pos = inbuf_fill(&m->in, m->pos, n);
        if (pos < 0) {
            return NULL;
        }
        m->pos = pos;
    }
    return (const unsigned char *)m->in.data + m->pos;
}

/* The text argument line at m->pos, not consumed; refused before parsing
 * when longer than max_int_digits + 3. */
static const char *
numeric_line(machine *m, Py_ssize_t *len)
{
    Py_ssize_t line_end;
    Py_ssize_t start = inbuf_readline(&m->in, m->pos, &line_end);
    if (start < 0) {
        return NULL;
    }
    m->pos = start;
    *len = line_end - start;
    if (*len > sat_add(m->safe->limit[L_MAX_INT_DIGITS], 3)) {
        limit_error(m->safe, "max_int_digits", PyUnicode_FromFormat(
            "numeric text argument of %zd bytes", *len));
        return NULL;
    }
    return m->in.data + start;
}

/* The dense memo grows to index idx + 1: the limit and the charge. */
static int
memo_reserve(machine *m, Py_ssize_t idx)
{
    safe_state *s = m->safe;
    if (idx < s->memo_len) {
        return 0;
    }
    if (idx >= s->limit[L_MAX_MEMO_ENTRIES]) {
        return limit_error(s, "max_memo_entries",
                           PyUnicode_FromFormat("memo index %zd", idx));
    }
    if (charge(s, sat_mul(s->cost[C_MEMO_SLOT],
                          (long long)idx + 1 - s->memo_len)) < 0) {
        return -1;
    }
    s->memo_len = idx + 1;
    return 0;
}

/* BINPUT, LONG_BINPUT, MEMOIZE, done here. */
static int
memo_put(machine *m, Py_ssize_t idx)
{
    if (m->len <= m->fence) {
        return machine_stack_error(m);
    }
    if (memo_reserve(m, idx) < 0) {
        return -1;
    }
    return load_memo_store(&m->memo, idx, m->stack[m->len - 1]);
}

/* PUT: checked here, stored by its handler. */
static int
check_put(machine *m)
{
    Py_ssize_t len, idx;
    PyObject *as_int;
    const char *line = numeric_line(m, &len);
    if (line == NULL) {
        return -1;
    }
    if (len < 2 || m->len <= m->fence) {
        return 0;                   /* the handler raises */
    }
    if (text_parse_memo_index(m->st->UnpicklingError, line, len, &idx,
                              &as_int) < 0) {
        PyErr_Clear();
        return 0;
    }
    if (as_int != NULL) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(as_int, &overflow);
        Py_DECREF(as_int);
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow > 0 || v > PY_SSIZE_T_MAX) {
            /* The pure loader's (and CPython's) error. */
            PyErr_SetString(PyExc_OverflowError,
                            "Python int too large to convert to C ssize_t");
            return -1;
        }
        if (overflow < 0 || v < 0) {
            return 0;               /* the handler raises */
        }
        idx = (Py_ssize_t)v;
    }
    if (idx < 0) {
        return 0;
    }
    return memo_reserve(m, idx);
}

/* APPEND(S), SETITEM(S), ADDITEMS: the items are stack[from:len] (already
 * above the target's frame), the target `target`. The pure _add_items. */
static int
add_items(machine *m, PyObject *target, const char *opname, int kind,
          Py_ssize_t from)
{
    safe_state *s = m->safe;
    Py_ssize_t count = m->len - from;
    int fast = kind == 'a' ? PyList_CheckExact(target)
               : kind == 's' ? PyDict_CheckExact(target)
               : PySet_CheckExact(target);
    if (fast) {
        PyObject *id = PyLong_FromVoidPtr(target);
        if (id == NULL) {
            return -1;
        }
        int guarded = PyDict_Contains(s->guarded, id);
        Py_DECREF(id);
        if (guarded < 0) {
            return -1;
        }
        fast = !guarded;
    }
    if (!fast) {
        PyObject *items = stack_slice(m, from, 1);
        PyObject *name = items == NULL ? NULL
                         : PyUnicode_FromString(opname);
        PyObject *res = NULL;
        if (name != NULL) {
            PyObject *args[3] = {target, name, items};
            res = session_call(s, A_ADD_ITEMS, args, 3);
        }
        Py_XDECREF(items);
        Py_XDECREF(name);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
        return 0;
    }
    Py_ssize_t n = kind == 's' ? count / 2 : count;
    Py_ssize_t have = PyObject_Length(target);
    if (have < 0) {
        return -1;
    }
    if (have + n > s->limit[L_MAX_CONTAINER_LEN]) {
        return limit_error(s, "max_container_len", PyUnicode_FromFormat(
            "container of %zd items", have + n));
    }
    if (kind == 'a') {
        if (charge(s, sat_mul(s->cost[C_LIST_ITEM], n)) < 0) {
            return -1;
        }
        for (Py_ssize_t i = from; i < m->len; i++) {
            if (PyList_Append(target, m->stack[i]) < 0) {
                return -1;
            }
        }
    }
    else if (kind == 's') {
        if (check_keys(m, from, 2, have + n) < 0
            || charge(s, sat_mul(s->cost[C_DICT_ITEM], n)) < 0) {
            return -1;
        }
        for (Py_ssize_t i = from; i + 1 < m->len; i += 2) {
            if (PyDict_SetItem(target, m->stack[i], m->stack[i + 1]) < 0) {
                return -1;
            }
        }
    }
    else {
        if (check_keys(m, from, 1, have + n) < 0
            || charge(s, sat_mul(s->cost[C_SET_ITEM], n)) < 0) {
            return -1;
        }
        for (Py_ssize_t i = from; i < m->len; i++) {
            if (PySet_Add(target, m->stack[i]) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* APPEND, SETITEM: the pure handlers' order of checks. */
static int
op_item(machine *m, const char *opname, int kind, Py_ssize_t nitems)
{
    if (m->len - m->fence < nitems + 1) {
        return machine_stack_error(m);
    }
    Py_ssize_t from = m->len - nitems;
    int rc = add_items(m, m->stack[from - 1], opname, kind, from);
    stack_drop_to(m, from);
    return rc;
}

/* APPENDS, SETITEMS, ADDITEMS. */
static int
op_items(machine *m, const char *opname, int kind)
{
    Py_ssize_t mark = pop_mark(m);
    if (mark < 0) {
        return -1;
    }
    int rc = 0;
    if (mark <= m->fence) {
        rc = machine_stack_error(m);
    }
    else if (m->len > mark) {
        if (kind == 's' && (m->len - mark) % 2) {
            PyErr_SetString(m->st->UnpicklingError,
                            "odd number of items for SETITEMS");
            rc = -1;
        }
        else {
            rc = add_items(m, m->stack[mark - 1], opname, kind, mark);
        }
    }
    stack_drop_to(m, mark);
    return rc;
}

int
safe_before(machine *m, int op, Py_ssize_t op_offset)
{
    safe_state *s = m->safe;
    s->prev_op = op;
    s->prev_offset = op_offset;
    s->prev_nmarks = m->nmarks;
    if (++s->ops > s->limit[L_MAX_OPCODES]) {
        return limit_error(s, "max_opcodes", PyUnicode_FromFormat(
            "more than %lld opcodes", s->limit[L_MAX_OPCODES]));
    }
    set_consumed(s, s->consumed_before + op_offset);
    Py_ssize_t n = m->len - m->fence;
    const unsigned char *p;
    Py_ssize_t len;
    switch (op) {
    case OP_EMPTY_LIST:
        return charge(s, s->cost[C_LIST]);
    case OP_EMPTY_DICT:
        return charge(s, s->cost[C_DICT]);
    case OP_EMPTY_SET:
        return charge(s, s->cost[C_SET]);
    case OP_LIST:
        if (container_len(m, "list", n) < 0) {
            return -1;
        }
        return charge(s, sat_add(s->cost[C_LIST],
                                 sat_mul(s->cost[C_LIST_ITEM], n)));
    case OP_TUPLE:
        if (container_len(m, "tuple", n) < 0) {
            return -1;
        }
        return charge(s, sat_add(s->cost[C_TUPLE],
                                 sat_mul(s->cost[C_TUPLE_ITEM], n)));
    case OP_TUPLE1:
        return charge(s, s->cost[C_TUPLE] + s->cost[C_TUPLE_ITEM]);
    case OP_TUPLE2:
        return charge(s, s->cost[C_TUPLE] + 2 * s->cost[C_TUPLE_ITEM]);
    case OP_TUPLE3:
        return charge(s, s->cost[C_TUPLE] + 3 * s->cost[C_TUPLE_ITEM]);
    case OP_DICT:
        if (container_len(m, "dict", n) < 0
            || (n % 2 == 0 && check_keys(m, m->fence, 2, n / 2) < 0)) {
            return -1;
        }
        return charge(s, sat_add(s->cost[C_DICT],
                                 sat_mul(s->cost[C_DICT_ITEM], n / 2)));
    case OP_FROZENSET:
        if (container_len(m, "frozenset", n) < 0
            || check_keys(m, m->fence, 1, n) < 0) {
            return -1;
        }
        return charge(s, sat_add(s->cost[C_SET],
                                 sat_mul(s->cost[C_SET_ITEM], n)));
    case OP_READONLY_BUFFER:
        return charge(s, s->cost[C_MEMORYVIEW]);
    case OP_INT: case OP_LONG: case OP_FLOAT: case OP_GET:
        return numeric_line(m, &len) == NULL ? -1 : 0;
    case OP_PUT:
        return check_put(m);
    case OP_BINPUT:
        if ((p = peek(m, 1)) == NULL || memo_put(m, p[0]) < 0) {
            return -1;
        }
        m->pos += 1;
        return 1;
    case OP_LONG_BINPUT:
        if ((p = peek(m, 4)) == NULL) {
            return -1;
        }
        if (memo_put(m, (Py_ssize_t)((uint32_t)p[0] | (uint32_t)p[1] << 8
                                     | (uint32_t)p[2] << 16
                                     | (uint32_t)p[3] << 24)) < 0) {
            return -1;
        }
        m->pos += 4;
        return 1;
    case OP_MEMOIZE:
        return memo_put(m, s->memo_len) < 0 ? -1 : 1;
    case OP_APPEND:
        return op_item(m, "APPEND", 'a', 1) < 0 ? -1 : 1;
    case OP_SETITEM:
        return op_item(m, "SETITEM", 's', 2) < 0 ? -1 : 1;
    case OP_APPENDS:
        return op_items(m, "APPENDS", 'a') < 0 ? -1 : 1;
    case OP_SETITEMS:
        return op_items(m, "SETITEMS", 's') < 0 ? -1 : 1;
    case OP_ADDITEMS:
        return op_items(m, "ADDITEMS", 'd') < 0 ? -1 : 1;
    }
    return 0;
}

/* ------------------------------------------------------- calling out */

static PyObject *
call2(machine *m, int method, PyObject *a, PyObject *b)
{
    PyObject *args[2] = {a, b};
    return session_call(m->safe, method, args, 2);
}

PyObject *
safe_find_class(machine *m, PyObject *module_name, PyObject *name)
{
    safe_state *s = m->safe;
    if (m->find_class != NULL) {
        /* A subclass's find_class: its super() call reaches the
         * Session, which must see our counters. */
        if (sync_out(s) < 0) {
            return NULL;
        }
        PyObject *args[2] = {module_name, name};
        PyObject *res = PyObject_Vectorcall(m->find_class, args, 2, NULL);
        if (sync_in(s) < 0) {
            Py_CLEAR(res);
        }
        return res;
    }
    PyObject *proto = PyLong_FromLong(m->proto);
    if (proto == NULL) {
        return NULL;
    }
    PyObject *args[4] = {module_name, name, proto,
                         m->fix_imports ? Py_True : Py_False};
    PyObject *res = session_call(s, A_RESOLVE, args, 4);
    Py_DECREF(proto);
    return res;
}

PyObject *
safe_ext(machine *m, long code)
{
    safe_state *s = m->safe;
    PyObject *c = PyLong_FromLong(code);
    PyObject *proto = PyLong_FromLong(m->proto);
    PyObject *res = NULL;
    if (c != NULL && proto != NULL) {
        PyObject *find = m->find_class != NULL ? m->find_class
                                               : s->find_class;
        PyObject *args[4] = {c, proto, m->fix_imports ? Py_True : Py_False,
                             find};
        res = session_call(s, A_EXT, args, 4);
    }
    Py_XDECREF(c);
    Py_XDECREF(proto);
    return res;
}

PyObject *
safe_reduce(machine *m, PyObject *func, PyObject *args)
{
    return call2(m, A_REDUCE, func, args);
}

PyObject *
safe_newobj(machine *m, PyObject *cls, PyObject *args, PyObject *kwargs)
{
    if (PyType_Check(cls)
        && PyType_HasFeature((PyTypeObject *)cls,
                             Py_TPFLAGS_DISALLOW_INSTANTIATION)) {
        /* The pure loader's check (the C handler leaves it to __new__). */
        PyErr_Format(m->st->UnpicklingError,
                     "%s class argument '%.200s' doesn't have __new__",
                     kwargs == NULL ? "NEWOBJ" : "NEWOBJ_EX",
                     _PyType_Name(Py_TYPE(cls)));
        return NULL;
    }
    PyObject *kw = kwargs != NULL ? Py_NewRef(kwargs) : PyDict_New();
    if (kw == NULL) {
        return NULL;
    }
    PyObject *argv[3] = {cls, args, kw};
    PyObject *res = session_call(m->safe, A_NEWOBJ, argv, 3);
    Py_DECREF(kw);
    return res;
}

PyObject *
safe_instantiate(machine *m, PyObject *cls, PyObject *args,
                 const char *opname)
{
    PyObject *name = PyUnicode_FromString(opname);
    if (name == NULL) {
        return NULL;
    }
    PyObject *argv[3] = {cls, args, name};
    PyObject *res = session_call(m->safe, A_INSTANTIATE, argv, 3);
    Py_DECREF(name);
    return res;
}

int
safe_build(machine *m, PyObject *inst, PyObject *state)
{
    PyObject *res = call2(m, A_BUILD, inst, state);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

PyObject *
safe_persistent(machine *m, PyObject *pid)
{
    return session_call(m->safe, A_PERSISTENT, &pid, 1);
}

int
safe_buffer(machine *m)
{
    PyObject *top = m->stack[m->len - 1];
    PyObject *res = session_call(m->safe, A_BUFFER, &top, 1);
    if (res == NULL) {
        return -1;
    }
    Py_SETREF(m->stack[m->len - 1], res);
    return 0;
}

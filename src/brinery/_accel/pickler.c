/* brinery._accel: the Pickler type and the module functions dump/dumps.
 *
 * A Pickler object embeds a pickler_core (pickler.h) and keeps what lives
 * between dumps: the file's write method, the protocol, the memo. The
 * hooks a subclass or an instance may define (persistent_id,
 * reducer_override, dispatch_table) are read at the start of each dump;
 * persistent_id is called only when it is overridden. dumps() and dump()
 * use a pickler_core on the C stack: no object is allocated per call
 * besides the result.
 */
#include "pickler.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *dict;              /* instance attributes */
    int initialized;             /* __init__ ran */
    int busy;                    /* a dump is running */
    long fast;                   /* the `fast` attribute as set */
    long bin;                    /* the `bin` attribute as set */
    pickler_core core;
} PicklerObject;

static PyObject *Pickler_persistent_id(PyObject *self, PyObject *obj);

/* Called from Python-level methods, when the module is alive. */
static void
use_spares(PicklerObject *self, int on)
{
    pickler_cache *cache = self->core.st->pickler;
    self->core.memo.spares = on && cache != NULL ? &cache->spares : NULL;
}

/* ------------------------------------------------------------ arguments */

/* Set up `p` from the common arguments, in the pure pickler's order of
 * checks: protocol, buffer_callback, file. */
static int
core_configure(pickler_core *p, PyObject *file, PyObject *protocol,
               int fix_imports, PyObject *buffer_callback)
{
    if (core_set_protocol(p, protocol) < 0) {
        return -1;
    }
    if (buffer_callback == Py_None) {
        buffer_callback = NULL;
    }
    if (buffer_callback != NULL && p->proto < 5) {
        PyErr_SetString(PyExc_ValueError,
                        "buffer_callback needs protocol >= 5");
        return -1;
    }
    if (file != NULL) {
        PyObject *write;
        if (lookup_attr(file, p->cache->s_write, &write) < 0) {
            return -1;
        }
        if (write == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "file must have a 'write' attribute");
            return -1;
        }
        Py_XSETREF(p->write, write);
    }
    Py_XINCREF(buffer_callback);
    Py_XSETREF(p->buffer_callback, buffer_callback);
    p->fix_imports = fix_imports && p->proto < 3;
    return 0;
}

/* A tiny vectorcall argument parser for dump() and dumps(): `names` are
 * the parameter names in order, the first `npos` may be positional, the
 * first `nrequired` are required. */
static int
parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, const char *const *names, int nparams,
           int npos, int nrequired, PyObject **out)
{
    for (int i = 0; i < nparams; i++) {
        out[i] = NULL;
    }
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %d positional arguments (%zd given)",
                     fname, npos, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < nparams; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                found = i;
                break;
            }
        }
        if (found < 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'",
                         fname, key);
            return -1;
        }
        if (out[found] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "argument for %s() given by name ('%s') and "
                         "position (%d)", fname, names[found], found + 1);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    for (int i = 0; i < nrequired; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %d)",
                         fname, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

static accel_state *
module_state_for_pickling(PyObject *module)
{
    accel_state *st = accel_get_state(module);
    if (st == NULL || st->pickler == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "brinery._accel is being torn down");
        return NULL;
    }
    return st;
}

/* ------------------------------------------------------------ dumps/dump */

static PyObject *
dump_impl(PyObject *module, PyObject *obj, PyObject *file,
          PyObject *protocol, PyObject *fix_imports_obj,
          PyObject *buffer_callback)
{
    accel_state *st = module_state_for_pickling(module);
    if (st == NULL) {
        return NULL;
    }
    int fix_imports = 1;
    if (fix_imports_obj != NULL) {
        fix_imports = PyObject_IsTrue(fix_imports_obj);
        if (fix_imports < 0) {
            return NULL;
        }
    }
    pickler_core core;
    core_init(&core, st);
    /* no hooks, and the memo dies with this call */
    core.may_use_phantoms = 1;
    PyObject *result = NULL;
    if (core_configure(&core, file, protocol, fix_imports,
                       buffer_callback) == 0
        && core_dump(&core, obj) == 0) {
        result = file != NULL ? Py_NewRef(Py_None) : outbuf_finish(&core.out);
    }
    /* nothing else can reach this memo: release it without a reset */
    memo_release(&core.memo);
    core_free(&core);
    return result;
}

static const char *const DUMPS_PARAMS[] = {
    "obj", "protocol", "fix_imports", "buffer_callback"};
static const char *const DUMP_PARAMS[] = {
    "obj", "file", "protocol", "fix_imports", "buffer_callback"};

PyObject *
accel_dumps(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyObject *a[4];
    if (kwnames == NULL && nargs >= 1 && nargs <= 2) {
        /* the common call: dumps(obj) or dumps(obj, protocol) */
        return dump_impl(module, args[0], NULL, nargs == 2 ? args[1] : NULL,
                         NULL, NULL);
    }
    if (parse_args("dumps", args, nargs, kwnames, DUMPS_PARAMS, 4, 2, 1,
                   a) < 0) {
        return NULL;
    }
    return dump_impl(module, a[0], NULL, a[1], a[2], a[3]);
}

PyObject *
accel_dump(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyObject *a[5];
    if (parse_args("dump", args, nargs, kwnames, DUMP_PARAMS, 5, 3, 2,
                   a) < 0) {
        return NULL;
    }
    return dump_impl(module, a[0], a[1], a[2], a[3], a[4]);
}

/* ------------------------------------------------------------ the type */

static PyObject *
Pickler_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    accel_state *st = accel_state_of_type(type);
    if (st == NULL) {
        return NULL;
    }
    if (st->pickler == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "brinery._accel is being torn down");
        return NULL;
    }
    PicklerObject *self = (PicklerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    core_init(&self->core, st);
    /* A Pickler's memo may outlive the module state (in a collected
     * cycle): it uses the spare tables only while it runs (see
     * use_spares). */
    self->core.memo.spares = NULL;
    self->bin = self->core.bin;
    return (PyObject *)self;
}

static int
Pickler_init(PicklerObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"file", "protocol", "fix_imports",
                             "buffer_callback", NULL};
    PyObject *file, *protocol = Py_None, *buffer_callback = Py_None;
    int fix_imports = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OpO:Pickler", kwlist,
                                     &file, &protocol, &fix_imports,
                                     &buffer_callback)) {
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot reinitialize a Pickler while it is dumping");
        return -1;
    }
    pickler_core *p = &self->core;
    if (core_configure(p, file, protocol, fix_imports, buffer_callback) < 0) {
        return -1;
    }
    use_spares(self, 1);
    memo_clear(&p->memo);
    use_spares(self, 0);
    p->fast = 0;
    self->fast = 0;
    self->bin = p->bin;
    self->initialized = 1;
    return 0;
}

static int
Pickler_traverse(PicklerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->dict);
    return core_traverse(&self->core, visit, arg);
}

static int
Pickler_clear(PicklerObject *self)
{
    Py_CLEAR(self->dict);
    if (!self->busy) {
        core_end_dump(&self->core);
    }
    memo_clear(&self->core.memo);
    Py_CLEAR(self->core.write);
    Py_CLEAR(self->core.buffer_callback);
    return 0;
}

static void
Pickler_dealloc(PicklerObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->dict);
    core_free(&self->core);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* The hooks for this dump: persistent_id only when overridden;
 * reducer_override when defined (None too: it is called and fails, as in
 * CPython's C pickler); dispatch_table when defined and not None. */
static int
read_hooks(PicklerObject *self)
{
    pickler_core *p = &self->core;
    pickler_cache *c = p->cache;
    PyObject *me = (PyObject *)self;
    if (Py_TYPE(self) == p->st->Pickler_Type
        && (self->dict == NULL || PyDict_GET_SIZE(self->dict) == 0)) {
        return 0;
    }
    PyObject *hook;
    if (lookup_attr(me, c->s_persistent_id, &hook) < 0) {
        return -1;
    }
    if (hook != NULL
        && (hook == Py_None
            || (PyCFunction_Check(hook) && PyCFunction_GET_SELF(hook) == me
                && PyCFunction_GET_FUNCTION(hook)
                   == (PyCFunction)Pickler_persistent_id))) {
        Py_CLEAR(hook);
    }
    p->pers_func = hook;
    if (lookup_attr(me, c->s_reducer_override, &hook) < 0) {
        return -1;
    }
    p->reducer_override = hook;
    if (lookup_attr(me, c->s_dispatch_table, &hook) < 0) {
        return -1;
    }
    if (hook == Py_None) {
        Py_CLEAR(hook);
    }
    p->dispatch_table = hook;
    core_update_fast_limit(p);
    return 0;
}

static PyObject *
Pickler_dump(PicklerObject *self, PyObject *obj)
{
    if (!self->initialized) {
        PyErr_Format(self->core.st->PicklingError,
                     "Pickler.__init__() was not called by %s.__init__()",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Pickler.dump() called while the same Pickler is "
                        "dumping");
        return NULL;
    }
    if (self->core.st->pickler == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "brinery._accel is being torn down");
        return NULL;
    }
    self->busy = 1;
    use_spares(self, 1);
    int r = read_hooks(self);
    if (r == 0) {
        r = core_dump(&self->core, obj);
    }
    core_end_dump(&self->core);
    self->core.out.len = 0;
    if (self->core.out.cap > 16 * FRAME_SIZE_TARGET) {
        outbuf_free(&self->core.out);  /* do not hold on to a large buffer */
    }
    use_spares(self, 0);
    self->busy = 0;
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Pickler_clear_memo(PicklerObject *self, PyObject *Py_UNUSED(ignored))
{
    int busy = self->busy;
    use_spares(self, 1);
    memo_clear(&self->core.memo);
    use_spares(self, busy);
    Py_RETURN_NONE;
}

static PyObject *
Pickler_persistent_id(PyObject *self, PyObject *obj)
{
    Py_RETURN_NONE;
}

static PyObject *
Pickler_sizeof(PicklerObject *self, PyObject *Py_UNUSED(ignored))
{
    pickler_core *p = &self->core;
    Py_ssize_t size = Py_TYPE(self)->tp_basicsize;
    if (p->memo.mask != 0) {
        size += (Py_ssize_t)((p->memo.mask + 1) * sizeof(memo_entry));
    }
    if (p->out.storage != NULL) {
        size += p->out.cap;
    }
    return PyLong_FromSsize_t(size);
}

/* memo: {id(obj): (index, obj)}, a copy, as the pure pickler's memo looks;
 * it can be set from such a dict (or anything whose copy() gives one). */
static PyObject *
Pickler_get_memo(PicklerObject *self, void *closure)
{
    size_t n;
    memo_entry *table = memo_slots(&self->core.memo, &n);
    PyObject *result = PyDict_New();
    if (result == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        memo_entry *e = &table[i];
        if (e->key == NULL) {
            continue;
        }
        PyObject *key = PyLong_FromVoidPtr(e->key);
        PyObject *value = Py_BuildValue("(nO)", e->value, e->key);
        if (key == NULL || value == NULL
            || PyDict_SetItem(result, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return result;
}

static int
Pickler_set_memo(PicklerObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "attribute deletion is not supported");
        return -1;
    }
    PyObject *dict;
    if (PyDict_Check(value)) {
        dict = Py_NewRef(value);
    }
    else {
        PyObject *copy;
        if (lookup_attr(value, self->core.cache->s_copy, &copy) < 0) {
            return -1;
        }
        dict = copy == NULL ? NULL : PyObject_CallNoArgs(copy);
        Py_XDECREF(copy);
        if (dict != NULL && !PyDict_Check(dict)) {
            Py_CLEAR(dict);
        }
        if (dict == NULL) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError,
                             "'memo' attribute must be a PicklerMemoProxy "
                             "object or dict, not %.200s",
                             Py_TYPE(value)->tp_name);
            }
            return -1;
        }
    }
    Py_ssize_t pos = 0;
    PyObject *key, *item;
    while (PyDict_Next(dict, &pos, &key, &item)) {
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2
            || !PyLong_Check(PyTuple_GET_ITEM(item, 0))) {
            PyErr_SetString(PyExc_TypeError,
                            "'memo' values must be 2-item tuples");
            Py_DECREF(dict);
            return -1;
        }
    }
    memo_clear(&self->core.memo);
    pos = 0;
    while (PyDict_Next(dict, &pos, &key, &item)) {
        Py_ssize_t idx = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        if ((idx == -1 && PyErr_Occurred())
            || memo_set(&self->core.memo, PyTuple_GET_ITEM(item, 1),
                        idx) < 0) {
            Py_DECREF(dict);
            return -1;
        }
    }
    Py_DECREF(dict);
    return 0;
}

/* The int attributes `fast` and `bin` (closure: which one). */
static PyObject *
Pickler_get_flag(PicklerObject *self, void *closure)
{
    return PyLong_FromLong(closure == NULL ? self->fast : self->bin);
}

static int
Pickler_set_flag(PicklerObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "attribute deletion is not supported");
        return -1;
    }
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (closure == NULL) {
        self->fast = v;
        self->core.fast = v != 0;
    }
    else {
        self->bin = v;
        self->core.bin = v != 0;
        core_update_fast_limit(&self->core);
    }
    return 0;
}

static PyMethodDef Pickler_methods[] = {
    {"dump", (PyCFunction)Pickler_dump, METH_O,
     "dump($self, obj, /)\n--\n\n"
     "Write a pickle of obj to the file given to the constructor."},
    {"clear_memo", (PyCFunction)Pickler_clear_memo, METH_NOARGS,
     "clear_memo($self, /)\n--\n\n"
     "Forget the objects pickled so far (and their memo indices)."},
    {"persistent_id", (PyCFunction)Pickler_persistent_id, METH_O,
     "persistent_id($self, obj, /)\n--\n\n"
     "Return a persistent ID for obj, or None to pickle it as usual.\n\n"
     "Returns None; subclasses override it (the pickler calls it only\n"
     "when it is overridden)."},
    {"__sizeof__", (PyCFunction)Pickler_sizeof, METH_NOARGS,
     "__sizeof__($self, /)\n--\n\n"
     "Size of the pickler in memory, in bytes."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef Pickler_getset[] = {
    {"memo", (getter)Pickler_get_memo, (setter)Pickler_set_memo,
     "The memo: {id(obj): (index, obj)} (a copy); assign to replace it.",
     NULL},
    {"fast", (getter)Pickler_get_flag, (setter)Pickler_set_flag,
     "Fast mode: no memo (refuses cyclic objects). Deprecated in pickle.",
     NULL},
    {"bin", (getter)Pickler_get_flag, (setter)Pickler_set_flag,
     "Whether binary opcodes are written (protocol 1 and higher).",
     (void *)1},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef Pickler_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(PicklerObject, dict), READONLY},
    {NULL, 0, 0, 0, NULL}
};

PyDoc_STRVAR(Pickler_doc,
"Pickler(file, protocol=None, fix_imports=True, buffer_callback=None)\n"
"--\n\n"
"Write pickles of objects to a binary file (anything with a write()\n"
"method).\n\n"
"The same interface as pickle.Pickler: dump(), clear_memo(), memo, fast,\n"
"and the hooks a subclass or an instance may define: persistent_id(),\n"
"reducer_override(), dispatch_table. The output is byte for byte\n"
"CPython's; nesting depth is not limited by the recursion limit.");

static PyType_Slot Pickler_slots[] = {
    {Py_tp_doc, (void *)Pickler_doc},
    {Py_tp_new, Pickler_new},
    {Py_tp_init, Pickler_init},
    {Py_tp_dealloc, Pickler_dealloc},
    {Py_tp_traverse, Pickler_traverse},
    {Py_tp_clear, Pickler_clear},
    {Py_tp_methods, Pickler_methods},
    {Py_tp_getset, Pickler_getset},
    {Py_tp_members, Pickler_members},
    {0, NULL}
};

static PyType_Spec Pickler_spec = {
    .name = "brinery._accel.Pickler",
    .basicsize = sizeof(PicklerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Pickler_slots,
};

int
accel_pickler_exec(PyObject *module, accel_state *st)
{
    if (pickler_cache_create(st) < 0) {
        return -1;
    }
    PyObject *type = PyType_FromModuleAndSpec(module, &Pickler_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    st->Pickler_Type = (PyTypeObject *)type;
    return PyModule_AddType(module, st->Pickler_Type);
}

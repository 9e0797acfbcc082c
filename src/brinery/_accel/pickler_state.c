/* brinery._accel: what the pickler keeps in the module state.
 *
 * - interned attribute names and a few objects it compares against;
 * - the global cache: for classes and functions pickled by name, how they
 *   were found (module name, qualified name, the GLOBAL line), so that the
 *   next time costs a check instead of an import and a name resolution;
 * - the type cache: whether a class's instances reduce exactly like
 *   object's default __reduce_ex__, so that they can be pickled without
 *   building the reduce value.
 *
 * The type cache is a table of two-entry buckets, the global cache of
 * four-entry ones (an object may sit in any entry of its bucket; a new one
 * replaces its own stale entry or a dead one, else the last). Their entries never keep
 * the cached class or function alive (a weak reference, or only the
 * address plus the type's version tag, which changes whenever the class
 * is modified and is never reused by another class). All of this runs
 * with the GIL held, and nothing is read from an entry after a call that
 * could run Python code without holding references first.
 */
#include "pickler.h"

#include <stdint.h>

/* ============================================================ helpers */

static inline size_t
address_slot(const void *p, size_t size)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) & (size - 1);
}

/* The type's version tag if it is valid (it changes whenever the type or
 * one of its bases is modified), else 0. */
static inline unsigned int
type_version(PyTypeObject *type)
{
#if PY_VERSION_HEX < 0x030C0000
    if (!(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        return 0;
    }
#endif
    return type->tp_version_tag;
}

/* Give the type a version tag if it has none yet (a lookup through the
 * type attribute cache assigns one). 0 if it cannot have one. */
static unsigned int
assign_version(pickler_cache *c, PyTypeObject *type)
{
    unsigned int version = type_version(type);
    if (version == 0) {
#if PY_VERSION_HEX >= 0x030C0000
        if (!PyUnstable_Type_AssignVersionTag(type)) {
            return 0;
        }
#else
        (void)_PyType_Lookup(type, c->s_reduce_ex);
#endif
        version = type_version(type);
    }
    return version;
}

static inline int
weakref_is(PyObject *ref, PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *target;
    if (PyWeakref_GetRef(ref, &target) <= 0) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(target);
    return target == obj;
#else
    return PyWeakref_GetObject(ref) == obj;
#endif
}

/* ============================================================ globals */

void
global_entry_release(global_entry *e)
{
    Py_CLEAR(e->ref);
    e->obj = NULL;
    Py_CLEAR(e->module_name);
    Py_CLEAR(e->qualname);
    Py_CLEAR(e->path);
    for (int i = 0; i < 3; i++) {
        Py_CLEAR(e->line[i]);
    }
}

/* Is a builtin function's __qualname__ fixed for its lifetime? It is its
 * C name when it is bound to a module or nothing (its __self__ cannot be
 * rebound); bound to a class, it would follow the class's __qualname__.
 * Its __module__ (writable) is checked on every use. */
static inline int
builtin_names_fixed(PyObject *obj)
{
    PyObject *self = ((PyCFunctionObject *)obj)->m_self;
    return self == NULL || PyModule_Check(self);
}

/* Is entry e still right for obj: same object, same names? */
static int
global_entry_valid(global_entry *e, PyObject *obj)
{
    if (e->ref == NULL || e->obj != obj || !weakref_is(e->ref, obj)) {
        return 0;
    }
    if (PyFunction_Check(obj)) {
        PyFunctionObject *func = (PyFunctionObject *)obj;
        return func->func_qualname == e->qualname
               && func->func_module == e->module_name;
    }
    if (PyCFunction_Check(obj)) {
        return builtin_names_fixed(obj)
               && ((PyCFunctionObject *)obj)->m_module == e->module_name;
    }
    if (PyType_Check(obj)) {
        /* Setting __qualname__ does not change the type's version on
         * 3.13 (it does not touch the type's dict): compare the name. */
        if (PyType_HasFeature((PyTypeObject *)obj, Py_TPFLAGS_HEAPTYPE)
            && ((PyHeapTypeObject *)obj)->ht_qualname != e->qualname) {
            return 0;
        }
        unsigned int version = type_version((PyTypeObject *)obj);
        unsigned int meta_version = type_version(Py_TYPE(obj));
        return version != 0 && version == e->version
               && meta_version != 0 && meta_version == e->meta_version;
    }
    return 0;
}

/* Globals sit in buckets of this many entries: a pickle of hundreds of
 * distinct globals would otherwise see some evict each other on every
 * dump (three addresses in a bucket of two). */
#define GLOBAL_WAYS 4

static inline global_entry *
global_bucket(pickler_cache *c, PyObject *obj)
{
    size_t slot = address_slot(obj, GLOBAL_CACHE_SIZE);
    return &c->globals[slot & ~(size_t)(GLOBAL_WAYS - 1)];
}

/* The entry for obj in the global cache, or NULL. */
static global_entry *
global_find(pickler_cache *c, PyObject *obj)
{
    global_entry *bucket = global_bucket(c, obj);
    for (int i = 0; i < GLOBAL_WAYS; i++) {
        if (bucket[i].obj == obj && global_entry_valid(&bucket[i], obj)) {
            return &bucket[i];
        }
    }
    return NULL;
}

int
global_cache_lookup(pickler_core *p, PyObject *obj, global_entry *out)
{
    global_entry *e = global_find(p->cache, obj);
    if (e == NULL) {
        return 0;
    }
    /* Own the parts: looking up the module may run Python code that
     * replaces this entry. */
    out->ref = NULL;
    out->obj = obj;
    out->version = e->version;
    out->meta_version = e->meta_version;
    out->module_name = Py_NewRef(e->module_name);
    out->qualname = Py_NewRef(e->qualname);
    out->path = Py_NewRef(e->path);
    for (int i = 0; i < 3; i++) {
        out->line[i] = Py_XNewRef(e->line[i]);
    }
    return 1;
}

/* Is getattr(obj, name) the object `expected`? With equal_will_do, an
 * equal exact str is enough: a static type makes a new str from its C
 * name on every lookup, and its names cannot change. */
static int
attr_is(PyObject *obj, PyObject *name, PyObject *expected, int equal_will_do)
{
    PyObject *attr;
    if (lookup_attr(obj, name, &attr) <= 0) {
        PyErr_Clear();
        return 0;
    }
    int same = attr == expected
        || (equal_will_do && PyUnicode_CheckExact(attr)
            && PyUnicode_CheckExact(expected)
            && PyUnicode_Compare(attr, expected) == 0);
    Py_DECREF(attr);
    return same;
}

void
global_cache_store(pickler_core *p, PyObject *obj, PyObject *module_name,
                   PyObject *qualname, PyObject *path)
{
    pickler_cache *c = p->cache;
    unsigned int version = 0, meta_version = 0;
    if (PyFunction_Check(obj)) {
        PyFunctionObject *func = (PyFunctionObject *)obj;
        if (func->func_qualname != qualname
            || func->func_module != module_name) {
            return;
        }
    }
    else if (PyCFunction_Check(obj)) {
        if (!builtin_names_fixed(obj)
            || ((PyCFunctionObject *)obj)->m_module != module_name) {
            return;
        }
    }
    else if (PyType_Check(obj)) {
        PyTypeObject *meta = Py_TYPE(obj);
        if (meta->tp_getattro != PyType_Type.tp_getattro) {
            return;
        }
        /* the names must be the class's own attributes, not a fallback */
        int fixed = !(((PyTypeObject *)obj)->tp_flags & Py_TPFLAGS_HEAPTYPE)
                    && meta == &PyType_Type;
        if (!attr_is(obj, c->s_qualname, qualname, fixed)
            || !attr_is(obj, c->s_module, module_name, fixed)) {
            return;
        }
        version = assign_version(c, (PyTypeObject *)obj);
        meta_version = assign_version(c, meta);
        if (version == 0 || meta_version == 0) {
            return;
        }
    }
    else {
        return;
    }
    PyObject *ref = PyWeakref_NewRef(obj, NULL);
    if (ref == NULL) {
        PyErr_Clear();
        return;
    }
    /* Take obj's own stale entry, else a free or dead one, else evict the
     * last entry of the bucket. */
    global_entry *bucket = global_bucket(c, obj), *e = NULL;
    for (int i = 0; i < GLOBAL_WAYS && e == NULL; i++) {
        if (bucket[i].obj == obj) {
            e = &bucket[i];
        }
    }
    for (int i = 0; i < GLOBAL_WAYS && e == NULL; i++) {
        if (bucket[i].ref == NULL || !weakref_is(bucket[i].ref, bucket[i].obj)) {
            e = &bucket[i];
        }
    }
    if (e == NULL) {
        e = &bucket[GLOBAL_WAYS - 1];
    }
    global_entry old = *e;
    e->ref = ref;
    e->obj = obj;
    e->version = version;
    e->meta_version = meta_version;
    e->module_name = Py_NewRef(module_name);
    e->qualname = Py_NewRef(qualname);
    e->path = Py_NewRef(path);
    for (int i = 0; i < 3; i++) {
        e->line[i] = NULL;
    }
    global_entry_release(&old);
}

void
global_cache_set_line(pickler_core *p, PyObject *obj, int variant,
                      PyObject *line)
{
    global_entry *e = global_find(p->cache, obj);
    if (e != NULL) {
        Py_XSETREF(e->line[variant], Py_NewRef(line));
    }
}

/* ============================================================ types */

int
type_cache_is_plain(pickler_cache *c, PyTypeObject *type,
                    PyObject **slotnames)
{
    size_t slot = address_slot(type, TYPE_CACHE_SIZE);
    type_entry *e = &c->types[slot];
    PyTypeObject *meta = Py_TYPE(type);
    if (e->type != type) {
        e = &c->types[slot ^ 1];
    }
    if (e->type != type || e->meta != meta) {
        return -1;
    }
    unsigned int version = type_version(type);
    unsigned int meta_version = type_version(meta);
    if (version == 0 || version != e->version || meta_version == 0
        || meta_version != e->meta_version) {
        return -1;
    }
    if (!e->plain) {
        return 0;
    }
    /* __slotnames__ is a list that could have been changed in place */
    *slotnames = e->slotnames;
    if (e->slotnames != Py_None && PyList_GET_SIZE(e->slotnames) != 0) {
        return 0;
    }
    return 1;
}

/* Does the class keep every hook object's default reduction relies on? */
static int
keeps_object_hooks(pickler_cache *c, PyTypeObject *type, PyTypeObject *meta,
                   PyObject **slotnames)
{
    if (type->tp_getattro != PyObject_GenericGetAttr
        || meta->tp_getattro != PyType_Type.tp_getattro
        || type->tp_itemsize != 0 || type->tp_new == NULL
        || type->tp_dict == NULL
        || PyType_IsSubtype(type, &PyList_Type)
        || PyType_IsSubtype(type, &PyDict_Type)) {
        return 0;
    }
    if (_PyType_Lookup(type, c->s_reduce_ex) != c->object_reduce_ex
        || _PyType_Lookup(type, c->s_reduce) != c->object_reduce
        || _PyType_Lookup(type, c->s_getstate) != c->object_getstate
        || _PyType_Lookup(type, c->s_class) != c->object_class
        || _PyType_Lookup(type, c->s_getnewargs_ex) != NULL
        || _PyType_Lookup(type, c->s_getnewargs) != NULL) {
        return 0;
    }
    /* object.__reduce_ex__ reads type(obj).__reduce__ through the
     * metaclass: a data descriptor there would win */
    PyObject *meta_reduce = _PyType_Lookup(meta, c->s_reduce);
    if (meta_reduce != NULL && Py_TYPE(meta_reduce)->tp_descr_set != NULL) {
        return 0;
    }
    PyObject *names = PyDict_GetItemWithError(type->tp_dict, c->s_slotnames);
    if (names == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (names != Py_None
        && (!PyList_Check(names) || PyList_GET_SIZE(names) != 0)) {
        return 0;
    }
    *slotnames = names;
    return 1;
}

void
type_cache_learn(pickler_cache *c, PyObject *obj, PyObject *rv)
{
    PyTypeObject *type = Py_TYPE(obj);
    PyTypeObject *meta = Py_TYPE(type);
    PyObject *slotnames = NULL;
    PyObject *dict = NULL;
    unsigned int version = assign_version(c, type);
    unsigned int meta_version = assign_version(c, meta);
    if (version == 0 || meta_version == 0) {
        return;
    }
    int plain = keeps_object_hooks(c, type, meta, &slotnames);
    if (plain) {
        /* The state default __getstate__ gives: None for an empty (or no)
         * __dict__, else the __dict__ itself. */
        PyObject *state = Py_None;
        if (type->tp_dictoffset != 0) {
            dict = PyObject_GenericGetDict(obj, NULL);
            if (dict == NULL) {
                PyErr_Clear();
                return;
            }
            if (!PyDict_Check(dict)) {
                goto done;
            }
            if (PyDict_GET_SIZE(dict) != 0) {
                /* an instance attribute overriding a hook: this instance
                 * says nothing about the class */
                int r1 = PyDict_Contains(dict, c->s_reduce_ex);
                int r2 = PyDict_Contains(dict, c->s_getstate);
                if (r1 != 0 || r2 != 0) {
                    PyErr_Clear();
                    goto done;
                }
                state = dict;
            }
        }
        plain = PyTuple_CheckExact(rv) && PyTuple_GET_SIZE(rv) == 5
                && PyTuple_GET_ITEM(rv, 0) == c->copyreg_newobj
                && PyTuple_CheckExact(PyTuple_GET_ITEM(rv, 1))
                && PyTuple_GET_SIZE(PyTuple_GET_ITEM(rv, 1)) == 1
                && PyTuple_GET_ITEM(PyTuple_GET_ITEM(rv, 1), 0)
                   == (PyObject *)type
                && PyTuple_GET_ITEM(rv, 2) == state
                && PyTuple_GET_ITEM(rv, 3) == Py_None
                && PyTuple_GET_ITEM(rv, 4) == Py_None;
    }
    /* (reading the __dict__ may have run a collection, and with it any
     * code: the classes must still be as they were) */
    if (type_version(type) == version && type_version(meta) == meta_version) {
        size_t slot = address_slot(type, TYPE_CACHE_SIZE);
        type_entry *e = &c->types[slot];
        if (e->type != NULL && e->type != type) {
            /* (entries hold no reference: whether that type is still
             * alive cannot be asked, so the second entry is replaced) */
            e = &c->types[slot ^ 1];
        }
        e->type = type;
        e->meta = meta;
        e->version = version;
        e->meta_version = meta_version;
        e->slotnames = plain ? slotnames : NULL;
        e->plain = plain;
    }
done:
    Py_XDECREF(dict);
}

/* ============================================================ lifecycle */

static int
intern(PyObject **dest, const char *text)
{
    *dest = PyUnicode_InternFromString(text);
    return *dest == NULL ? -1 : 0;
}

static int
object_attr(PyObject **dest, PyObject *name)
{
    PyObject *attr = _PyType_Lookup(&PyBaseObject_Type, name);
    if (attr == NULL) {
        PyErr_Format(PyExc_RuntimeError, "object has no attribute %R", name);
        return -1;
    }
    *dest = Py_NewRef(attr);
    return 0;
}

int
pickler_cache_create(accel_state *st)
{
    pickler_cache *c = PyMem_Calloc(1, sizeof(pickler_cache));
    if (c == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    st->pickler = c;
    if (intern(&c->s_reduce_ex, "__reduce_ex__")
        || intern(&c->s_reduce, "__reduce__")
        || intern(&c->s_getstate, "__getstate__")
        || intern(&c->s_class, "__class__")
        || intern(&c->s_qualname, "__qualname__")
        || intern(&c->s_module, "__module__")
        || intern(&c->s_name, "__name__")
        || intern(&c->s_new, "__new__")
        || intern(&c->s_newobj, "__newobj__")
        || intern(&c->s_newobj_ex, "__newobj_ex__")
        || intern(&c->s_getnewargs, "__getnewargs__")
        || intern(&c->s_getnewargs_ex, "__getnewargs_ex__")
        || intern(&c->s_slotnames, "__slotnames__")
        || intern(&c->s_persistent_id, "persistent_id")
        || intern(&c->s_reducer_override, "reducer_override")
        || intern(&c->s_dispatch_table, "dispatch_table")
        || intern(&c->s_write, "write")
        || intern(&c->s_add_note, "add_note")
        || intern(&c->s_latin1, "latin1")
        || intern(&c->s_dot, ".")
        || intern(&c->s_locals, "<locals>")
        || intern(&c->s_main, "__main__")
        || intern(&c->s_builtins, "builtins")
        || intern(&c->s_raw, "raw")
        || intern(&c->s_copy, "copy")
        || intern(&c->s_items, "items")) {
        return -1;
    }
    if (object_attr(&c->object_reduce_ex, c->s_reduce_ex)
        || object_attr(&c->object_reduce, c->s_reduce)
        || object_attr(&c->object_getstate, c->s_getstate)
        || object_attr(&c->object_class, c->s_class)) {
        return -1;
    }
    PyObject *copyreg = PyImport_ImportModule("copyreg");
    if (copyreg == NULL) {
        return -1;
    }
    c->copyreg_newobj = PyObject_GetAttr(copyreg, c->s_newobj);
    Py_DECREF(copyreg);
    if (c->copyreg_newobj == NULL) {
        return -1;
    }
    PyObject *opcodes = PyImport_ImportModule("brinery._opcodes");
    if (opcodes == NULL) {
        return -1;
    }
    PyObject *protocol = PyObject_GetAttrString(opcodes, "DEFAULT_PROTOCOL");
    Py_DECREF(opcodes);
    if (protocol == NULL) {
        return -1;
    }
    long default_protocol = PyLong_AsLong(protocol);
    Py_DECREF(protocol);
    if (default_protocol < 0 || default_protocol > HIGHEST_PROTOCOL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError,
                            "brinery._opcodes.DEFAULT_PROTOCOL is out of "
                            "range");
        }
        return -1;
    }
    c->default_protocol = (int)default_protocol;
    c->empty_tuple = PyTuple_New(0);
    return c->empty_tuple == NULL ? -1 : 0;
}

#define CACHE_OBJECTS(X)                                                     \
    X(s_reduce_ex) X(s_reduce) X(s_getstate) X(s_class) X(s_qualname)        \
    X(s_module) X(s_name) X(s_new) X(s_newobj) X(s_newobj_ex)                \
    X(s_getnewargs) X(s_getnewargs_ex) X(s_slotnames) X(s_persistent_id)     \
    X(s_reducer_override) X(s_dispatch_table) X(s_write) X(s_add_note)       \
    X(s_latin1) X(s_dot) X(s_locals) X(s_main) X(s_builtins) X(s_raw)        \
    X(s_copy) X(s_items) X(object_reduce_ex) X(object_reduce)                \
    X(object_getstate) X(object_class) X(copyreg_newobj) X(empty_tuple)

int
accel_pickler_traverse(accel_state *st, visitproc visit, void *arg)
{
    pickler_cache *c = st->pickler;
    if (c == NULL) {
        return 0;
    }
#define VISIT(name) Py_VISIT(c->name);
    CACHE_OBJECTS(VISIT)
#undef VISIT
    for (size_t i = 0; i < GLOBAL_CACHE_SIZE; i++) {
        global_entry *e = &c->globals[i];
        Py_VISIT(e->ref);
        Py_VISIT(e->path);
    }
    return 0;
}

void
accel_pickler_clear(accel_state *st)
{
    pickler_cache *c = st->pickler;
    if (c == NULL) {
        return;
    }
    st->pickler = NULL;
#define CLEAR(name) Py_CLEAR(c->name);
    CACHE_OBJECTS(CLEAR)
#undef CLEAR
    for (size_t i = 0; i < GLOBAL_CACHE_SIZE; i++) {
        global_entry_release(&c->globals[i]);
    }
    memo_spares_free(&c->spares);
    PyMem_Free(c);
}

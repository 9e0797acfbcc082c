/* brinery._accel: find_class, the way a pickle reaches module attributes.
 *
 * globals_find_class() is Unpickler.find_class when no subclass overrides
 * it. It does what the pure implementation does: sys.audit
 * ("pickle.find_class", module, name); at protocol < 3 with fix_imports,
 * the Python 2 names mapped through _compat_pickle's tables; __import__
 * of the module; then the attribute, a dotted path at protocol 4+.
 *
 * Importing is the slow part (even for a module already imported,
 * __import__ looks at the module's spec), so results are remembered in a
 * small direct-mapped table in the module state, keyed by the arguments
 * and the mode (mapping on/off, dotted on/off). A remembered result is
 * used only after checking, on every use, that nothing it depends on has
 * changed:
 *   - builtins.__import__ is still the one seen when the module loaded
 *     (so an import hook still sees every import it would have seen);
 *   - sys.modules[module] is still the same module object, of the exact
 *     module type;
 *   - module.__dict__[name] is still the same object (a reassigned or
 *     reloaded attribute is looked up again).
 * Only results that are plain module-dict entries are remembered: no
 * dotted paths, no dunder names (which the module type itself may
 * provide), no module __getattr__ results. The audit hook runs on every
 * call, cached or not.
 */
#include "unpickler.h"

static unpickler_state *
ustate(accel_state *st)
{
    return st->unpickler;
}

/* ------------------------------------------------------ attribute lookup */

/* How CPython words a '<locals>' name in find_class. */
#if PY_VERSION_HEX >= 0x030D0000
#define LOCAL_ATTRIBUTE "Can't get local attribute"
#else
#define LOCAL_ATTRIBUTE "Can't pickle local attribute"
#endif

static PyObject *
get_attribute(PyObject *obj, PyObject *name, int dotted)
{
    if (!dotted) {
        PyObject *res = PyObject_GetAttr(obj, name);
        if (res == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_AttributeError,
                         "Can't get attribute %R on %R", name, obj);
        }
        return res;
    }
    /* name.split("."): what Python raises for a name that is no str. */
    PyObject *parts = PyObject_CallMethod(name, "split", "s", ".");
    if (parts == NULL) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(parts, "split() did not return a list");
    Py_DECREF(parts);
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *part = PySequence_Fast_GET_ITEM(seq, i);
        if (PyUnicode_Check(part)
            && PyUnicode_CompareWithASCIIString(part, "<locals>") == 0) {
            PyErr_Format(PyExc_AttributeError, "%s %R on %R",
                         LOCAL_ATTRIBUTE, name, obj);
            Py_DECREF(seq);
            return NULL;
        }
    }
    PyObject *current = Py_NewRef(obj);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *part = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *next = PyObject_GetAttr(current, part);
        if (next == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
                /* C names the whole path and the module it started from. */
                PyErr_Clear();
                PyErr_Format(PyExc_AttributeError,
                             "Can't get attribute %R on %R", name, obj);
            }
            goto error;
        }
        Py_SETREF(current, next);
    }
    Py_DECREF(seq);
    return current;

error:
    Py_DECREF(current);
    Py_DECREF(seq);
    return NULL;
}

/* ----------------------------------------------------------- the cache */

static Py_hash_t
cache_hash(PyObject *module_name, PyObject *name, int mode)
{
    Py_hash_t a = PyObject_Hash(module_name);
    Py_hash_t b = PyObject_Hash(name);
    if (a == -1 || b == -1) {
        return -1;
    }
    Py_uhash_t h = (Py_uhash_t)a * 1000003u ^ (Py_uhash_t)b;
    h ^= (Py_uhash_t)mode * 0x9E3779B97F4A7C15u;
    return (Py_hash_t)(h == (Py_uhash_t)-1 ? 1 : h);
}

static int
same_str(PyObject *a, PyObject *b)
{
    return a == b
           || (PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b)
               && PyUnicode_Compare(a, b) == 0);
}

static global_cache_entry *
cache_slot(unpickler_state *ust, Py_hash_t hash)
{
    Py_uhash_t h = (Py_uhash_t)hash;
    return &ust->global_cache[(h ^ (h >> 17)) & (GLOBAL_CACHE_SIZE - 1)];
}

/* builtins.__import__ is the one seen at module exec. */
static int
import_unchanged(unpickler_state *ust)
{
    PyObject *builtins = PyEval_GetBuiltins();
    if (builtins == NULL || !PyDict_Check(builtins)) {
        return 0;
    }
    return PyDict_GetItemWithError(builtins, ust->import_) == ust->import_func;
}

/* The cached value for the arguments if it is still valid (new
 * reference), else NULL without an exception, or NULL with one. */
static PyObject *
cache_get(unpickler_state *ust, PyObject *module_name, PyObject *name,
          int mode, Py_hash_t hash)
{
    global_cache_entry *e = cache_slot(ust, hash);
    if (e->value == NULL || e->hash != hash || e->mode != mode
        || !same_str(e->module_name, module_name)
        || !same_str(e->name, name)) {
        return NULL;
    }
    /* Hold what we compare: the lookups below could, in theory, run code
     * that replaces the entry. */
    PyObject *value = Py_NewRef(e->value);
    PyObject *module = Py_NewRef(e->module);
    PyObject *resolved_module = Py_NewRef(e->resolved_module);
    PyObject *resolved_name = Py_NewRef(e->resolved_name);
    PyObject *result = NULL;

    if (!import_unchanged(ust) || PyErr_Occurred()) {
        goto done;
    }
    PyObject *modules = PyImport_GetModuleDict();
    if (!PyDict_CheckExact(modules)
        || PyDict_GetItemWithError(modules, resolved_module) != module
        || !Py_IS_TYPE(module, &PyModule_Type)) {
        goto done;
    }
    PyObject *module_dict = PyModule_GetDict(module);
    if (PyDict_GetItemWithError(module_dict, resolved_name) == value) {
        result = Py_NewRef(value);
    }
done:
    Py_DECREF(value);
    Py_DECREF(module);
    Py_DECREF(resolved_module);
    Py_DECREF(resolved_name);
    return result;
}

static void
cache_put(unpickler_state *ust, PyObject *module_name, PyObject *name,
          int mode, Py_hash_t hash, PyObject *resolved_module,
          PyObject *resolved_name, PyObject *module, PyObject *value)
{
    global_cache_entry *e = cache_slot(ust, hash);
    global_cache_entry old = *e;
    e->module_name = Py_NewRef(module_name);
    e->name = Py_NewRef(name);
    e->mode = mode;
    e->hash = hash;
    e->resolved_module = Py_NewRef(resolved_module);
    e->resolved_name = Py_NewRef(resolved_name);
    e->module = Py_NewRef(module);
    e->value = Py_NewRef(value);
    /* Released last: the entry is consistent whatever this runs. */
    Py_XDECREF(old.module_name);
    Py_XDECREF(old.name);
    Py_XDECREF(old.resolved_module);
    Py_XDECREF(old.resolved_name);
    Py_XDECREF(old.module);
    Py_XDECREF(old.value);
}

/* Whether a lookup result may be remembered (see the file comment). */
static int
cacheable(unpickler_state *ust, PyObject *resolved_module,
          PyObject *resolved_name, int mode, PyObject *module,
          PyObject *value)
{
    if (!PyUnicode_CheckExact(resolved_module)
        || !PyUnicode_CheckExact(resolved_name)
        || !Py_IS_TYPE(module, &PyModule_Type)) {
        return 0;
    }
    if ((mode & FIND_DOTTED)
        && PyUnicode_FindChar(resolved_name, '.', 0,
                              PyUnicode_GET_LENGTH(resolved_name), 1) != -1) {
        return 0;
    }
    if (PyUnicode_GET_LENGTH(resolved_name) >= 2
        && PyUnicode_READ_CHAR(resolved_name, 0) == '_'
        && PyUnicode_READ_CHAR(resolved_name, 1) == '_') {
        return 0;
    }
    int unchanged = import_unchanged(ust);
    if (!unchanged) {
        PyErr_Clear();
        return 0;
    }
    PyObject *modules = PyImport_GetModuleDict();
    if (!PyDict_CheckExact(modules)
        || PyDict_GetItemWithError(modules, resolved_module) != module) {
        PyErr_Clear();
        return 0;
    }
    PyObject *found = PyDict_GetItemWithError(PyModule_GetDict(module),
                                              resolved_name);
    PyErr_Clear();
    return found == value;
}

int
globals_cache_traverse(unpickler_state *ust, visitproc visit, void *arg)
{
    if (ust->global_cache == NULL) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < GLOBAL_CACHE_SIZE; i++) {
        global_cache_entry *e = &ust->global_cache[i];
        Py_VISIT(e->module_name);
        Py_VISIT(e->name);
        Py_VISIT(e->resolved_module);
        Py_VISIT(e->resolved_name);
        Py_VISIT(e->module);
        Py_VISIT(e->value);
    }
    return 0;
}

void
globals_cache_clear(unpickler_state *ust)
{
    if (ust->global_cache == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < GLOBAL_CACHE_SIZE; i++) {
        global_cache_entry *e = &ust->global_cache[i];
        Py_CLEAR(e->module_name);
        Py_CLEAR(e->name);
        Py_CLEAR(e->resolved_module);
        Py_CLEAR(e->resolved_name);
        Py_CLEAR(e->module);
        Py_CLEAR(e->value);
    }
}

/* ------------------------------------------------------------ find_class */

/* The Python 2 names, through _compat_pickle's tables. Sets new
 * references in *module_out and *name_out. */
static int
map_2to3(accel_state *st, PyObject *module_name, PyObject *name,
         PyObject **module_out, PyObject **name_out)
{
    PyObject *key = PyTuple_Pack(2, module_name, name);
    if (key == NULL) {
        return -1;
    }
    PyObject *mapped = PyDict_GetItemWithError(st->name_mapping_2to3, key);
    Py_DECREF(key);
    if (mapped != NULL) {
        if (!PyTuple_Check(mapped) || PyTuple_GET_SIZE(mapped) != 2) {
            PyErr_Format(PyExc_RuntimeError,
                         "_compat_pickle.NAME_MAPPING values should be "
                         "2-tuples, not %.200s", Py_TYPE(mapped)->tp_name);
            return -1;
        }
        *module_out = Py_NewRef(PyTuple_GET_ITEM(mapped, 0));
        *name_out = Py_NewRef(PyTuple_GET_ITEM(mapped, 1));
        return 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    mapped = PyDict_GetItemWithError(st->import_mapping_2to3, module_name);
    if (mapped == NULL && PyErr_Occurred()) {
        return -1;
    }
    *module_out = Py_NewRef(mapped != NULL ? mapped : module_name);
    *name_out = Py_NewRef(name);
    return 0;
}

PyObject *
globals_find_class(accel_state *st, PyObject *module_name, PyObject *name,
                   int proto, int fix_imports)
{
    unpickler_state *ust = ustate(st);
    PyObject *resolved_module = NULL, *resolved_name = NULL;
    PyObject *module = NULL, *value = NULL;
    Py_hash_t hash = -1;
    int mode = (proto < 3 && fix_imports ? FIND_FIX_IMPORTS : 0)
               | (proto >= 4 ? FIND_DOTTED : 0);

    if (PySys_Audit("pickle.find_class", "OO", module_name, name) < 0) {
        return NULL;
    }
    int exact = PyUnicode_CheckExact(module_name)
                && PyUnicode_CheckExact(name);
    if (exact) {
        hash = cache_hash(module_name, name, mode);
        if (hash == -1) {
            return NULL;
        }
        value = cache_get(ust, module_name, name, mode, hash);
        if (value != NULL || PyErr_Occurred()) {
            return value;
        }
    }

    if (mode & FIND_FIX_IMPORTS) {
        if (map_2to3(st, module_name, name, &resolved_module,
                     &resolved_name) < 0) {
            return NULL;
        }
    }
    else {
        resolved_module = Py_NewRef(module_name);
        resolved_name = Py_NewRef(name);
    }
    /* __import__(module, level=0), then sys.modules[module]. */
    module = PyImport_Import(resolved_module);
    if (module == NULL) {
        goto done;
    }
    value = get_attribute(module, resolved_name, mode & FIND_DOTTED);
    if (value != NULL && exact
        && cacheable(ust, resolved_module, resolved_name, mode, module,
                     value)) {
        cache_put(ust, module_name, name, mode, hash, resolved_module,
                  resolved_name, module, value);
    }
done:
    Py_XDECREF(module);
    Py_DECREF(resolved_module);
    Py_DECREF(resolved_name);
    return value;
}

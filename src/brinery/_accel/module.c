/* brinery._accel: the module object, its state and its function table.
 *
 * Multi-phase initialisation: accel_exec fills the module state with
 * references to brinery._errors, copyreg's registries and the other
 * objects the pickler and unpickler need, then lets pickler.c and
 * unpickler.c create their types.
 */
#include "accel.h"

accel_state *
accel_state_of_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &accel_module_def);
    if (module == NULL) {
        return NULL;
    }
    return accel_get_state(module);
}

/* Set *dest to getattr(module named `modname`, `attr`). */
static int
import_attr(PyObject **dest, const char *modname, const char *attr)
{
    PyObject *module = PyImport_ImportModule(modname);
    if (module == NULL) {
        return -1;
    }
    *dest = PyObject_GetAttrString(module, attr);
    Py_DECREF(module);
    return *dest == NULL ? -1 : 0;
}

static int
require_dict(PyObject *obj, const char *what)
{
    if (!PyDict_CheckExact(obj)) {
        PyErr_Format(PyExc_RuntimeError, "%s should be a dict, not %.200s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

static int
accel_exec(PyObject *module)
{
    accel_state *st = accel_get_state(module);

    if (import_attr(&st->PickleError, "brinery._errors", "PickleError") < 0
        || import_attr(&st->PicklingError, "brinery._errors",
                       "PicklingError") < 0
        || import_attr(&st->UnpicklingError, "brinery._errors",
                       "UnpicklingError") < 0
        || import_attr(&st->UnsafePickleError, "brinery._errors",
                       "UnsafePickleError") < 0
        || import_attr(&st->PickleLimitError, "brinery._errors",
                       "PickleLimitError") < 0) {
        return -1;
    }
    if (import_attr(&st->dispatch_table, "copyreg", "dispatch_table") < 0
        || import_attr(&st->extension_registry, "copyreg",
                       "_extension_registry") < 0
        || import_attr(&st->inverted_registry, "copyreg",
                       "_inverted_registry") < 0
        || import_attr(&st->extension_cache, "copyreg",
                       "_extension_cache") < 0) {
        return -1;
    }
    if (require_dict(st->extension_registry, "copyreg._extension_registry")
        || require_dict(st->inverted_registry, "copyreg._inverted_registry")
        || require_dict(st->extension_cache, "copyreg._extension_cache")) {
        return -1;
    }
    if (import_attr(&st->name_mapping_2to3, "_compat_pickle",
                    "NAME_MAPPING") < 0
        || import_attr(&st->import_mapping_2to3, "_compat_pickle",
                       "IMPORT_MAPPING") < 0
        || import_attr(&st->name_mapping_3to2, "_compat_pickle",
                       "REVERSE_NAME_MAPPING") < 0
        || import_attr(&st->import_mapping_3to2, "_compat_pickle",
                       "REVERSE_IMPORT_MAPPING") < 0) {
        return -1;
    }
    if (require_dict(st->name_mapping_2to3, "_compat_pickle.NAME_MAPPING")
        || require_dict(st->import_mapping_2to3,
                        "_compat_pickle.IMPORT_MAPPING")
        || require_dict(st->name_mapping_3to2,
                        "_compat_pickle.REVERSE_NAME_MAPPING")
        || require_dict(st->import_mapping_3to2,
                        "_compat_pickle.REVERSE_IMPORT_MAPPING")) {
        return -1;
    }
    if (import_attr(&st->codecs_encode, "codecs", "encode") < 0
        || import_attr(&st->partial, "functools", "partial") < 0
        || import_attr(&st->builtins_getattr, "builtins", "getattr") < 0) {
        return -1;
    }

    if (accel_pickler_exec(module, st) < 0
        || accel_unpickler_exec(module, st) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "HIGHEST_PROTOCOL",
                                HIGHEST_PROTOCOL) < 0) {
        return -1;
    }
    return 0;
}

static int
accel_traverse(PyObject *module, visitproc visit, void *arg)
{
    accel_state *st = accel_get_state(module);
    if (st == NULL) {
        return 0;
    }
    Py_VISIT(st->PickleError);
    Py_VISIT(st->PicklingError);
    Py_VISIT(st->UnpicklingError);
    Py_VISIT(st->UnsafePickleError);
    Py_VISIT(st->PickleLimitError);
    Py_VISIT(st->dispatch_table);
    Py_VISIT(st->extension_registry);
    Py_VISIT(st->inverted_registry);
    Py_VISIT(st->extension_cache);
    Py_VISIT(st->name_mapping_2to3);
    Py_VISIT(st->import_mapping_2to3);
    Py_VISIT(st->name_mapping_3to2);
    Py_VISIT(st->import_mapping_3to2);
    Py_VISIT(st->codecs_encode);
    Py_VISIT(st->partial);
    Py_VISIT(st->builtins_getattr);
    Py_VISIT(st->Pickler_Type);
    Py_VISIT(st->Unpickler_Type);
    /* -- pickler section -- */
    int err = accel_pickler_traverse(st, visit, arg);
    if (err != 0) {
        return err;
    }
    /* -- unpickler section -- */
    int unpickler_rc = accel_unpickler_traverse(st, visit, arg);
    if (unpickler_rc) {
        return unpickler_rc;
    }
    return 0;
}

static int
accel_clear(PyObject *module)
{
    accel_state *st = accel_get_state(module);
    if (st == NULL) {
        return 0;
    }
    Py_CLEAR(st->PickleError);
    Py_CLEAR(st->PicklingError);
    Py_CLEAR(st->UnpicklingError);
    Py_CLEAR(st->UnsafePickleError);
    Py_CLEAR(st->PickleLimitError);
    Py_CLEAR(st->dispatch_table);
    Py_CLEAR(st->extension_registry);
    Py_CLEAR(st->inverted_registry);
    Py_CLEAR(st->extension_cache);
    Py_CLEAR(st->name_mapping_2to3);
    Py_CLEAR(st->import_mapping_2to3);
    Py_CLEAR(st->name_mapping_3to2);
    Py_CLEAR(st->import_mapping_3to2);
    Py_CLEAR(st->codecs_encode);
    Py_CLEAR(st->partial);
    Py_CLEAR(st->builtins_getattr);
    Py_CLEAR(st->Pickler_Type);
    Py_CLEAR(st->Unpickler_Type);
    /* -- pickler section -- */
    accel_pickler_clear(st);
    /* -- unpickler section -- */
    accel_unpickler_clear(st);
    return 0;
}

static void
accel_free(void *module)
{
    (void)accel_clear((PyObject *)module);
}

static PyMethodDef accel_functions[] = {
    {"dump", (PyCFunction)(void (*)(void))accel_dump,
     METH_FASTCALL | METH_KEYWORDS,
     "dump(obj, file, protocol=None, *, fix_imports=True, "
     "buffer_callback=None)\n--\n\n"
     "Write a pickle of obj to the open binary file."},
    {"dumps", (PyCFunction)(void (*)(void))accel_dumps,
     METH_FASTCALL | METH_KEYWORDS,
     "dumps(obj, protocol=None, *, fix_imports=True, "
     "buffer_callback=None)\n--\n\n"
     "Return the pickle of obj as a bytes object."},
    {"load", (PyCFunction)(void (*)(void))accel_load,
     METH_FASTCALL | METH_KEYWORDS,
     "load(file, *, fix_imports=True, encoding='ASCII', errors='strict', "
     "buffers=())\n--\n\n"
     "Read and return one object from the pickle in the open file."},
    {"loads", (PyCFunction)(void (*)(void))accel_loads,
     METH_FASTCALL | METH_KEYWORDS,
     "loads(data, /, *, fix_imports=True, encoding='ASCII', "
     "errors='strict', buffers=())\n--\n\n"
     "Read and return one object from the pickle data."},
    {NULL, NULL, 0, NULL}
};

static PyModuleDef_Slot accel_slots[] = {
    {Py_mod_exec, accel_exec},
    {0, NULL}
};

PyModuleDef accel_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "brinery._accel",
    .m_doc = "brinery's C accelerator: Pickler, Unpickler, dump(s), "
             "load(s).",
    .m_size = sizeof(accel_state),
    .m_methods = accel_functions,
    .m_slots = accel_slots,
    .m_traverse = accel_traverse,
    .m_clear = accel_clear,
    .m_free = accel_free,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    return PyModuleDef_Init(&accel_module_def);
}

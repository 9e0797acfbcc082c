/* brinery._accel: declarations shared by the accelerator's source files.
 *
 * The module keeps all of its state in its module state (multi-phase
 * initialisation, PEP 489): there is no global mutable state, so the
 * module can be imported in several interpreters and reloaded. Types are
 * heap types created from specs with PyType_FromModuleAndSpec, so a
 * Pickler or Unpickler finds the module state through its type
 * (accel_state_of_type), and caches the pointer in the instance.
 *
 * Files:
 *   module.c     module definition, state, module functions table
 *   pickler.c    Pickler type, dump/dumps
 *   unpickler.c  Unpickler type, load/loads
 *   (memo, output and input buffers live in their own files as the
 *    implementations grow: memo.c, buffers.c)
 */
#ifndef BRINERY_ACCEL_H
#define BRINERY_ACCEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "opcodes.h"

#if PY_VERSION_HEX < 0x030B0000
#  error "brinery requires CPython 3.11 or newer"
#endif

/* ---------------------------------------------------------------------
 * What differs between the CPython versions brinery follows: the table of
 * brinery/_versions.py, chosen at compile time (see there for each entry).
 */
#if PY_VERSION_HEX >= 0x030C0000
#  define BRINERY_NO_PERSISTENT_LOAD_MESSAGE                                 \
    "A load persistent id instruction was encountered, "                     \
    "but no persistent_load function was specified."
#else
#  define BRINERY_NO_PERSISTENT_LOAD_MESSAGE                                 \
    "A load persistent id instruction was encountered,\n"                    \
    "but no persistent_load function was specified."
#endif

#if PY_VERSION_HEX >= 0x030D0000
#  define BRINERY_PERSISTENT_HOOKS_ARE_METHODS 1
#  define BRINERY_PICKLEBUFFER_PROTOCOL_MESSAGE                              \
    "PickleBuffer can only be pickled with protocol >= 5"
#  define BRINERY_LOCAL_OBJECT_FORMAT "Can't get local object %R"
#  define BRINERY_NESTED_NAMES_AS_GETATTR_CHAIN 1
#  define BRINERY_EXTENSION_CODE_THROUGH_INDEX 1
#else
#  define BRINERY_PERSISTENT_HOOKS_ARE_METHODS 0
#  define BRINERY_PICKLEBUFFER_PROTOCOL_MESSAGE                              \
    "PickleBuffer can only pickled with protocol >= 5"
#  define BRINERY_LOCAL_OBJECT_FORMAT "Can't pickle local object %R"
#  define BRINERY_NESTED_NAMES_AS_GETATTR_CHAIN 0
#  define BRINERY_EXTENSION_CODE_THROUGH_INDEX 0
#endif

/* The exception being handled, taken out of the thread state (the
 * PyErr_GetRaisedException API of 3.12+; a normalized triple before). */
typedef struct {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
#else
    PyObject *type, *value, *tb;
#endif
} accel_saved_error;

/* Take the current exception (normalized); the error indicator is clear. */
static inline void
accel_error_fetch(accel_saved_error *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    e->exc = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&e->type, &e->value, &e->tb);
    PyErr_NormalizeException(&e->type, &e->value, &e->tb);
    if (e->tb != NULL && e->value != NULL) {
        PyException_SetTraceback(e->value, e->tb);
    }
#endif
}

/* The exception object itself (borrowed), or NULL. */
static inline PyObject *
accel_error_value(accel_saved_error *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    return e->exc;
#else
    return e->value;
#endif
}

/* Raise the taken exception again (the references pass back). */
static inline void
accel_error_restore(accel_saved_error *e)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(e->exc);
#else
    PyErr_Restore(e->type, e->value, e->tb);
#endif
}

typedef struct {
    /* brinery._errors */
    PyObject *PickleError;
    PyObject *PicklingError;
    PyObject *UnpicklingError;
    PyObject *UnsafePickleError;
    PyObject *PickleLimitError;

    /* copyreg's registries, shared with the standard library */
    PyObject *dispatch_table;         /* copyreg.dispatch_table */
    PyObject *extension_registry;     /* copyreg._extension_registry */
    PyObject *inverted_registry;      /* copyreg._inverted_registry */
    PyObject *extension_cache;        /* copyreg._extension_cache */

    /* _compat_pickle's Python 2 <-> 3 name tables */
    PyObject *name_mapping_2to3;      /* NAME_MAPPING */
    PyObject *import_mapping_2to3;    /* IMPORT_MAPPING */
    PyObject *name_mapping_3to2;      /* REVERSE_NAME_MAPPING */
    PyObject *import_mapping_3to2;    /* REVERSE_IMPORT_MAPPING */

    /* callables the pickler writes references to */
    PyObject *codecs_encode;          /* codecs.encode */
    PyObject *partial;                /* functools.partial */
    PyObject *builtins_getattr;       /* builtins.getattr */

    /* the types of this module (NULL until their file registers them) */
    PyTypeObject *Pickler_Type;
    PyTypeObject *Unpickler_Type;

    /* Fields the pickler and unpickler add for themselves go below, each
     * in its own section; module.c traverses and clears them. */
    /* -- pickler section -- */
    /* the pickler's caches and interned names (pickler_state.c) */
    struct pickler_cache *pickler;
    /* -- unpickler section -- */
    struct unpickler_state *unpickler;    /* unpickler.c's own state */
} accel_state;

extern PyModuleDef accel_module_def;

static inline accel_state *
accel_get_state(PyObject *module)
{
    return (accel_state *)PyModule_GetState(module);
}

/* The module state of one of this module's heap types (or a subclass). */
accel_state *accel_state_of_type(PyTypeObject *type);

/* Called from the module's exec slot: create the type(s) of each file and
 * add them to the module. Return 0, or -1 with an exception set. */
int accel_pickler_exec(PyObject *module, accel_state *st);
int accel_unpickler_exec(PyObject *module, accel_state *st);
/* The unpickler's part of the module state, for module.c's traverse and
 * clear. */
int accel_unpickler_traverse(accel_state *st, visitproc visit, void *arg);
void accel_unpickler_clear(accel_state *st);

/* Traverse / clear what the pickler keeps in the module state. */
int accel_pickler_traverse(accel_state *st, visitproc visit, void *arg);
void accel_pickler_clear(accel_state *st);

/* Module-level functions (their entries are in module.c's table). */
PyObject *accel_dump(PyObject *module, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames);
PyObject *accel_dumps(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames);
PyObject *accel_load(PyObject *module, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames);
PyObject *accel_loads(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames);

#endif /* BRINERY_ACCEL_H */

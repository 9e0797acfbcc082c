/* brinery._accel: the Unpickler type and load/loads.
 *
 * Skeleton: the Unpickler type is not registered yet, so brinery keeps
 * using the pure-Python implementation.
 */
#include "accel.h"

int
accel_unpickler_exec(PyObject *module, accel_state *st)
{
    return 0;
}

PyObject *
accel_load(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyErr_SetString(PyExc_NotImplementedError, "Unpickler not built yet");
    return NULL;
}

PyObject *
accel_loads(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyErr_SetString(PyExc_NotImplementedError, "Unpickler not built yet");
    return NULL;
}

/* brinery._accel: the Pickler type and dump/dumps.
 *
 * Skeleton: the Pickler type is not registered yet, so brinery keeps
 * using the pure-Python implementation.
 */
#include "accel.h"

int
accel_pickler_exec(PyObject *module, accel_state *st)
{
    return 0;
}

PyObject *
accel_dump(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyErr_SetString(PyExc_NotImplementedError, "Pickler not built yet");
    return NULL;
}

PyObject *
accel_dumps(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyErr_SetString(PyExc_NotImplementedError, "Pickler not built yet");
    return NULL;
}

/* brinery._accel: safe mode of the C Unpickler (unpickler_safe.c).
 *
 * brinery.safe's contract ("What the C unpickler must enforce in safe
 * mode") implemented on the C machine: the limits, the memory model and
 * the routing of every operation that can reach code through the
 * Session. A machine is in safe mode when m->safe is set; the loop in
 * unpickler.c then calls safe_before() before each opcode and
 * safe_after() after it, and its handlers that call out (find_class,
 * REDUCE, NEWOBJ, INST/OBJ, BUILD, EXT, persistent IDs, out-of-band
 * buffers) call the safe_* functions below instead.
 */
#ifndef BRINERY_UNPICKLER_SAFE_H
#define BRINERY_UNPICKLER_SAFE_H

#include "unpickler.h"

typedef struct safe_state safe_state;

/* The Unpickler's _safe_setup(session, limits, find_class, limit_error):
 * makes m->safe (replacing any). Returns 0 or -1. */
int safe_setup(machine *m, PyObject *session, PyObject *limits,
               PyObject *find_class, PyObject *limit_error);
void safe_free(machine *m);
int safe_traverse(machine *m, visitproc visit, void *arg);

/* Around one load. */
int safe_begin_load(machine *m);
/* After it (success or not): the Session gets the final counters. */
int safe_finish_load(machine *m);
void safe_end_load(machine *m, Py_ssize_t stop_offset);
/* (offset of the failing opcode, opcodes run) of the last load. */
PyObject *safe_info(machine *m);

/* The loop's hooks. safe_after checks and charges what the previous
 * opcode did (the input is at `offset`); on failure it sets *op and
 * *op_offset to that opcode's. safe_before: 0 to run opcode `op` at
 * op_offset (its argument at m->pos) normally, 1 when it did it itself
 * (m->pos moved past it), -1 on error. */
int safe_after(machine *m, Py_ssize_t offset, int *op, Py_ssize_t *op_offset);
int safe_before(machine *m, int op, Py_ssize_t op_offset);
void safe_note_error(machine *m, Py_ssize_t op_offset);

/* Calls out, through the session. */
PyObject *safe_find_class(machine *m, PyObject *module_name, PyObject *name);
PyObject *safe_ext(machine *m, long code);
PyObject *safe_reduce(machine *m, PyObject *func, PyObject *args);
PyObject *safe_newobj(machine *m, PyObject *cls, PyObject *args,
                      PyObject *kwargs);
PyObject *safe_instantiate(machine *m, PyObject *cls, PyObject *args,
                           const char *opname);
int safe_build(machine *m, PyObject *inst, PyObject *state);
PyObject *safe_persistent(machine *m, PyObject *pid);
/* Replaces the buffer on top of the stack by session.buffer(it). */
int safe_buffer(machine *m);

#endif /* BRINERY_UNPICKLER_SAFE_H */

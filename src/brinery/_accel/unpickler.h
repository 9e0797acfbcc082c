/* brinery._accel: declarations shared by the Unpickler's source files.
 *
 *   unpickler.c          the Unpickler type, load/loads, the machine
 *   unpickler_memo.c     the memo table (unpickler_memo.h)
 *   unpickler_text.c     protocol 0 text arguments (INT, LONG, FLOAT,
 *                        GET/PUT, STRING, UNICODE) with C semantics
 *   unpickler_globals.c  find_class: the default lookup and its cache
 *   inbuf.c              the input buffer (inbuf.h)
 *
 * The machine (`machine`) is the unpickler proper: input, stack, marks,
 * memo and options. loads() and load() run one on the C stack; an
 * Unpickler object embeds one, so its memo lives across load() calls.
 */
#ifndef BRINERY_UNPICKLER_H
#define BRINERY_UNPICKLER_H

#include "accel.h"
#include "inbuf.h"
#include "unpickler_memo.h"

/* ---------------------------------------------------- module state part */

/* One remembered find_class result (see unpickler_globals.c). */
typedef struct {
    PyObject *module_name;      /* the arguments, exact str */
    PyObject *name;
    int mode;                   /* FIND_FIX_IMPORTS | FIND_DOTTED */
    Py_hash_t hash;
    PyObject *resolved_module;  /* module name after the 2to3 mapping */
    PyObject *resolved_name;
    PyObject *module;           /* sys.modules[resolved_module] then */
    PyObject *value;            /* module.__dict__[resolved_name] then */
} global_cache_entry;

#define GLOBAL_CACHE_SIZE 4096  /* a power of two; as the pickler's */
#define FIND_FIX_IMPORTS 1
#define FIND_DOTTED 2

/* One remembered dict key (see unpickler.c, decode_dict_key): a short
 * ASCII str and its bytes, packed so that (size, head, tail) tells equal
 * byte strings of up to 16 bytes apart. */
typedef struct {
    PyObject *str;              /* exact, ASCII, owned; or NULL */
    uint64_t head;
    uint64_t tail;
    Py_ssize_t size;
} key_cache_entry;

#define KEY_CACHE_BITS 9
#define KEY_CACHE_SIZE (1 << KEY_CACHE_BITS)
#define KEY_CACHE_MAX_BYTES 32

/* What unpickler.c keeps in the module state (accel_state.unpickler). */
typedef struct unpickler_state {
    inbuf_names io;
    PyObject *setstate;         /* interned attribute names */
    PyObject *dict;
    PyObject *new_;
    PyObject *getinitargs;
    PyObject *extend;
    PyObject *append;
    PyObject *add;
    PyObject *items;
    PyObject *find_class;
    PyObject *persistent_load;
    PyObject *add_note;
    PyObject *toreadonly;
    PyObject *import_;          /* "__import__" */
    PyObject *ascii;            /* "ASCII", the default encoding */
    PyObject *strict;           /* "strict", the default errors */
    PyObject *import_func;      /* builtins.__import__ at module exec */
    PyObject *codecs_encode;    /* _codecs.encode at module exec */
    global_cache_entry *global_cache;
    key_cache_entry *key_cache;
} unpickler_state;

/* ---------------------------------------------------------- the machine */

#define MACHINE_INLINE_STACK 32
#define MACHINE_INLINE_MARKS 16

typedef struct {
    accel_state *st;
    unpickler_state *ust;
    PyObject *owner;            /* the Unpickler (borrowed), or NULL */
    inbuf in;
    Py_ssize_t pos;             /* read position in in.data */

    /* The stack; marks[] holds the stack heights where MARKs were
     * pushed, `fence` the topmost one (0 without marks): opcodes see
     * only stack[fence:len]. */
    PyObject **stack;
    Py_ssize_t len;
    Py_ssize_t capacity;
    Py_ssize_t *marks;
    Py_ssize_t nmarks;
    Py_ssize_t marks_capacity;
    Py_ssize_t fence;

    load_memo_table memo;

    int proto;
    int fix_imports;
    PyObject *encoding;         /* str, owned */
    PyObject *errors;           /* str, owned */
    PyObject *buffers;          /* iterator, owned, or NULL */
    PyObject *find_class;       /* an override for this load, or NULL */
    PyObject *persistent_load;  /* an override for this load, or NULL */
    /* BUILD interns the keys of state dicts; a pickle of many instances
     * repeats the same (memoized) key objects, so their interned forms
     * are remembered here during a load (allocated on first use). */
    struct intern_slot *intern_cache;
    /* SETITEMS into a fresh state dict followed by BUILD on a plain
     * instance sets the attributes straight from the stack (unpickler.c,
     * fused_setitems_build). The state dict stays empty while only the
     * memo holds it: each such dict is recorded here with its items, and
     * filled when a GET fetches it. Used only by loads() and load(),
     * whose memo no Python code can see. */
    PyTypeObject *plain_type;   /* qualified for it at plain_version */
    unsigned int plain_version; /* (address only, as the next) */
    PyObject *fresh_dict;       /* the last EMPTY_DICT (address only) */
    Py_ssize_t fresh_dict_index;/* the memo index it was put at, or -1 */
    struct deferred_dict *deferred;     /* by increasing memo index */
    Py_ssize_t ndeferred;
    Py_ssize_t deferred_capacity;
    PyObject **deferred_items;  /* key, value, key, value, ... (owned) */
    Py_ssize_t ndeferred_items;
    Py_ssize_t deferred_items_capacity;
    /* Safe mode (unpickler_safe.c), or NULL. */
    struct safe_state *safe;

    PyObject *stack_inline[MACHINE_INLINE_STACK];
    Py_ssize_t marks_inline[MACHINE_INLINE_MARKS];
} machine;

/* ------------------------------------------ unpickler.c, for its parts */

/* Raise "unpickling stack underflow" (or "unexpected MARK found" with a
 * MARK open); returns -1. */
int machine_stack_error(machine *m);
/* Release the stack items from height `height` up. */
void stack_drop_to(machine *m, Py_ssize_t height);

/* ------------------------------------------------- unpickler_text.c */

PyObject *text_parse_int(PyObject *error, const char *line, Py_ssize_t len);
PyObject *text_parse_long(PyObject *error, const char *line, Py_ssize_t len);
PyObject *text_parse_float(PyObject *error, const char *line,
                           Py_ssize_t len);
/* A GET/PUT argument: sets *index, or (for anything but plain digits)
 * *as_int to a new int; returns 0, or -1 with an exception set. */
int text_parse_memo_index(PyObject *error, const char *line, Py_ssize_t len,
                          Py_ssize_t *index, PyObject **as_int);
/* UNICODE's raw-unicode-escape argument -> str. */
PyObject *text_decode_unicode(PyObject *error, const char *line,
                              Py_ssize_t len);
/* STRING's quoted, escaped argument -> bytes. */
PyObject *text_decode_string(PyObject *error, const char *line,
                             Py_ssize_t len);

/* ---------------------------------------------- unpickler_globals.c */

/* Unpickler.find_class without an override: sys.audit, the 2to3 mapping
 * (protocol < 3 with fix_imports), import, attribute lookup (dotted at
 * protocol 4+), with a cache of results validated on every use. */
PyObject *globals_find_class(accel_state *st, PyObject *module_name,
                             PyObject *name, int proto, int fix_imports);
int globals_cache_traverse(unpickler_state *ust, visitproc visit, void *arg);
void globals_cache_clear(unpickler_state *ust);

#endif /* BRINERY_UNPICKLER_H */

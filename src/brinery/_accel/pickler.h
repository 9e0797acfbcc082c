/* brinery._accel: the pickler's internal interface, shared by
 *
 *   pickler.c        the Pickler type, dump() and dumps()
 *   pickler_save.c   the engine: save(), the explicit stack of save frames
 *   pickler_state.c  what the pickler keeps in the module state: interned
 *                    names, and the caches for globals and plain classes
 *
 * The engine works on a `pickler_core`: the state of one pickler. A Pickler
 * object embeds one; the module functions dump() and dumps() put one on
 * the C stack, so that a call costs no object allocation.
 *
 * No recursion: saving a container pushes a `save_frame` (the object, what
 * is left to save, where to resume) and returns to the loop in
 * pickler_run(), which steps the frame on top of the stack. The depth of
 * the pickled data is bounded by memory only.
 */
#ifndef BRINERY_PICKLER_H
#define BRINERY_PICKLER_H

#include "accel.h"
#include "memo.h"
#include "outbuf.h"

#include <stdint.h>

/* getattr(obj, name) that returns 0 and *result NULL when the attribute
 * is missing, 1 when found, -1 on other errors. */
#if PY_VERSION_HEX >= 0x030D0000
#  define lookup_attr PyObject_GetOptionalAttr
#else
#  define lookup_attr _PyObject_LookupAttr
#endif

/* ------------------------------------------------------------ caches */

#define GLOBAL_CACHE_SIZE 4096     /* a power of two */
#define TYPE_CACHE_SIZE 1024       /* a power of two */

/* How an object pickled by name (a class, a function) was found: valid as
 * long as the object's qualified name and module name are unchanged, which
 * the entry checks cheaply; the module and the attribute are looked up
 * again each time, as a fresh lookup would. */
typedef struct {
    PyObject *ref;               /* weak reference to the object; NULL: free */
    PyObject *obj;               /* its address, compared only */
    unsigned int version;        /* classes: the type's version tag */
    unsigned int meta_version;   /* classes: the metaclass's version tag */
    PyObject *module_name;       /* obj.__module__ */
    PyObject *qualname;          /* obj.__qualname__ */
    PyObject *path;              /* qualname.split('.') */
    PyObject *line[3];           /* GLOBAL opcode lines, see global_line() */
} global_entry;

/* Whether the instances of a class reduce exactly like object's default
 * __reduce_ex__ (protocol 2+): (copyreg.__newobj__, (cls,), state). */
typedef struct {
    PyTypeObject *type;          /* compared only */
    PyTypeObject *meta;
    unsigned int version;
    unsigned int meta_version;
    PyObject *slotnames;         /* borrowed from type.__dict__ */
    int plain;
} type_entry;

struct pickler_cache {
    int default_protocol;
    memo_spares spares;          /* memo tables kept for reuse */
    /* interned names */
    PyObject *s_reduce_ex, *s_reduce, *s_getstate, *s_class, *s_qualname,
             *s_module, *s_name, *s_new, *s_newobj, *s_newobj_ex,
             *s_getnewargs, *s_getnewargs_ex, *s_slotnames,
             *s_persistent_id, *s_reducer_override, *s_dispatch_table,
             *s_write, *s_add_note, *s_latin1, *s_dot, *s_locals, *s_main,
             *s_builtins, *s_raw, *s_copy, *s_items;
    /* object's own attributes, to recognise classes that keep them */
    PyObject *object_reduce_ex, *object_reduce, *object_getstate,
             *object_class;
    PyObject *copyreg_newobj;    /* copyreg.__newobj__ */
    PyObject *empty_tuple;
    global_entry globals[GLOBAL_CACHE_SIZE];
    type_entry types[TYPE_CACHE_SIZE];
};

typedef struct pickler_cache pickler_cache;

/* ------------------------------------------------------------ frames */

enum frame_kind {
    F_TUPLE,        /* items of a tuple, then TUPLE (or a memo fetch) */
    F_LIST,         /* items of an exact list, in batches (protocol 1+) */
    F_DICT,         /* items of an exact dict, in batches (protocol 1+) */
    F_APPENDS,      /* items from an iterator: APPEND(S) */
    F_SETITEMS,     /* key/value pairs from an iterator: SETITEM(S) */
    F_SET,          /* items of a set, in batches (protocol 4+) */
    F_FROZENSET,    /* items of a frozenset (protocol 4+) */
    F_REDUCE,       /* an object saved from its reduce value */
    F_GLOBAL,       /* STACK_GLOBAL: module name, qualified name */
    F_MEMOIZE,      /* then: memoize obj */
    F_WRITE1,       /* then: write one opcode byte (count) */
    F_SET_REDUCE,   /* a set below protocol 4, as (set, (list(obj),)) */
    F_GETATTR_CHAIN, /* 3.13, protocols 0-3: getattr(...(TOP, a)..., z) */
};

typedef struct {
    PyObject *obj;               /* the object being saved (owned) or NULL */
    PyObject *a, *b, *c;         /* kind-specific, owned or NULL */
    Py_ssize_t i;                /* index, position */
    Py_ssize_t n;                /* size */
    int count;                   /* items in the current batch */
    uint8_t kind;
    uint8_t phase;               /* where to resume */
    uint8_t what;                /* F_REDUCE: part being saved */
    uint8_t flags;
} save_frame;

#define FRAMES_SMALL 16

/* ------------------------------------------------------------ the core */

typedef struct pickler_core {
    accel_state *st;
    pickler_cache *cache;
    PyObject *write;             /* file.write, or NULL: output in memory */
    PyObject *buffer_callback;
    /* read from the Pickler at the start of each dump */
    PyObject *pers_func;
    PyObject *reducer_override;
    PyObject *dispatch_table;    /* NULL: copyreg.dispatch_table */
    PyObject *fast_active;       /* fast mode: {id: obj} being saved */
    /* {id: count}: tuples and reduced objects being saved deep in the
     * frame stack, not yet memoized (see guard_enter) */
    PyObject *unmemoized;
    Py_ssize_t open_reduces;     /* F_REDUCE/F_SET_REDUCE frames of objects */
    int proto;
    int bin;
    int fast;
    int fix_imports;
    /* Memo indices written for objects that were never built (see
     * save_bytes_direct); only where nothing can observe the memo. */
    Py_ssize_t phantoms;
    int may_use_phantoms;
    Py_ssize_t frame_start;      /* offset of the open frame's header, -1 */
    Py_ssize_t frame_limit;      /* close the frame when len reaches it */
    /* frame_limit while save() may take its fast path (binary protocol,
     * no persistent_id), else -1: one comparison decides */
    Py_ssize_t fast_limit;
    memo_table memo;
    save_frame *frames;
    Py_ssize_t depth;
    Py_ssize_t frames_cap;
    outbuf out;
    save_frame frames_small[FRAMES_SMALL];
} pickler_core;

/* Call after changing frame_limit, pers_func or bin. */
static inline void
core_update_fast_limit(pickler_core *p)
{
    p->fast_limit = (p->pers_func == NULL && p->bin) ? p->frame_limit : -1;
}

/* pickler_save.c */
void core_init(pickler_core *p, accel_state *st);
/* Write the whole pickle of obj (PROTO ... STOP); the output is left in
 * p->out (memory) or written to p->write. */
int core_dump(pickler_core *p, PyObject *obj);
/* Release what one dump holds (frames, hooks); keeps the memo. */
void core_end_dump(pickler_core *p);
/* Release everything. */
void core_free(pickler_core *p);
int core_traverse(pickler_core *p, visitproc visit, void *arg);
/* Parse `protocol` (None, or an int; negative means the highest). */
int core_set_protocol(pickler_core *p, PyObject *protocol);

/* pickler_state.c */
/* Create st->pickler (called from the module's exec slot). */
int pickler_cache_create(accel_state *st);
/* The (module name, qualified name) of a global: cached resolution. */
int global_cache_lookup(pickler_core *p, PyObject *obj, global_entry *out);
void global_cache_store(pickler_core *p, PyObject *obj, PyObject *module_name,
                        PyObject *qualname, PyObject *path);
void global_entry_release(global_entry *e);
int type_cache_is_plain(pickler_cache *c, PyTypeObject *type,
                        PyObject **slotnames);
void type_cache_learn(pickler_cache *c, PyObject *obj, PyObject *rv);
void global_cache_set_line(pickler_core *p, PyObject *obj, int variant,
                           PyObject *line);

#endif /* BRINERY_PICKLER_H */

/* brinery._accel: large buffers that are about to be written in full.
 *
 * A 100 MB payload copied into fresh memory costs more in page faults
 * than in copying: the kernel maps the buffer 4 KiB at a time, one fault
 * each (about 25,600 faults for 100 MB, three quarters of the time of the
 * copy on Linux x86-64). Transparent huge pages map it 2 MiB at a time.
 * Many systems enable them only where a program asks (the "madvise"
 * setting), so before writing a large buffer through, the pickler and
 * the unpickler ask for them here.
 *
 * Only whole 2 MiB pages inside the buffer are advised: every huge page
 * is then written in full by its owner, so no memory is committed that
 * 4 KiB pages would have left untouched. The advice is a hint: where it
 * is unknown (not Linux), refused or disabled, nothing changes.
 */
#ifndef BRINERY_BIGMEM_H
#define BRINERY_BIGMEM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__linux__)
#  include <errno.h>
#  include <sys/mman.h>
#endif

/* Buffers from this size on are advised: two huge pages, so that at least
 * one whole one lies inside whatever the alignment. */
#define BIGMEM_THRESHOLD ((Py_ssize_t)4 << 20)
#define BIGMEM_HUGE_PAGE ((uintptr_t)2 << 20)

/* p[0:n] is about to be written in full. */
static inline void
bigmem_advise_write(void *p, Py_ssize_t n)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n < BIGMEM_THRESHOLD) {
        return;
    }
    uintptr_t start = ((uintptr_t)p + BIGMEM_HUGE_PAGE - 1)
                      & ~(BIGMEM_HUGE_PAGE - 1);
    uintptr_t stop = ((uintptr_t)p + (uintptr_t)n) & ~(BIGMEM_HUGE_PAGE - 1);
    if (stop > start) {
        int saved_errno = errno;
        (void)madvise((void *)start, (size_t)(stop - start), MADV_HUGEPAGE);
        errno = saved_errno;
    }
#else
    (void)p;
    (void)n;
#endif
}

/* bytes (or bytearray) with a copy of s[0:n], for payloads of any size;
 * large ones are advised before the copy. */
static inline PyObject *
bigmem_copy(const char *s, Py_ssize_t n, int as_bytearray)
{
    if (n < BIGMEM_THRESHOLD) {
        return as_bytearray ? PyByteArray_FromStringAndSize(s, n)
                            : PyBytes_FromStringAndSize(s, n);
    }
    PyObject *obj = as_bytearray ? PyByteArray_FromStringAndSize(NULL, n)
                                 : PyBytes_FromStringAndSize(NULL, n);
    if (obj == NULL) {
        return NULL;
    }
    char *out = as_bytearray ? PyByteArray_AS_STRING(obj)
                             : PyBytes_AS_STRING(obj);
    bigmem_advise_write(out, n);
    memcpy(out, s, (size_t)n);
    return obj;
}

#endif /* BRINERY_BIGMEM_H */

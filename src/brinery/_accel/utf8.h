/* brinery._accel: UTF-8 to str decoding for the unpickler's text opcodes.
 *
 * utf8_decode_text() gives exactly what bytes.decode("utf-8",
 * "surrogatepass") gives (same str, same kind, same exceptions): valid
 * UTF-8 is decoded here in two passes, anything else goes to CPython's
 * decoder (encoded surrogates too, unless utf8_simd.c's vector stage
 * decoded them, as surrogatepass does). utf8_copy_ascii() is the copy
 * loop of the ASCII fast path, 32 bytes at a time. See utf8.c.
 */
#ifndef BRINERY_UTF8_H
#define BRINERY_UTF8_H

#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) && !defined(BRINERY_UTF8_PORTABLE)
#  include <emmintrin.h>
#  define UTF8_SSE2 1
#else
#  define UTF8_SSE2 0
#endif

#define UTF8_HIGH_BITS UINT64_C(0x8080808080808080)

/* The vector stage of utf8_simd.c: x86-64 with GCC or clang (for
 * target attributes and __builtin_cpu_supports), not the portable build. */
#if UTF8_SSE2 && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define UTF8_SIMD 1
#else
#  define UTF8_SIMD 0
#endif

PyObject *utf8_decode_text(const unsigned char *s, Py_ssize_t n);

#if UTF8_SIMD
/* Decode s[0:...] into *out while at least 16 bytes are left before end
 * (s must start a character; *out must have room for the characters
 * utf8.c's scan counted); returns where decoding stopped and advances
 * *out, or NULL when the text is not UTF-8 as "surrogatepass" reads it. */
const unsigned char *utf8_simd_ucs1(const unsigned char *s,
                                    const unsigned char *end, Py_UCS1 **out);
const unsigned char *utf8_simd_ucs2(const unsigned char *s,
                                    const unsigned char *end, Py_UCS2 **out);
const unsigned char *utf8_simd_ucs4(const unsigned char *s,
                                    const unsigned char *end, Py_UCS4 **out);
#endif

/* Copy s[0:n] to out while it is ASCII; returns n when all of it was,
 * else an offset before the first non-ASCII byte (everything before it
 * was copied). Inline: it is the whole work for most short strs. */
static inline Py_ssize_t
utf8_copy_ascii(unsigned char *out, const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    uint64_t w;
    if (n < 8) {
        for (; i < n; i++) {
            if (s[i] & 0x80) {
                return i;
            }
            out[i] = s[i];
        }
        return n;
    }
#if UTF8_SSE2
    if (n >= 16) {
        for (; n - i > 32; i += 32) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
            if (_mm_movemask_epi8(_mm_or_si128(a, b))) {
                return i;
            }
            _mm_storeu_si128((__m128i *)(out + i), a);
            _mm_storeu_si128((__m128i *)(out + i + 16), b);
        }
        if (n - i > 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
            if (_mm_movemask_epi8(a)) {
                return i;
            }
            _mm_storeu_si128((__m128i *)(out + i), a);
            i += 16;
        }
        /* The last 16 bytes, overlapping what was copied. */
        __m128i a = _mm_loadu_si128((const __m128i *)(s + n - 16));
        if (_mm_movemask_epi8(a)) {
            return i;
        }
        _mm_storeu_si128((__m128i *)(out + n - 16), a);
        return n;
    }
#endif
    for (; n - i > 8; i += 8) {
        memcpy(&w, s + i, 8);
        if (w & UTF8_HIGH_BITS) {
            return i;
        }
        memcpy(out + i, &w, 8);
    }
    /* The last 8 bytes, overlapping what was copied. */
    memcpy(&w, s + n - 8, 8);
    if (w & UTF8_HIGH_BITS) {
        return i;
    }
    memcpy(out + n - 8, &w, 8);
    return n;
}


#endif

/* brinery._accel: UTF-8 to str decoding for the unpickler's text opcodes.
 *
 * Pickles carry text as UTF-8 written with "surrogatepass". This file owns
 * turning such bytes into a str, with the same result as
 * bytes.decode("utf-8", "surrogatepass"): the same characters, the same
 * kind (1, 2 or 4 bytes per character, always the narrowest that fits,
 * as CPython requires of compact strs), the same exceptions.
 *
 * utf8_decode_text() works in two passes, the second in two stages:
 *
 * 1. a scan, 16 bytes at a time (SSE2) or 8 (portable words), finds the
 *    number of characters (the bytes that are not continuation bytes
 *    10xxxxxx) and the widest lead byte. For valid UTF-8 the widest lead
 *    gives the kind exactly: F0..F4 start characters >= U+10000; E0..EF
 *    characters U+0800..U+FFFF; C4..DF characters U+0100..U+07FF; C2 and
 *    C3 characters U+0080..U+00FF; no byte >= 0x80 means ASCII.
 * 2. on x86-64, the vector stage of utf8_simd.c decodes 16-byte windows
 *    straight into the new str while 16 bytes are left (SSSE3/SSE4.1 or
 *    AVX2, chosen at run time; it decodes nothing on other CPUs);
 *    then a decoder specialised for that kind writes the rest into the
 *    str, validating every sequence (continuation bytes, overlong forms,
 *    surrogates, beyond U+10FFFF) as it goes; a table of labels on the
 *    lead byte's top bits picks the path; ASCII runs go 8 bytes at a
 *    time, runs of 2-byte characters 4 or 2 at a time, of 3- and 4-byte
 *    characters 2 at a time, in the lanes of a 64-bit word.
 *
 * Anything that is not strict UTF-8 (truncated or stray sequences, and
 * the encoded surrogates "surrogatepass" accepts; the vector stage
 * decodes those itself) makes pass 2 give up, and CPython's own decoder
 * produces the result or the exception. Since each character written
 * consumes one non-continuation byte, pass 2 can never write more
 * characters than pass 1 counted, valid input or not (the vector stage's
 * stores of 4 lanes included, see utf8_simd.c).
 *
 * BRINERY_UTF8_PORTABLE (e.g. CFLAGS=-DBRINERY_UTF8_PORTABLE) forces the
 * portable code on x86-64 too, so that it can be tested: words instead of
 * SSE2 vectors, and tests instead of a table of labels for dispatching.
 * utf8_copy_ascii(), the ASCII fast path, is inline in utf8.h.
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#  define LIKELY(x) __builtin_expect(!!(x), 1)
#  define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define LIKELY(x) (x)
#  define UNLIKELY(x) (x)
#endif

#define HIGH_BITS UTF8_HIGH_BITS
#define LOW_BITS UINT64_C(0x0101010101010101)

/* Byte i of a word is s[i]: the decoders below read words that way. */
static inline uint64_t
load_le64(const unsigned char *p)
{
#if PY_LITTLE_ENDIAN
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
#else
    uint64_t w = 0;
    for (int j = 7; j >= 0; j--) {
        w = w << 8 | p[j];
    }
    return w;
#endif
}

/* Widest character class found by the scan. */
enum { CLASS_ASCII, CLASS_UCS1, CLASS_UCS2, CLASS_UCS4 };

/* ------------------------------------------------------------ pass 1 */

/* Number of characters in s[0:n] if it is valid UTF-8, and its class. */
static Py_ssize_t
scan(const unsigned char *s, Py_ssize_t n, int *cls)
{
    Py_ssize_t i = 0, conts = 0;
    unsigned int top = 0;           /* the largest byte */
#if UTF8_SSE2
    const __m128i zero = _mm_setzero_si128();
    const __m128i first_lead = _mm_set1_epi8((char)0xC0);
    __m128i vmax = zero;
    while (n - i >= 16) {
        /* Per-byte counters of continuation bytes: at most 255 blocks
         * before they are summed. */
        Py_ssize_t blocks = (n - i) / 16;
        if (blocks > 255) {
            blocks = 255;
        }
        __m128i counts = zero;
        for (Py_ssize_t b = 0; b < blocks; b++, i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            vmax = _mm_max_epu8(vmax, v);
            /* 0x80..0xBF are the signed bytes below (char)0xC0. */
            counts = _mm_sub_epi8(counts, _mm_cmplt_epi8(v, first_lead));
        }
        __m128i sums = _mm_sad_epu8(counts, zero);
        conts += _mm_cvtsi128_si32(sums)
                 + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
    vmax = _mm_max_epu8(vmax, _mm_srli_si128(vmax, 8));
    vmax = _mm_max_epu8(vmax, _mm_srli_si128(vmax, 4));
    vmax = _mm_max_epu8(vmax, _mm_srli_si128(vmax, 2));
    vmax = _mm_max_epu8(vmax, _mm_srli_si128(vmax, 1));
    top = (unsigned int)_mm_cvtsi128_si32(vmax) & 0xFF;
#else
    /* Per word, flags in each byte's high bit: continuation bytes, bytes
     * >= 0x80, >= 0xC4, >= 0xF0. */
    uint64_t high = 0, ge_c4 = 0, ge_f0 = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w = load_le64(s + i);
        uint64_t cont = w & ~(w << 1) & HIGH_BITS;
        conts += (Py_ssize_t)(((cont >> 7) * LOW_BITS) >> 56);
        high |= w;
        uint64_t ge_c0 = w & (w << 1);
        ge_c4 |= ge_c0 & ((w << 2) | (w << 3) | (w << 4) | (w << 5));
        ge_f0 |= ge_c0 & (w << 2) & (w << 3);
    }
    high &= HIGH_BITS;
    ge_c4 &= HIGH_BITS;
    ge_f0 &= HIGH_BITS;
    top = ge_f0 ? 0xF0 : ge_c4 ? 0xC4 : high ? 0x80 : 0;
#endif
    for (; i < n; i++) {
        unsigned int c = s[i];
        conts += (c & 0xC0) == 0x80;
        if (c > top) {
            top = c;
        }
    }
    *cls = top >= 0xF0 ? CLASS_UCS4 : top >= 0xC4 ? CLASS_UCS2
           : top >= 0x80 ? CLASS_UCS1 : CLASS_ASCII;
    return n - conts;
}

/* ------------------------------------------------------------ pass 2 */

/* Widen 8 ASCII bytes into 8 characters. */
static inline void
widen8_ucs1(Py_UCS1 *o, const unsigned char *p)
{
    memcpy(o, p, 8);
}

static inline void
widen8_ucs2(Py_UCS2 *o, const unsigned char *p)
{
#if UTF8_SSE2
    __m128i v = _mm_loadl_epi64((const __m128i *)p);
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi8(v, _mm_setzero_si128()));
#else
    for (int j = 0; j < 8; j++) {
        o[j] = p[j];
    }
#endif
}

static inline void
widen8_ucs4(Py_UCS4 *o, const unsigned char *p)
{
#if UTF8_SSE2
    const __m128i zero = _mm_setzero_si128();
    __m128i v = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p), zero);
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(v, zero));
    _mm_storeu_si128((__m128i *)(o + 4), _mm_unpackhi_epi16(v, zero));
#else
    for (int j = 0; j < 8; j++) {
        o[j] = p[j];
    }
#endif
}

/* Store 4 characters given as the 16-bit lanes of a word. */
static inline void
put4x16_ucs1(Py_UCS1 *o, uint64_t y)
{
    y = (y | y >> 8) & UINT64_C(0x0000FFFF0000FFFF);
    uint32_t packed = (uint32_t)(y | y >> 16);
#if PY_LITTLE_ENDIAN
    memcpy(o, &packed, 4);
#else
    for (int j = 0; j < 4; j++) {
        o[j] = (Py_UCS1)(packed >> 8 * j);
    }
#endif
}

static inline void
put4x16_ucs2(Py_UCS2 *o, uint64_t y)
{
#if PY_LITTLE_ENDIAN
    memcpy(o, &y, 8);
#else
    for (int j = 0; j < 4; j++) {
        o[j] = (Py_UCS2)(y >> 16 * j);
    }
#endif
}

static inline void
put4x16_ucs4(Py_UCS4 *o, uint64_t y)
{
#if UTF8_SSE2
    __m128i v = _mm_cvtsi64_si128((long long)y);
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(v, _mm_setzero_si128()));
#else
    for (int j = 0; j < 4; j++) {
        o[j] = (Py_UCS4)(y >> 16 * j & 0xFFFF);
    }
#endif
}

/* Store 2 characters given as the 32-bit lanes of a word. */
static inline void
put2x32_ucs2(Py_UCS2 *o, uint64_t y)
{
    o[0] = (Py_UCS2)y;
    o[1] = (Py_UCS2)(y >> 32);
}

static inline void
put2x32_ucs4(Py_UCS4 *o, uint64_t y)
{
#if PY_LITTLE_ENDIAN
    memcpy(o, &y, 8);
#else
    o[0] = (Py_UCS4)y;
    o[1] = (Py_UCS4)(y >> 32);
#endif
}

static inline void
put2x32_ucs1(Py_UCS1 *o, uint64_t y)
{
    (void)o, (void)y;                   /* no 3-byte sequences in UCS1 */
}

#define REPEAT4(b) (UINT64_C(0x0001000100010001) * (b))
#define REPEAT2(b) (UINT64_C(0x0000000100000001) * (b))

/* The number of bytes before the first one flagged in `high` (not 0). */
static inline int
ascii_prefix(uint64_t high)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(high) >> 3;
#else
    int k = 0;
    while (!(high & 0x80)) {
        high >>= 8;
        k++;
    }
    return k;
#endif
}

/* Where the decoder goes for a byte, by its top 4 bits. With GCC and
 * clang a table of labels (one indirect jump), else (and in the portable
 * build) a chain of tests. Lengths the kind cannot hold go to `invalid`. */
#if (defined(__GNUC__) || defined(__clang__)) \
    && !defined(BRINERY_UTF8_PORTABLE)
#  define LEAD_TABLE(MAXLEN)                                                \
    static const void *const lead_[16] = {                                  \
        &&ascii, &&ascii, &&ascii, &&ascii, &&ascii, &&ascii, &&ascii,      \
        &&ascii, &&invalid, &&invalid, &&invalid, &&invalid, &&two, &&two,  \
        (MAXLEN) >= 3 ? &&three : &&invalid,                                \
        (MAXLEN) >= 4 ? &&four : &&invalid}
#  define GOTO_LEAD(w, MAXLEN) goto *lead_[((w) & 0xFF) >> 4]
#else
#  define LEAD_TABLE(MAXLEN) ((void)0)
#  define GOTO_LEAD(w, MAXLEN)                                              \
    do {                                                                    \
        if (!((w) & 0x80)) {                                                \
            goto ascii;                                                     \
        }                                                                   \
        if (((w) & 0xE0) == 0xC0) {                                         \
            goto two;                                                       \
        }                                                                   \
        if ((MAXLEN) >= 3 && ((w) & 0xF0) == 0xE0) {                        \
            goto three;                                                     \
        }                                                                   \
        if ((MAXLEN) >= 4 && ((w) & 0xF0) == 0xF0) {                        \
            goto four;                                                      \
        }                                                                   \
        goto invalid;                                                       \
    } while (0)
#endif

/* In a decoder, after a run's step of `bytes` bytes and `chars`
 * characters: the word at the next position, or the end. */
#define NEXT_IN_RUN(bytes, chars)                                           \
    do {                                                                    \
        p += (bytes);                                                       \
        o += (chars);                                                       \
        if (p >= stop) {                                                    \
            goto next;                                                      \
        }                                                                   \
        w = load_le64(p);                                                   \
    } while (0)

/* Decoders of one kind: decode from p while p < stop, reading up to 8
 * bytes from any p < stop (the caller guarantees they exist); store
 * characters at *out, never beyond o_end. Returns where decoding stopped
 * (>= stop), or NULL at the first sequence that is not strict UTF-8.
 * MAXLEN is the longest sequence the kind can hold; longer ones cannot
 * occur, the scan saw no lead byte for them.
 * Words are read with byte i of the text in bits 8i..8i+7; runs of
 * characters of one length are decoded several at a time, in lanes of
 * such a word: 4 two-byte characters (16-bit lanes), 2 three-byte ones
 * (lanes at bits 0 and 24), 2 four-byte ones (32-bit lanes). */
#define DEFINE_DECODER(NAME, TYPE, MAXLEN, WIDEN8, PUT4X16, PUT2X32)        \
static const unsigned char *                                                \
NAME(const unsigned char *p, const unsigned char *stop, TYPE **out,         \
     TYPE *o_end)                                                           \
{                                                                           \
    TYPE *o = *out;                                                         \
    uint64_t w;                                                             \
    LEAD_TABLE(MAXLEN);                                                     \
    /* Each block leaves p at the next character and goes to next. */      \
next:                                                                       \
    if (p >= stop) {                                                        \
        *out = o;                                                           \
        return p;                                                           \
    }                                                                       \
    w = load_le64(p);                                                       \
dispatch:                                                                   \
    GOTO_LEAD(w, MAXLEN);                                                   \
ascii: {                                                                    \
        uint64_t high = w & HIGH_BITS;                                      \
        if (high == 0) {                                                    \
            WIDEN8(o, p);                                                   \
            p += 8;                                                         \
            o += 8;                                                         \
            goto next;                                                      \
        }                                                                   \
        if (high & 0x8000) {                                                \
            /* One ASCII character between others (Latin text). */         \
            *o++ = (TYPE)(w & 0x7F);                                        \
            p++;                                                            \
            goto next;                                                      \
        }                                                                   \
        /* k ASCII characters, then something else: all 8 bytes are       \
         * widened (the extra ones are overwritten later) where there is  \
         * room. */                                                         \
        int k = ascii_prefix(high);                                         \
        if (LIKELY(o_end - o >= 8)) {                                       \
            WIDEN8(o, p);                                                   \
        }                                                                   \
        else {                                                              \
            for (int j = 0; j < k; j++) {                                   \
                o[j] = p[j];                                                \
            }                                                               \
        }                                                                   \
        p += k;                                                             \
        o += k;                                                             \
        if (p >= stop) {                                                    \
            goto next;                                                      \
        }                                                                   \
        w = load_le64(p);                                                   \
        goto dispatch;                                                      \
    }                                                                       \
two:                                                                        \
    if ((w & 0xC0E0C0E0) != 0x80C080C0) {                                   \
        goto two_single;                                                    \
    }                                                                       \
    while ((w & REPEAT4(0xC0E0)) == REPEAT4(0x80C0)) {                      \
        uint64_t y = (w & REPEAT4(0x1F)) << 6 | (w >> 8 & REPEAT4(0x3F));   \
        /* Leads C0 and C1 give characters below 0x80. */                  \
        if (UNLIKELY(((y + REPEAT4(0x7F80)) & REPEAT4(0x8000))              \
                     != REPEAT4(0x8000))) {                                 \
            return NULL;                                                    \
        }                                                                   \
        PUT4X16(o, y);                                                      \
        NEXT_IN_RUN(8, 4);                                              \
    }                                                                       \
    if ((w & 0xC0E0C0E0) == 0x80C080C0) {                                   \
        uint32_t y = (uint32_t)((w & 0x001F001F) << 6                       \
                                | (w >> 8 & 0x003F003F));                   \
        if (UNLIKELY(((y + 0x7F807F80) & 0x80008000) != 0x80008000)) {      \
            return NULL;                                                    \
        }                                                                   \
        o[0] = (TYPE)(y & 0xFFFF);                                          \
        o[1] = (TYPE)(y >> 16);                                             \
        p += 4;                                                             \
        o += 2;                                                             \
        goto next;                                                          \
    }                                                                       \
two_single:                                                                 \
    if ((w & 0xC0E0) != 0x80C0) {                                           \
        if ((w & 0xE0) == 0xC0) {                                           \
            return NULL;                /* no continuation byte */          \
        }                                                                   \
        goto dispatch;                  /* after a run */                   \
    }                                                                       \
    if (UNLIKELY((w & 0x1E) == 0)) {                                        \
        return NULL;                    /* C0, C1: overlong */              \
    }                                                                       \
    *o++ = (TYPE)((w & 0x1F) << 6 | (w >> 8 & 0x3F));                       \
    p += 2;                                                                 \
    goto next;                                                              \
three:                                                                      \
    while ((w & UINT64_C(0xC0C0F0C0C0F0)) == UINT64_C(0x8080E08080E0)) {    \
        uint64_t x = (w & UINT64_C(0x0F00000F)) << 12                       \
                     | (w >> 2 & UINT64_C(0xFC0000FC0))                     \
                     | (w >> 16 & UINT64_C(0x3F00003F));                    \
        Py_UCS4 a = (Py_UCS4)(x & 0xFFFF);                                  \
        Py_UCS4 b = (Py_UCS4)(x >> 24 & 0xFFFF);                            \
        /* Bits 11..15 are 0 for overlong forms, 0x1B for surrogates. */   \
        if (UNLIKELY((UINT32_C(0x08000001) >> (a >> 11)                     \
                      | UINT32_C(0x08000001) >> (b >> 11)) & 1)) {          \
            return NULL;                                                    \
        }                                                                   \
        PUT2X32(o, a | (uint64_t)b << 32);                                  \
        NEXT_IN_RUN(6, 2);                                              \
    }                                                                       \
    if ((w & 0xC0C0F0) != 0x8080E0) {                                       \
        if ((w & 0xF0) == 0xE0) {                                           \
            return NULL;                /* no continuation bytes */         \
        }                                                                   \
        goto dispatch;                                                      \
    }                                                                       \
    {                                                                       \
        Py_UCS4 ch = (Py_UCS4)((w & 0x0F) << 12 | (w >> 2 & 0xFC0)          \
                               | (w >> 16 & 0x3F));                         \
        if (UNLIKELY(ch < 0x800 || (ch & 0xF800) == 0xD800)) {              \
            return NULL;                /* overlong, surrogate */           \
        }                                                                   \
        *o++ = (TYPE)ch;                                                    \
        p += 3;                                                             \
        goto next;                                                          \
    }                                                                       \
four:                                                                       \
    while ((w & REPEAT2(0xC0C0C0F8)) == REPEAT2(0x808080F0)) {              \
        uint64_t y = (w & REPEAT2(0x07)) << 18 | (w & REPEAT2(0x3F00)) << 4 \
                     | (w >> 10 & REPEAT2(0xFC0))                           \
                     | (w >> 24 & REPEAT2(0x3F));                           \
        /* U+10000..U+10FFFF only: each lane minus 0x10000 is below        \
         * 0x100000 (a lane below 0x10000 borrows, setting high bits). */  \
        if (UNLIKELY((y - REPEAT2(0x10000)) & REPEAT2(0xFFF00000))) {       \
            return NULL;                                                    \
        }                                                                   \
        PUT2X32(o, y);                                                      \
        NEXT_IN_RUN(8, 2);                                              \
    }                                                                       \
    if ((w & 0xC0C0C0F8) != 0x808080F0) {                                   \
        if ((w & 0xF0) == 0xF0) {                                           \
            return NULL;                /* F8..FF, no continuation bytes */ \
        }                                                                   \
        goto dispatch;                                                      \
    }                                                                       \
    {                                                                       \
        Py_UCS4 ch = (Py_UCS4)((w & 0x07) << 18 | (w & 0x3F00) << 4         \
                               | (w >> 10 & 0xFC0) | (w >> 24 & 0x3F));     \
        if (UNLIKELY(ch - 0x10000 > 0xFFFFF)) {                             \
            return NULL;                /* overlong, beyond U+10FFFF */     \
        }                                                                   \
        *o++ = (TYPE)ch;                                                    \
        p += 4;                                                             \
        goto next;                                                          \
    }                                                                       \
invalid:                                                                    \
    return NULL;                                                            \
}

DEFINE_DECODER(decode_ucs1, Py_UCS1, 2, widen8_ucs1, put4x16_ucs1,
               put2x32_ucs1)
DEFINE_DECODER(decode_ucs2, Py_UCS2, 3, widen8_ucs2, put4x16_ucs2,
               put2x32_ucs2)
DEFINE_DECODER(decode_ucs4, Py_UCS4, 4, widen8_ucs4, put4x16_ucs4,
               put2x32_ucs4)

/* The vector stage (utf8_simd.c), where there is one: p becomes where it
 * stopped, or NULL. */
#if UTF8_SIMD
#  define SIMD_STAGE(SIMD, p, end, o)                                       \
    do {                                                                    \
        if ((end) - (p) >= 16) {                                            \
            (p) = SIMD((p), (end), &(o));                                   \
        }                                                                   \
    } while (0)
#else
#  define SIMD_STAGE(SIMD, p, end, o) ((void)0)
#endif

/* Decode all of s[0:n]: the vector stage if any, then one decoder: the
 * part from which 8 bytes can be read in place, then the last bytes from
 * a copy padded with 0xFF (neither ASCII nor a continuation byte, so a
 * sequence cut short by the end fails, and no 8-byte ASCII run can reach
 * into the padding). */
#define DECODE_ALL(SIMD, DECODER, TYPE, str, s, n, ok)                      \
    do {                                                                    \
        TYPE *o_ = (TYPE *)PyUnicode_DATA(str);                             \
        TYPE *o_end_ = o_ + PyUnicode_GET_LENGTH(str);                      \
        const unsigned char *p_ = s;                                        \
        const unsigned char *end_ = s + n;                                  \
        (ok) = 0;                                                           \
        SIMD_STAGE(SIMD, p_, end_, o_);                                     \
        if (p_ != NULL && end_ - p_ >= 8) {                                 \
            p_ = DECODER(p_, end_ - 7, &o_, o_end_);                        \
        }                                                                   \
        if (p_ != NULL) {                                                   \
            unsigned char pad_[16];                                         \
            Py_ssize_t rest_ = end_ - p_;                                   \
            memset(pad_, 0xFF, sizeof(pad_));                               \
            memcpy(pad_, p_, (size_t)rest_);                                \
            const unsigned char *q_ = DECODER(pad_, pad_ + rest_, &o_,      \
                                              o_end_);                      \
            (ok) = q_ == pad_ + rest_ && o_ == o_end_;                      \
        }                                                                   \
    } while (0)

PyObject *
utf8_decode_text(const unsigned char *s, Py_ssize_t n)
{
    int cls, ok;
    Py_ssize_t length = scan(s, n, &cls);
    PyObject *str;
    switch (cls) {
    case CLASS_ASCII:
        if (n <= 1) {
            return n == 0 ? PyUnicode_New(0, 0) : PyUnicode_FromOrdinal(s[0]);
        }
        str = PyUnicode_New(n, 127);
        if (str != NULL) {
            memcpy(PyUnicode_DATA(str), s, (size_t)n);
        }
        return str;
    case CLASS_UCS1:
        if (length == 1 && n == 2 && (s[0] == 0xC2 || s[0] == 0xC3)
            && (s[1] & 0xC0) == 0x80) {
            /* CPython's singleton for one Latin-1 character. */
            return PyUnicode_FromOrdinal((Py_UCS4)(s[0] & 0x1F) << 6
                                         | (s[1] & 0x3F));
        }
        str = PyUnicode_New(length, 0xFF);
        if (str == NULL) {
            return NULL;
        }
        DECODE_ALL(utf8_simd_ucs1, decode_ucs1, Py_UCS1, str, s, n, ok);
        break;
    case CLASS_UCS2:
        str = PyUnicode_New(length, 0xFFFF);
        if (str == NULL) {
            return NULL;
        }
        DECODE_ALL(utf8_simd_ucs2, decode_ucs2, Py_UCS2, str, s, n, ok);
        break;
    default:
        str = PyUnicode_New(length, 0x10FFFF);
        if (str == NULL) {
            return NULL;
        }
        DECODE_ALL(utf8_simd_ucs4, decode_ucs4, Py_UCS4, str, s, n, ok);
        break;
    }
    if (LIKELY(ok)) {
        return str;
    }
    Py_DECREF(str);
    return PyUnicode_DecodeUTF8((const char *)s, n, "surrogatepass");
}

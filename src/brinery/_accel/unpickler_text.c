/* brinery._accel: the text arguments of protocol 0 opcodes.
 *
 * INT, LONG, FLOAT, GET, PUT, STRING and UNICODE carry a line of text.
 * These functions give each line the meaning CPython's C unpickler gives
 * it (and brinery._unpickler's parse_* functions, which they mirror):
 * C stops reading at a NUL byte, INT is C's strtol in base 0 with a
 * fallback to int() for what strtol cannot take, FLOAT accepts exactly
 * what PyOS_string_to_double accepts as a prefix. Every `line` includes
 * its trailing newline.
 */
#include "unpickler.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The line as C code sees it: up to its first NUL, NUL-terminated. */
typedef struct {
    char *s;
    Py_ssize_t len;
    char small[128];
} c_string;

static int
c_string_make(c_string *cs, const char *line, Py_ssize_t len)
{
    const char *nul = memchr(line, '\0', (size_t)len);
    if (nul != NULL) {
        len = nul - line;
    }
    if (len < (Py_ssize_t)sizeof(cs->small)) {
        cs->s = cs->small;
    }
    else {
        cs->s = PyMem_Malloc((size_t)len + 1);
        if (cs->s == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    memcpy(cs->s, line, (size_t)len);
    cs->s[len] = '\0';
    cs->len = len;
    return 0;
}

static void
c_string_free(c_string *cs)
{
    if (cs->s != cs->small) {
        PyMem_Free(cs->s);
    }
}

static PyObject *
truncated(PyObject *error)
{
    PyErr_SetString(error, "pickle data was truncated");
    return NULL;
}

static int is_c_space(char c);

/* int(text, base) with the error C's PyLong_FromString(s, NULL, base)
 * raises in the unpickler: the base it settled on and the repr of the
 * text (200 bytes at most, strict UTF-8, so undecodable bytes raise
 * UnicodeDecodeError). */
static PyObject *
int_of_c_string(const c_string *cs, int base)
{
    PyObject *res = PyLong_FromString(cs->s, NULL, base);
    if (res != NULL || !PyErr_ExceptionMatches(PyExc_ValueError)) {
        return res;
    }
    PyErr_Clear();
    PyObject *text = PyUnicode_DecodeUTF8(cs->s, Py_MIN(cs->len, 200), NULL);
    if (text == NULL) {
        return NULL;
    }
    if (base == 0) {
        const char *digits = cs->s;
        while (is_c_space(*digits)) {
            digits++;
        }
        if (*digits == '+' || *digits == '-') {
            digits++;
        }
        if (digits[0] != '0') {
            base = 10;
        }
        else if (digits[1] == 'x' || digits[1] == 'X') {
            base = 16;
        }
        else if (digits[1] == 'o' || digits[1] == 'O') {
            base = 8;
        }
        else if (digits[1] == 'b' || digits[1] == 'B') {
            base = 2;
        }
    }
    PyObject *repr = PyObject_Repr(text);
    Py_DECREF(text);
    if (repr == NULL) {
        return NULL;
    }
    PyObject *shown = PyUnicode_Substring(repr, 0, 200);
    Py_DECREF(repr);
    if (shown == NULL) {
        return NULL;
    }
    PyErr_Format(PyExc_ValueError, "invalid literal for int() with base %d: %U",
                 base, shown);
    Py_DECREF(shown);
    return NULL;
}

static int
is_c_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f'
           || c == '\r';
}

static int
digit_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return 99;
}

/* C's strtol(s, &end, 0) on a long of 64 bits: sets *value and *end
 * (the index where parsing stopped; 0 when there were no digits) and
 * returns 1 on overflow. */
static int
c_strtol(const char *s, long long *value, Py_ssize_t *end)
{
    Py_ssize_t i = 0;
    int negative = 0, base = 10, overflow = 0;
    unsigned long long magnitude = 0;
    const unsigned long long limit = (unsigned long long)LLONG_MAX + 1;

    while (is_c_space(s[i])) {
        i++;
    }
    if (s[i] == '+' || s[i] == '-') {
        negative = s[i] == '-';
        i++;
    }
    if (s[i] == '0') {
        if ((s[i + 1] == 'x' || s[i + 1] == 'X')
            && digit_value(s[i + 2]) < 16) {
            base = 16;
            i += 2;
        }
        else {
            base = 8;
        }
    }
    Py_ssize_t start = i;
    for (int d; (d = digit_value(s[i])) < base; i++) {
        if (magnitude > (limit - (unsigned long long)d) / base) {
            overflow = 1;
        }
        else {
            magnitude = magnitude * base + (unsigned long long)d;
        }
    }
    if (i == start) {
        *value = 0;
        *end = 0;
        return 0;
    }
    if (!negative && magnitude == limit) {
        overflow = 1;
    }
    *end = i;
    if (overflow) {
        *value = 0;
        return 1;
    }
    *value = negative ? (long long)(0 - magnitude) : (long long)magnitude;
    return 0;
}

/* Whether s[0:n] is 1 to 18 decimal digits (which cannot overflow);
 * sets *value when it is. The common case of INT, GET and PUT. */
static int
decimal_digits(const char *s, Py_ssize_t n, long long *value)
{
    if (n < 1 || n > 18) {
        return 0;
    }
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int d = (unsigned int)(unsigned char)s[i] - '0';
        if (d > 9) {
            return 0;
        }
        v = v * 10 + d;
    }
    *value = v;
    return 1;
}

/* The INT argument Python writes: an optional minus sign, decimal digits
 * without a leading zero (strtol reads "010" as octal), the newline. Sets
 * *value and returns 1 for those, else returns 0. */
static int
plain_decimal_int(const char *line, Py_ssize_t len, long long *value)
{
    Py_ssize_t sign = line[0] == '-', digits = len - 1 - sign;
    if (line[len - 1] != '\n' || (line[sign] == '0' && digits > 1)
        || !decimal_digits(line + sign, digits, value)) {
        return 0;
    }
    if (sign) {
        *value = -*value;
    }
    return 1;
}

PyObject *
text_parse_int(PyObject *error, const char *line, Py_ssize_t len)
{
    c_string cs;
    long long value;
    Py_ssize_t end;
    PyObject *res;

    if (len < 2) {
        return truncated(error);
    }
    if (plain_decimal_int(line, len, &value)) {
        if (len == 3 && (value == 0 || value == 1)) {
            return PyBool_FromLong((long)value);    /* "-0" is False */
        }
        return PyLong_FromLongLong(value);
    }
    if (len == 3 && line[0] == '0' && (line[1] == '0' || line[1] == '1')
        && line[2] == '\n') {
        return PyBool_FromLong(line[1] == '1');     /* I00, I01 */
    }
    if (c_string_make(&cs, line, len) < 0) {
        return NULL;
    }
    int overflow = c_strtol(cs.s, &value, &end);
    if (overflow || (cs.s[end] != '\n' && cs.s[end] != '\0')) {
        /* Something strtol cannot read: maybe a long written as INT. */
        res = PyLong_FromString(cs.s, NULL, 0);
        if (res == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_SetString(PyExc_ValueError,
                            "could not convert string to int");
        }
    }
    else if (len == 3 && (value == 0 || value == 1)) {
        res = PyBool_FromLong((long)value);  /* Python 2.2: I00 / I01 */
    }
    else {
        res = PyLong_FromLongLong(value);
    }
    c_string_free(&cs);
    return res;
}

PyObject *
text_parse_long(PyObject *error, const char *line, Py_ssize_t len)
{
    c_string cs;

    if (len < 2) {
        return truncated(error);
    }
    if (line[len - 2] == 'L') {
        len -= 2;
    }
    if (c_string_make(&cs, line, len) < 0) {
        return NULL;
    }
    PyObject *res = int_of_c_string(&cs, 0);
    c_string_free(&cs);
    return res;
}

static int
ascii_equal_ci(const char *s, const char *word)
{
    for (; *word; s++, word++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != *word) {
            return 0;
        }
    }
    return 1;
}

static Py_ssize_t
count_digits(const char *s)
{
    Py_ssize_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        n++;
    }
    return n;
}

/* Length of the longest prefix of s that is a float literal:
 * [+-]?(inf(inity)?|nan|(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?), ignoring
 * case; 0 when there is none. */
static Py_ssize_t
float_prefix(const char *s)
{
    Py_ssize_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;

    if (ascii_equal_ci(s + i, "inf")) {
        i += 3;
        if (ascii_equal_ci(s + i, "inity")) {
            i += 5;
        }
        return i;
    }
    if (ascii_equal_ci(s + i, "nan")) {
        return i + 3;
    }
    Py_ssize_t digits = count_digits(s + i);
    if (digits > 0) {
        i += digits;
        if (s[i] == '.') {
            i += 1 + count_digits(s + i + 1);
        }
    }
    else if (s[i] == '.' && count_digits(s + i + 1) > 0) {
        i += 1 + count_digits(s + i + 1);
    }
    else {
        return 0;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        Py_ssize_t j = i + 1;
        if (s[j] == '+' || s[j] == '-') {
            j++;
        }
        Py_ssize_t exp_digits = count_digits(s + j);
        if (exp_digits > 0) {
            i = j + exp_digits;
        }
    }
    return i;
}

/* An error about a FLOAT argument, which it shows quoted as C's "%.200s"
 * does: 200 bytes decoded as UTF-8 with replacement. */
static void
float_error(PyObject *type, const char *format, const c_string *cs)
{
    PyObject *text = PyUnicode_DecodeUTF8(cs->s, Py_MIN(cs->len, 200),
                                          "replace");
    if (text != NULL) {
        PyErr_Format(type, format, text);
        Py_DECREF(text);
    }
}

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0 && DBL_MANT_DIG == 53
/* Powers of ten that are exact doubles: 5**22 < 2**53 is the last. */
static const double exact_powers_of_ten[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The FLOAT argument as repr() writes most of them: [-]digits[.digits]
 * [e[+-]digits], the newline, with a decimal significand m <= 2**53 and
 * a power of ten 10**e with |e| <= 22. Then m and 10**|e| are exact
 * doubles and one IEEE multiplication or division, correctly rounded,
 * is the correctly rounded value of the text (Clinger's fast path),
 * what PyOS_string_to_double returns. Sets *value and returns 1 for
 * those, 0 for anything else. Only where double arithmetic is IEEE
 * binary64 without extended precision (FLT_EVAL_METHOD 0). */
static int
plain_decimal_float(const char *line, Py_ssize_t len, double *value)
{
    const char *p = line, *end = line + len - 1;     /* at the newline */
    int negative = *p == '-';
    uint64_t m = 0;
    int digits = 0, exponent = 0;

    p += negative;
    const char *start = p;
    while (p < end && (unsigned int)(*p - '0') <= 9) {
        m = m * 10 + (unsigned int)(*p++ - '0');
    }
    digits = (int)(p - start);
    if (p < end && *p == '.') {
        const char *fraction = ++p;
        while (p < end && (unsigned int)(*p - '0') <= 9) {
            m = m * 10 + (unsigned int)(*p++ - '0');
        }
        exponent = -(int)(p - fraction);
        digits -= exponent;
    }
    /* 19 digits cannot overflow m; at least one, as float() wants. */
    if (digits == 0 || digits > 19) {
        return 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int e_negative = 0, e = 0;
        p++;
        if (p < end && (*p == '-' || *p == '+')) {
            e_negative = *p++ == '-';
        }
        const char *e_start = p;
        while (p < end && (unsigned int)(*p - '0') <= 9 && p - e_start < 4) {
            e = e * 10 + (*p++ - '0');
        }
        if (p == e_start) {
            return 0;
        }
        exponent += e_negative ? -e : e;
    }
    if (p != end || *end != '\n' || m > (UINT64_C(1) << 53)
        || exponent < -22 || exponent > 22) {
        return 0;
    }
    double d = (double)m;
    d = exponent < 0 ? d / exact_powers_of_ten[-exponent]
                     : d * exact_powers_of_ten[exponent];
    *value = negative ? -d : d;
    return 1;
}
#else
static int
plain_decimal_float(const char *line, Py_ssize_t len, double *value)
{
    (void)line, (void)len, (void)value;
    return 0;
}
#endif

PyObject *
text_parse_float(PyObject *error, const char *line, Py_ssize_t len)
{
    c_string cs;
    PyObject *res = NULL;
    double fast;

    if (len < 2) {
        return truncated(error);
    }
    if (plain_decimal_float(line, len, &fast)) {
        return PyFloat_FromDouble(fast);
    }
    if (c_string_make(&cs, line, len) < 0) {
        return NULL;
    }
    Py_ssize_t n = float_prefix(cs.s);
    if (n == 0) {
        float_error(PyExc_ValueError, "could not convert string to float: '%U'",
                    &cs);
        goto done;
    }
    char saved = cs.s[n];
    cs.s[n] = '\0';
    double value = PyOS_string_to_double(cs.s, NULL, NULL);
    int has_n = strchr(cs.s, 'n') != NULL || strchr(cs.s, 'N') != NULL;
    cs.s[n] = saved;
    if (value == -1.0 && PyErr_Occurred()) {
        goto done;
    }
    if (isinf(value) && !has_n) {
        float_error(PyExc_OverflowError,
                    "value too large to convert to float: '%U'", &cs);
        goto done;
    }
    if (saved != '\n' && saved != '\0') {
        PyErr_SetString(PyExc_ValueError, "could not convert string to float");
        goto done;
    }
    res = PyFloat_FromDouble(value);
done:
    c_string_free(&cs);
    return res;
}

int
text_parse_memo_index(PyObject *error, const char *line, Py_ssize_t len,
                      Py_ssize_t *index, PyObject **as_int)
{
    c_string cs;

    *as_int = NULL;
    if (len < 2) {
        truncated(error);
        return -1;
    }
    /* The common case: up to 18 decimal digits and the newline. */
    long long value;
    if (decimal_digits(line, len - 1, &value) && value <= PY_SSIZE_T_MAX) {
        *index = (Py_ssize_t)value;
        return 0;
    }
    if (c_string_make(&cs, line, len) < 0) {
        return -1;
    }
    PyObject *res = int_of_c_string(&cs, 10);
    c_string_free(&cs);
    if (res == NULL) {
        return -1;
    }
    *as_int = res;
    return 0;
}

PyObject *
text_decode_unicode(PyObject *error, const char *line, Py_ssize_t len)
{
    /* Not through the codec registry, which adds a note on 3.13: the
     * error is the one CPython's C unpickler raises. */
    return PyUnicode_DecodeRawUnicodeEscape(line, len - 1, NULL);
}

PyObject *
text_decode_string(PyObject *error, const char *line, Py_ssize_t len)
{
    Py_ssize_t n = len - 1;         /* without the newline */
    if (n < 2 || line[0] != line[n - 1]
        || (line[0] != '\'' && line[0] != '"')) {
        PyErr_SetString(error, "the STRING opcode argument must be quoted");
        return NULL;
    }
    return PyBytes_DecodeEscape(line + 1, n - 2, NULL, 0, NULL);
}

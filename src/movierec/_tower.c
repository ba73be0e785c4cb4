/* movierec._tower: CPU kernels for NCF (wrapped by movierec/fused.py).
 *
 * tower2 — fused scoring of a two-layer MLP tower against every item:
 *
 *     out[u, i] += sum_j w[j] * relu(c2[j] + sum_k w2[k, j] * relu(a[u, k] + b[i, k]))
 *
 * `a` is the first layer's user half (bias included), `b` its item half, `w2`/`c2` the second
 * layer, `w` the predict weights on the tower's output. Unfused, every (user, item) pair
 * writes its h1-wide first activation to memory and reads it back for a matrix product.
 * Here, for one user, a tile of TILE items gets its first activations in a small buffer
 * that stays in L1, then a register-blocked product (TILE items x 2 vectors of outputs
 * in registers, the second layer's row k loaded once per k for all TILE items) gives the
 * second layer, and its ReLU and dot with `w` finish each item's score in registers.
 *
 * Two variants, chosen at run time: AVX-512 (16-float vectors) and AVX2 (8); `lanes()` says
 * which one this CPU gets, 0 when neither (the caller then keeps the torch path). The loops
 * release the GIL, so Python threads scoring disjoint user or item ranges run in parallel.
 *
 * tower2q — the same on 16-bit integers (screening; the caller bounds the error).
 * screen — settles rows of approximate scores against per-row thresholds (ranking).
 * rows, add_rows — embedding lookups and their dense gradients (training).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define MAX_H1 256          /* widest first layer taken (the activation buffer's size) */
#define ITEMS_PER_SWEEP 960 /* item rows stay in L2 while a sweep runs over the users */

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define HAVE_KERNELS 1
#include <immintrin.h>

static inline __attribute__((target("avx2,fma"))) float hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

/* The walk both kernels share: sweeps of SWEEP items (their rows stay in L2 while the
 * users go by), then for each user tiles of TILE items. The body (the variadic argument)
 * sees the user's first-layer half `au` (of type ELEM), the tile's first item `i` and its
 * `live` items, and adds each item's score into `score`, which goes into `out`. */
#define FOR_TILES(ELEM, SWEEP, TILE, ...)                                                     \
    for (Py_ssize_t s0 = i0; s0 < i1; s0 += SWEEP) {                                          \
        Py_ssize_t s1 = s0 + SWEEP < i1 ? s0 + SWEEP : i1;                                    \
        for (Py_ssize_t u = u0; u < u1; u++) {                                                \
            const ELEM *au = a + u * h1;                                                      \
            for (Py_ssize_t i = s0; i < s1; i += TILE) {                                      \
                Py_ssize_t live = s1 - i < TILE ? s1 - i : TILE;                              \
                float score[TILE] = {0};                                                      \
                __VA_ARGS__                                                                   \
                float *ou = out + u * n + i;                                                  \
                for (Py_ssize_t m = 0; m < live; m++) ou[m] += score[m];                      \
            }                                                                                 \
        }                                                                                     \
    }

/* L floats per vector, TILE items per register block (2 * TILE accumulators) */
#define KERNEL(NAME, TARGET, L, TILE, MAX, HSUM)                                              \
    typedef float NAME##_vf                                                                   \
        __attribute__((vector_size(L * sizeof(float)), aligned(4), may_alias));               \
    __attribute__((target(TARGET))) static void NAME(                                         \
        Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t n,             \
        Py_ssize_t h1, Py_ssize_t h2, const float *a, const float *b, const float *w2,        \
        const float *c2, const float *w, float *out)                                          \
    {                                                                                         \
        typedef NAME##_vf vf;                                                                 \
        const vf zero = {0};                                                                  \
        float hbuf[TILE * MAX_H1] __attribute__((aligned(64)));                               \
        FOR_TILES(float, ITEMS_PER_SWEEP, TILE,                                               \
                    for (Py_ssize_t m = 0; m < TILE; m++) { /* first layer, into L1 */        \
                        vf *hm = (vf *)(hbuf + m * h1);                                       \
                        const float *bm = b + (i + m) * h1;                                   \
                        for (Py_ssize_t k = 0; k < h1; k += L)                                \
                            hm[k / L] = m < live ? (vf)MAX(*(const vf *)(bm + k) +            \
                                                               *(const vf *)(au + k),         \
                                                           zero)                              \
                                                 : zero;                                      \
                    }                                                                         \
                    for (Py_ssize_t j0 = 0; j0 < h2; j0 += 2 * L) {                           \
                        vf z0[TILE], z1[TILE];                                                \
                        const vf c0 = *(const vf *)(c2 + j0), c1 = *(const vf *)(c2 + j0 + L); \
                        _Pragma("GCC unroll 16") for (int m = 0; m < TILE; m++) {             \
                            z0[m] = c0;                                                       \
                            z1[m] = c1;                                                       \
                        }                                                                     \
                        const float *wk = w2 + j0;                                            \
                        for (Py_ssize_t k = 0; k < h1; k++, wk += h2) {                       \
                            const vf w0 = *(const vf *)wk, w1 = *(const vf *)(wk + L);        \
                            _Pragma("GCC unroll 16") for (int m = 0; m < TILE; m++) {         \
                                const float hv = hbuf[m * h1 + k];                            \
                                z0[m] += hv * w0;                                             \
                                z1[m] += hv * w1;                                             \
                            }                                                                 \
                        }                                                                     \
                        const vf v0 = *(const vf *)(w + j0), v1 = *(const vf *)(w + j0 + L);  \
                        _Pragma("GCC unroll 16") for (int m = 0; m < TILE; m++) score[m] +=   \
                            HSUM((vf)MAX(z0[m], zero) * v0 + (vf)MAX(z1[m], zero) * v1);      \
                    })                                                                        \
    }

KERNEL(tower2_avx512, "avx512f,fma", 16, 12, _mm512_max_ps, _mm512_reduce_add_ps)
KERNEL(tower2_avx2, "avx2,fma", 8, 6, _mm256_max_ps, hsum256)

/* The same tower on 16-bit integers, for screening: a and b quantized on one scale per
 * first-layer unit (so their sum needs no rescaling), w2 on one scale per second-layer
 * unit, stored as pairs of units k, k+1 side by side (one 32-bit lane), so one multiply-add
 * of 16-bit pairs (VNNI's vpdpwssd, or vpmaddwd + vpaddd) does two of the fp32 kernel's
 * multiply-adds. The caller keeps every sum inside 32 bits and knows the error bound. */
#define KERNEL_Q(NAME, TARGET, L, TILE, VI, LOADI, ADD16, MAX16, ZEROI, DP, SET1, CVT, FMA,  \
                 MAXPS, ZEROPS, MULPS, LOADPS, HSUM)                                         \
    __attribute__((target(TARGET))) static void NAME(                                         \
        Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t n,             \
        Py_ssize_t h1, Py_ssize_t h2, const int16_t *a, const int16_t *b, const int16_t *w2,  \
        const float *scale, const float *c2, const float *w, float *out)                      \
    {                                                                                         \
        int16_t hbuf[TILE * MAX_H1] __attribute__((aligned(64)));                             \
        const Py_ssize_t per = 2 * L; /* 16-bit values per vector */                          \
        FOR_TILES(int16_t, 2 * ITEMS_PER_SWEEP, TILE,                                         \
                    for (Py_ssize_t m = 0; m < TILE; m++) { /* first layer, into L1 */        \
                        VI *hm = (VI *)(hbuf + m * h1);                                       \
                        const int16_t *bm = b + (i + (m < live ? m : 0)) * h1;                \
                        for (Py_ssize_t k = 0; k < h1; k += per)                              \
                            hm[k / per] =                                                     \
                                MAX16(ADD16(LOADI(bm + k), LOADI(au + k)), ZEROI());          \
                    }                                                                         \
                    for (Py_ssize_t j0 = 0; j0 < h2; j0 += 2 * L) {                           \
                        VI z0[TILE], z1[TILE];                                                \
                        _Pragma("GCC unroll 16") for (int m = 0; m < TILE; m++) {             \
                            z0[m] = ZEROI();                                                  \
                            z1[m] = ZEROI();                                                  \
                        }                                                                     \
                        const int16_t *wk = w2 + 2 * j0;                                      \
                        for (Py_ssize_t k = 0; k < h1; k += 2, wk += 2 * h2) {                \
                            const VI w0 = LOADI(wk), w1 = LOADI(wk + 2 * L);                  \
                            _Pragma("GCC unroll 16") for (int m = 0; m < TILE; m++) {         \
                                int32_t pair;                                                 \
                                memcpy(&pair, hbuf + m * h1 + k, sizeof pair);                \
                                const VI hv = SET1(pair);                                     \
                                z0[m] = DP(z0[m], w0, hv);                                    \
                                z1[m] = DP(z1[m], w1, hv);                                    \
                            }                                                                 \
                        }                                                                     \
                        const float *sj = scale + j0, *cj = c2 + j0, *wj = w + j0;            \
                        _Pragma("GCC unroll 16") for (int m = 0; m < TILE; m++) {             \
                            score[m] += HSUM(                                                 \
                                MULPS(MAXPS(FMA(CVT(z0[m]), LOADPS(sj), LOADPS(cj)), ZEROPS()), \
                                      LOADPS(wj)) +                                           \
                                MULPS(MAXPS(FMA(CVT(z1[m]), LOADPS(sj + L), LOADPS(cj + L)),  \
                                            ZEROPS()),                                        \
                                      LOADPS(wj + L)));                                       \
                        }                                                                     \
                    })                                                                        \
    }

#define LOADI512(p) _mm512_loadu_si512((const void *)(p))
static inline __attribute__((target("avx512f,avx512vnni"))) __m512i dp_vnni512(__m512i acc,
                                                                         __m512i x, __m512i y)
{
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(y));
    return acc;
}
#define DP_VNNI512(acc, x, y) dp_vnni512(acc, x, y)
static inline __attribute__((target("avx512f,avx512bw"))) __m512i dp_bw512(__m512i acc, __m512i x,
                                                                    __m512i y)
{
    __m512i t;
    __asm__("vpmaddwd %2, %3, %1\n\tvpaddd %1, %0, %0" : "+v"(acc), "=&v"(t) : "v"(x), "v"(y));
    return acc;
}
#define DP_BW512(acc, x, y) dp_bw512(acc, x, y)
#define LOADI256(p) _mm256_loadu_si256((const __m256i *)(p))
static inline __attribute__((target("avx2"))) __m256i dp_avx2(__m256i acc, __m256i x, __m256i y)
{
    __m256i t;
    __asm__("vpmaddwd %2, %3, %1\n\tvpaddd %1, %0, %0" : "+x"(acc), "=&x"(t) : "x"(x), "x"(y));
    return acc;
}
#define DP_AVX2(acc, x, y) dp_avx2(acc, x, y)

KERNEL_Q(tower2q_vnni, "avx512f,avx512bw,avx512vnni,fma", 16, 12, __m512i, LOADI512,
         _mm512_add_epi16, _mm512_max_epi16, _mm512_setzero_si512, DP_VNNI512, _mm512_set1_epi32,
         _mm512_cvtepi32_ps, _mm512_fmadd_ps, _mm512_max_ps, _mm512_setzero_ps, _mm512_mul_ps,
         _mm512_loadu_ps, _mm512_reduce_add_ps)
KERNEL_Q(tower2q_avx512, "avx512f,avx512bw,fma", 16, 12, __m512i, LOADI512, _mm512_add_epi16,
         _mm512_max_epi16, _mm512_setzero_si512, DP_BW512, _mm512_set1_epi32, _mm512_cvtepi32_ps,
         _mm512_fmadd_ps, _mm512_max_ps, _mm512_setzero_ps, _mm512_mul_ps, _mm512_loadu_ps,
         _mm512_reduce_add_ps)
KERNEL_Q(tower2q_avx2, "avx2,fma", 8, 6, __m256i, LOADI256, _mm256_add_epi16, _mm256_max_epi16,
         _mm256_setzero_si256, DP_AVX2, _mm256_set1_epi32, _mm256_cvtepi32_ps, _mm256_fmadd_ps,
         _mm256_max_ps, _mm256_setzero_ps, _mm256_mul_ps, _mm256_loadu_ps, hsum256)

typedef void (*kernel_fn)(Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t, const float *, const float *, const float *,
                          const float *, const float *, float *);

static int best_lanes(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("fma"))
        return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
    return 0;
}
#else
#define HAVE_KERNELS 0
static int best_lanes(void) { return 0; }
#endif

static PyObject *lanes(PyObject *self, PyObject *args)
{
    return PyLong_FromLong(best_lanes());
}

static int check_bytes(Py_buffer *buf, Py_ssize_t bytes, const char *name)
{
    if (buf->len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, needs %zd", name, buf->len, bytes);
        return -1;
    }
    return 0;
}

static int check_size(Py_buffer *buf, Py_ssize_t floats, const char *name)
{
    return check_bytes(buf, floats * (Py_ssize_t)sizeof(float), name);
}

/* PyBuffer_Release on each buffer of a NULL-terminated list */
static void release_all(Py_buffer **bufs)
{
    for (; *bufs; bufs++) PyBuffer_Release(*bufs);
}

/* tower2(lanes, u0, u1, i0, i1, n, h1, h2, a, b, w2, c2, w, out): lanes 16 (AVX-512) or
 * 8 (AVX2), at most lanes(); every buffer C-contiguous float32; a (>= u1, h1), b (n, h1),
 * w2 (h1, h2), c2 (h2), w (h2), out (>= u1, n); h1 <= MAX_H1 and a multiple of lanes, h2 a
 * multiple of 2 * lanes. */
static PyObject *tower2(PyObject *self, PyObject *args)
{
    int L;
    Py_ssize_t u0, u1, i0, i1, n, h1, h2;
    Py_buffer a, b, w2, c2, w, out;
    if (!PyArg_ParseTuple(args, "innnnnnny*y*y*y*y*w*", &L, &u0, &u1, &i0, &i1, &n, &h1, &h2,
                          &a, &b, &w2, &c2, &w, &out))
        return NULL;
    PyObject *result = NULL;
    if ((L != 8 && L != 16) || L > best_lanes()) {
        PyErr_Format(PyExc_ValueError, "no fused kernel with %d lanes on this CPU", L);
    } else if (u0 < 0 || u0 > u1 || i0 < 0 || i0 > i1 || i1 > n || h1 < 1 || h1 > MAX_H1 ||
               h1 % L || h2 < 1 || h2 % (2 * L)) {
        PyErr_SetString(PyExc_ValueError, "tower2: bad ranges or shapes");
    } else if (check_size(&a, u1 * h1, "a") == 0 && check_size(&b, n * h1, "b") == 0 &&
               check_size(&w2, h1 * h2, "w2") == 0 && check_size(&c2, h2, "c2") == 0 &&
               check_size(&w, h2, "w") == 0 && check_size(&out, u1 * n, "out") == 0) {
#if HAVE_KERNELS
        kernel_fn f = L == 16 ? tower2_avx512 : tower2_avx2;
        Py_BEGIN_ALLOW_THREADS
        f(u0, u1, i0, i1, n, h1, h2, a.buf, b.buf, w2.buf, c2.buf, w.buf, out.buf);
        Py_END_ALLOW_THREADS
#endif
        result = Py_None;
        Py_INCREF(result);
    }
    release_all((Py_buffer *[]){&a, &b, &w2, &c2, &w, &out, NULL});
    return result;
}

typedef void (*qkernel_fn)(Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                           Py_ssize_t, Py_ssize_t, const int16_t *, const int16_t *,
                           const int16_t *, const float *, const float *, const float *, float *);

/* tower2q(lanes, u0, u1, i0, i1, n, h1, h2, a, b, w2, scale, c2, w, out[, vnni]): as
 * tower2, on int16 a (>= u1, h1), b (n, h1) and w2 (h1 / 2, h2, 2), float32 scale, c2, w
 * (h2) and out; h1 a multiple of 2 * lanes, h2 of 2 * lanes. With 16 lanes, VNNI runs
 * where the CPU has it unless vnni is False (tests reach the other variant so). */
static PyObject *tower2q(PyObject *self, PyObject *args)
{
    int L;
    Py_ssize_t u0, u1, i0, i1, n, h1, h2;
    Py_buffer a, b, w2, scale, c2, w, out;
    int vnni = 1;
    if (!PyArg_ParseTuple(args, "innnnnnny*y*y*y*y*y*w*|p", &L, &u0, &u1, &i0, &i1, &n, &h1,
                          &h2, &a, &b, &w2, &scale, &c2, &w, &out, &vnni))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t f = sizeof(float), q = sizeof(int16_t);
    if ((L != 8 && L != 16) || L > best_lanes()) {
        PyErr_Format(PyExc_ValueError, "no fused kernel with %d lanes on this CPU", L);
    } else if (u0 < 0 || u0 > u1 || i0 < 0 || i0 > i1 || i1 > n || h1 < 1 || h1 > MAX_H1 ||
               h1 % (2 * L) || h2 < 1 || h2 % (2 * L)) {
        PyErr_SetString(PyExc_ValueError, "tower2q: bad ranges or shapes");
    } else if (check_bytes(&a, u1 * h1 * q, "a") == 0 && check_bytes(&b, n * h1 * q, "b") == 0 &&
               check_bytes(&w2, h1 * h2 * q, "w2") == 0 &&
               check_bytes(&scale, h2 * f, "scale") == 0 && check_bytes(&c2, h2 * f, "c2") == 0 &&
               check_bytes(&w, h2 * f, "w") == 0 && check_bytes(&out, u1 * n * f, "out") == 0) {
#if HAVE_KERNELS
        qkernel_fn k = L == 8 ? tower2q_avx2
                       : vnni && __builtin_cpu_supports("avx512vnni") ? tower2q_vnni
                                                              : tower2q_avx512;
        Py_BEGIN_ALLOW_THREADS
        k(u0, u1, i0, i1, n, h1, h2, a.buf, b.buf, w2.buf, scale.buf, c2.buf, w.buf, out.buf);
        Py_END_ALLOW_THREADS
#endif
        result = Py_None;
        Py_INCREF(result);
    }
    release_all((Py_buffer *[]){&a, &b, &w2, &scale, &c2, &w, &out, NULL});
    return result;
}

/* Embedding rows for training on a CPU: torch's gather and, above all, its dense embedding
 * backward cost ~10x a plain loop at NCF's sizes (a few thousand rows of 8 to 64 floats).
 * rows(table, n, d, idx, out): out[r] = table[idx[r]]; add_rows(grad, n, d, idx, src):
 * grad[idx[r]] += src[r], in the order of r. Float32 buffers, int64 indices, checked. */
static int check_rows(Py_buffer *table, Py_ssize_t n, Py_ssize_t d, Py_buffer *idx,
                      Py_buffer *rows)
{
    Py_ssize_t count = idx->len / (Py_ssize_t)sizeof(int64_t);
    if (n < 0 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "rows: bad table shape");
        return -1;
    }
    if (check_bytes(table, n * d * (Py_ssize_t)sizeof(float), "table") ||
        check_bytes(rows, count * d * (Py_ssize_t)sizeof(float), "rows"))
        return -1;
    const int64_t *ix = idx->buf;
    for (Py_ssize_t r = 0; r < count; r++)
        if (ix[r] < 0 || ix[r] >= n) {
            PyErr_Format(PyExc_IndexError, "index %lld is out of range [0, %zd)",
                         (long long)ix[r], n);
            return -1;
        }
    return 0;
}

static PyObject *rows_op(PyObject *args, int add)
{
    Py_buffer table, idx, rows;
    Py_ssize_t n, d;
    const char *fmt = add ? "w*nny*y*" : "y*nny*w*";
    if (!PyArg_ParseTuple(args, fmt, &table, &n, &d, &idx, &rows)) return NULL;
    PyObject *result = NULL;
    if (check_rows(&table, n, d, &idx, &rows) == 0) {
        Py_ssize_t count = idx.len / (Py_ssize_t)sizeof(int64_t);
        const int64_t *ix = idx.buf;
        float *t = table.buf, *x = rows.buf;
        Py_BEGIN_ALLOW_THREADS
        if (add) {
            for (Py_ssize_t r = 0; r < count; r++) {
                float *dst = t + ix[r] * d;
                const float *src = x + r * d;
                for (Py_ssize_t k = 0; k < d; k++) dst[k] += src[k];
            }
        } else {
            for (Py_ssize_t r = 0; r < count; r++)
                memcpy(x + r * d, t + ix[r] * d, (size_t)d * sizeof(float));
        }
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    release_all((Py_buffer *[]){&table, &idx, &rows, NULL});
    return result;
}

static PyObject *rows(PyObject *self, PyObject *args) { return rows_op(args, 0); }
static PyObject *add_rows(PyObject *self, PyObject *args) { return rows_op(args, 1); }

/* screen(s, n, err_items, t, err_users, target, k, r0, r1, band, cand, below): rows r0..r1
 * of s (float32, n approximate scores a row, each within err_users[r] + err_items[i] of
 * its exact score) against the exact target scores t. below[r] (int64) counts the items
 * surely under t[r]; items that may be within reach of t[r] go to `band`, and items that
 * may be in the exact top-k to `cand`, both as flat r * n + item (int64) while the buffers
 * last. The row's target is neither counted nor banded, but competes for the top-k.
 * Returns the numbers of band and candidate items; more than a buffer holds means: call
 * again with a larger one. */
static Py_ssize_t screen_row(const float *row, Py_ssize_t n, Py_ssize_t r, const float *ei,
                             float t, float eu, Py_ssize_t target, int k, int64_t *band,
                             Py_ssize_t *nband, Py_ssize_t band_cap, int64_t *cand,
                             Py_ssize_t *ncand, Py_ssize_t cand_cap)
{
    float top[64]; /* the k largest finite lower bounds (less eu), descending */
    int have = 0;
    for (Py_ssize_t c = 0; c < n; c++) {
        float x = row[c];
        if (!(x > -INFINITY) || x == INFINITY) continue;
        x -= ei[c];
        if (have == k && !(x > top[k - 1])) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && top[j - 1] < x) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = x;
    }
    /* k items score at least top[k-1] - eu exactly: an item whose upper bound is lower
     * cannot be among the exact k best */
    const float floor = have == k ? top[k - 1] - 2 * eu : -INFINITY;
    const float lo = t - eu, hi = t + eu;
    Py_ssize_t below = 0;
    for (Py_ssize_t c = 0; c < n; c++) {
        const float x = row[c], e = ei[c];
        if (x + e >= floor && x > -INFINITY && x < INFINITY) {
            if (*ncand < cand_cap) cand[*ncand] = r * n + c;
            (*ncand)++;
        }
        if (c == target) continue;
        if (x + e < lo) below++;
        else if (x - e <= hi) {
            if (*nband < band_cap) band[*nband] = r * n + c;
            (*nband)++;
        }
    }
    return below;
}

static PyObject *screen(PyObject *self, PyObject *args)
{
    Py_buffer s, ei, t, eu, target, band, cand, below;
    Py_ssize_t n, r0, r1;
    int k;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*y*innw*w*w*", &s, &n, &ei, &t, &eu, &target, &k, &r0,
                          &r1, &band, &cand, &below))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t f = sizeof(float), q = sizeof(int64_t);
    if (n < 1 || k < 1 || k > 64 || k > n || r0 < 0 || r0 > r1) {
        PyErr_SetString(PyExc_ValueError, "screen: bad sizes");
    } else if (check_bytes(&s, r1 * n * f, "s") == 0 && check_bytes(&ei, n * f, "ei") == 0 &&
               check_bytes(&t, r1 * f, "t") == 0 && check_bytes(&eu, r1 * f, "eu") == 0 &&
               check_bytes(&target, r1 * q, "target") == 0 &&
               check_bytes(&below, r1 * q, "below") == 0) {
        Py_ssize_t nband = 0, ncand = 0;
        const float *sv = s.buf, *tv = t.buf, *uv = eu.buf;
        const int64_t *gv = target.buf;
        int64_t *bv = below.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = r0; r < r1; r++)
            bv[r] = screen_row(sv + r * n, n, r, ei.buf, tv[r], uv[r], gv[r], k, band.buf,
                               &nband, band.len / q, cand.buf, &ncand, cand.len / q);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("nn", nband, ncand);
    }
    release_all((Py_buffer *[]){&s, &ei, &t, &eu, &target, &band, &cand, &below, NULL});
    return result;
}

static PyMethodDef methods[] = {
    {"lanes", lanes, METH_NOARGS, "Floats per vector on this CPU; 0: no fused kernel."},
    {"tower2", tower2, METH_VARARGS, "Fused two-layer tower scores, added into out."},
    {"tower2q", tower2q, METH_VARARGS, "The same on 16-bit integers (screening scores)."},
    {"screen", screen, METH_VARARGS, "Settle a block of approximate score rows (ranking)."},
    {"rows", rows, METH_VARARGS, "out[r] = table[idx[r]] (embedding lookup)."},
    {"add_rows", add_rows, METH_VARARGS, "grad[idx[r]] += src[r] (embedding backward)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tower", NULL, -1, methods};

PyMODINIT_FUNC PyInit__tower(void) { return PyModule_Create(&module); }

/* Fused CPU scoring of a two-layer MLP tower against every item: movierec._tower.
 *
 *     out[u, i] += sum_j w[j] * relu(c2[j] + sum_k w2[k, j] * relu(a[u, k] + b[i, k]))
 *
 * `a` is the first layer's user half (bias included), `b` its item half, `w2`/`c2` the second
 * layer, `w` the predict weights on the tower's output. Unfused, every (user, item) pair
 * writes its h1-wide first activation to memory and reads it back for a matrix product;
 * here it lives in one vector register. Items go in blocks of LANES, packed as
 * (n_blocks, h1, LANES) so each block's activations are one contiguous read, and a block's
 * lanes are LANES different items: one FMA advances LANES pairs by one (k, j) term.
 *
 * Two variants, chosen at run time: AVX-512 (16 lanes) and AVX2 (8 lanes); `lanes()` says
 * which one this CPU gets, 0 when neither (the caller then keeps the torch path). The loop
 * releases the GIL, so Python threads scoring disjoint user or item ranges run in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define HAVE_KERNELS 1
#include <immintrin.h>

#define ITEMS_PER_SWEEP 1024 /* item blocks stay in L2 while a sweep runs over the users */

#define KERNEL(NAME, TARGET, L, MAX)                                                               \
    typedef float NAME##_vf                                                                   \
        __attribute__((vector_size(L * sizeof(float)), aligned(4), may_alias));               \
    __attribute__((target(TARGET))) static void NAME(                                         \
        Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t n,             \
        Py_ssize_t h1, Py_ssize_t h2, const float *a, const float *bp, const float *w2,       \
        const float *c2, const float *w, float *out)                                          \
    {                                                                                         \
        typedef NAME##_vf vf;                                                                 \
        const vf zero = {0};                                                                  \
        for (Py_ssize_t s0 = i0; s0 < i1; s0 += ITEMS_PER_SWEEP) {                            \
            Py_ssize_t s1 = s0 + ITEMS_PER_SWEEP < i1 ? s0 + ITEMS_PER_SWEEP : i1;            \
            for (Py_ssize_t u = u0; u < u1; u++) {                                            \
                const float *au = a + u * h1;                                                 \
                float *ou = out + u * n;                                                      \
                for (Py_ssize_t i = s0; i < s1; i += L) {                                     \
                    vf s = {0};                                                               \
                    for (Py_ssize_t j0 = 0; j0 < h2; j0 += L) {                               \
                        vf z[L];                                                              \
                        _Pragma("GCC unroll 16") for (int j = 0; j < L; j++) z[j] =           \
                            (vf){0} + c2[j0 + j];                                             \
                        const float *bk = bp + i * h1;                                        \
                        const float *wk = w2 + j0;                                            \
                        for (Py_ssize_t k = 0; k < h1; k++, bk += L, wk += h2) {              \
                            vf h = (vf)MAX(*(const vf *)bk + au[k], zero);                    \
                            _Pragma("GCC unroll 16") for (int j = 0; j < L; j++) z[j] +=      \
                                h * wk[j];                                                    \
                        }                                                                     \
                        _Pragma("GCC unroll 16") for (int j = 0; j < L; j++) s +=             \
                            (vf)MAX(z[j], zero) * w[j0 + j];                                  \
                    }                                                                         \
                    float tmp[L];                                                             \
                    Py_ssize_t m = n - i < L ? n - i : L;                                     \
                    memcpy(tmp, &s, sizeof tmp);                                              \
                    for (Py_ssize_t t = 0; t < m; t++) ou[i + t] += tmp[t];                   \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }

KERNEL(tower2_avx512, "avx512f,fma", 16, _mm512_max_ps)
KERNEL(tower2_avx2, "avx2,fma", 8, _mm256_max_ps)

typedef void (*kernel_fn)(Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t, const float *, const float *, const float *,
                          const float *, const float *, float *);

static int best_lanes(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return 16;
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

static int check_size(Py_buffer *buf, Py_ssize_t floats, const char *name)
{
    if (buf->len < floats * (Py_ssize_t)sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, needs %zd", name, buf->len,
                     floats * (Py_ssize_t)sizeof(float));
        return -1;
    }
    return 0;
}

/* tower2(lanes, u0, u1, i0, i1, n, h1, h2, a, bp, w2, c2, w, out): lanes 16 (AVX-512) or
 * 8 (AVX2), at most lanes(); every buffer C-contiguous float32; a (>= u1, h1),
 * bp (ceil(n / lanes), h1, lanes), w2 (h1, h2), c2 (h2), w (h2), out (>= u1, n); h2 and i0
 * multiples of lanes. */
static PyObject *tower2(PyObject *self, PyObject *args)
{
    int L;
    Py_ssize_t u0, u1, i0, i1, n, h1, h2;
    Py_buffer a, bp, w2, c2, w, out;
    if (!PyArg_ParseTuple(args, "innnnnnny*y*y*y*y*w*", &L, &u0, &u1, &i0, &i1, &n, &h1, &h2,
                          &a, &bp, &w2, &c2, &w, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t blocks = (L == 8 || L == 16) ? (n + L - 1) / L : 0;
    if ((L != 8 && L != 16) || L > best_lanes()) {
        PyErr_Format(PyExc_ValueError, "no fused kernel with %d lanes on this CPU", L);
    } else if (u0 < 0 || u0 > u1 || i0 < 0 || i0 > i1 || i1 > n || h1 < 1 || h2 < 1 ||
               h2 % L || i0 % L) {
        PyErr_SetString(PyExc_ValueError, "tower2: bad ranges or shapes");
    } else if (check_size(&a, u1 * h1, "a") == 0 && check_size(&bp, blocks * h1 * L, "bp") == 0 &&
               check_size(&w2, h1 * h2, "w2") == 0 && check_size(&c2, h2, "c2") == 0 &&
               check_size(&w, h2, "w") == 0 && check_size(&out, u1 * n, "out") == 0) {
#if HAVE_KERNELS
        kernel_fn f = L == 16 ? tower2_avx512 : tower2_avx2;
        Py_BEGIN_ALLOW_THREADS
        f(u0, u1, i0, i1, n, h1, h2, a.buf, bp.buf, w2.buf, c2.buf, w.buf, out.buf);
        Py_END_ALLOW_THREADS
#endif
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&bp);
    PyBuffer_Release(&w2);
    PyBuffer_Release(&c2);
    PyBuffer_Release(&w);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"lanes", lanes, METH_NOARGS, "Items per vector on this CPU; 0: no fused kernel."},
    {"tower2", tower2, METH_VARARGS, "Fused two-layer tower scores, added into out."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_tower", NULL, -1, methods};

PyMODINIT_FUNC PyInit__tower(void) { return PyModule_Create(&module); }

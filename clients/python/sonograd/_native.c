/* The CPU fast path of sonograd's Python client: the sums of squares of each step's
 * gradients, the compact datagram packed and sent, without the GIL. Built at install time
 * (setup.py) or on first use (sonograd/_build.py); without a C compiler the client measures in
 * Python instead.
 *
 * Measurer.submit(), on the training thread, reads every gradient where it lies, right after
 * the backward that wrote it (still in this core's cache), fills this step's datagrams and
 * hands them to a native thread of the lowest priority (SCHED_IDLE), which sends them: a send
 * through the loopback costs the calling thread as much as the read. The same thread watches
 * the socket for controls coming back from `sonograd listen` (waiting(), rearm()), so the
 * training thread makes no system call in a step but the one that wakes it.
 *
 * With background (submit's inline false), the thread also measures: submit() takes a
 * copy-on-write snapshot of every gradient (torch._lazy_clone: no data is copied unless
 * someone later writes to the gradient in place, e.g. clipping) that keeps those bytes alive
 * and unchanged. release() (after optimizer.step()) and the next submit() drop the snapshots
 * on the training thread.
 *
 * A step the thread has not started by the next submit() (no core was free) is measured or
 * sent there, and the next STARVED_STEPS steps within the call, controls included: nothing is
 * ever more than one step late. */

#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 4
/* Steps measured and sent within the call after the thread was found not to have measured
 * one (background): snapshots measured late cost more than measuring within the call. */
#define STARVED_STEPS 64
/* Steps whose controls this thread looks for itself after the thread was found not to have
 * sent one (it may not be watching the socket either). */
#define UNWATCHED_STEPS 8
/* Steps in a row the thread has not sent by the next call, after which the call sends them
 * itself for STARVED_STEPS steps (one core, or every core busy). */
#define MISSES 4

/* A job's life: PENDING (to measure and send: background) or READY (measured, to send), then
 * DONE (sent), then FREE (snapshots dropped). Only a thread holding send_mu measures or sends
 * a job, and always the oldest one waiting: the steps go out in order. */
enum { FREE = 0, PENDING = 1, DONE = 3, READY = 4 };
enum { K_ABSENT = 0, K_F32 = 1, K_F64 = 2, K_BF16 = 3, K_VALUE = 4 };
/* The tensor attributes read each step: properties (A_GRAD..A_IS_CPU), then methods. */
enum { A_GRAD, A_DTYPE, A_IS_CPU, A_IS_CONTIGUOUS, A_DATA_PTR, A_NUMEL, N_ATTRS };
static const char *const attr_name[N_ATTRS] = {"grad", "dtype", "is_cpu", "is_contiguous",
                                               "data_ptr", "numel"};

typedef struct {
    int state; /* atomic */
    int64_t step;
    double when, loss, lr;
    uint32_t epoch;
    int has_loss, has_lr;
    const void **ptr;
    int64_t *numel; /* elements at ptr */
    int *kind;
    double *value; /* K_VALUE: a sum of squares computed in Python */
    int64_t seq;    /* which job this is: submit() calls before it */
    PyObject *keep; /* the snapshots (a list), dropped once measured */
    PyObject **held; /* inline: the gradients, held until measured (a grad property's
                      * fresh tensor would free its bytes at once) */
    char **dgram;   /* this job's datagrams: the templates, filled in */
} Job;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    PyObject **params;  /* owned */
    int *direct_grad;   /* whether params[t].grad is torch.Tensor's own (attr[A_GRAD]) */
    int *owner;
    int layers;
    int nparts;
    Py_ssize_t *tmpl_len, *values_at;
    int *first, *count;
    int fd;
    int evfd;           /* wakes the thread */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    PyObject *lazy_clone, *fallback;
    PyObject *f32, *f64, *bf16; /* torch dtypes */
    PyTypeObject *tensor_type;  /* torch.Tensor: read in place only tensors of exactly it */
    PyObject *attr[N_ATTRS];    /* torch.Tensor's descriptors (NULL: looked up by name) */
    Job ring[RING];
    int64_t submitted;  /* atomic: jobs handed out, ring index = submitted % RING */
    int64_t worked;     /* the thread's: jobs looked at */
    int64_t starved_left; /* steps to do within the call, the thread having been starved */
    int64_t unwatched_left; /* steps the caller looks at the socket itself */
    int misses;         /* steps in a row the thread had not sent by the next call */
    pthread_t thread;
    int started, stop;  /* stop: atomic */
    int inited, evfd_open;
    int sleeping;       /* atomic: the thread is (about to be) in poll() */
    int watch;          /* whether the thread watches the socket for controls */
    int controls;       /* atomic: the thread saw something to read in the socket */
    pthread_mutex_t send_mu;
    double *sums;       /* the thread's scratch: per-layer sums */
    double *tsums;      /* the training thread's scratch */
    int *present, *tpresent;
    /* counters (read from Python) */
    long long sent, dropped, stolen;
} Measurer;

static PyObject *s_item, *s_name[N_ATTRS];

/* ---- arithmetic ---------------------------------------------------------------------- */

/* Sums of squares. float32: squares summed in float32 eight to a lane (blocks of 512 or
 * 1,024), the blocks summed in float64, so the result is as exact as a float64 sum to well
 * within 1e-6; should a float32 sum overflow (an element above about 1.8e19 overflows its
 * square), or be so small that squares below float32's normal range (elements below about
 * 1.1e-19: a vanishing gradient) may weigh in it, the tensor is summed again in float64. */
static double sumsq_f32_f64(const float *x, int64_t n)
{
    double acc[4] = {0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            acc[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++)
        acc[0] += (double)x[i] * (double)x[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* The widest lanes this processor has: 2 AVX-512, 1 AVX2 with FMA, 0 neither (set when the
 * module loads; SONOGRAD_SIMD=avx2 or none caps it, so that every kernel can be tested on
 * one machine). */
static int g_simd;

static void cap_simd(void)
{
    const char *cap = getenv("SONOGRAD_SIMD");
    if (cap == NULL)
        return;
    int most = strcmp(cap, "none") == 0 ? 0 : strcmp(cap, "avx2") == 0 ? 1 : 2;
    if (g_simd > most)
        g_simd = most;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SG_AVX2 1

static void detect_simd(void)
{
    __builtin_cpu_init();
    g_simd = __builtin_cpu_supports("avx512f")                                 ? 2
             : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                               : 0;
}

__attribute__((target("avx2,fma")))
static double sumsq_f32_avx2(const float *x, int64_t n)
{
    __m256d d0 = _mm256_setzero_pd(), d1 = d0, d2 = d0, d3 = d0;
    int64_t i = 0;
    for (; i + 512 <= n; i += 512) {
        __m256 a[8];
        for (int k = 0; k < 8; k++)
            a[k] = _mm256_setzero_ps();
        for (int j = 0; j < 512; j += 64)
            for (int k = 0; k < 8; k++) {
                __m256 v = _mm256_loadu_ps(x + i + j + 8 * k);
                a[k] = _mm256_fmadd_ps(v, v, a[k]);
            }
        for (int k = 0; k < 8; k += 2) {
            d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(a[k])));
            d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(a[k], 1)));
            d2 = _mm256_add_pd(d2, _mm256_cvtps_pd(_mm256_castps256_ps128(a[k + 1])));
            d3 = _mm256_add_pd(d3, _mm256_cvtps_pd(_mm256_extractf128_ps(a[k + 1], 1)));
        }
    }
    __m256d d = _mm256_add_pd(_mm256_add_pd(d0, d1), _mm256_add_pd(d2, d3));
    double lanes[4];
    _mm256_storeu_pd(lanes, d);
    double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; i++)
        total += (double)x[i] * (double)x[i];
    return total;
}

/* The same with 512-bit lanes (16 floats), blocks of 1,024: each lane still sums eight
 * squares in float32 before its block goes to float64. About a fifth faster than AVX2 on
 * gradients that are still in this core's cache. */
__attribute__((target("avx512f")))
static double sumsq_f32_avx512(const float *x, int64_t n)
{
    __m512d d0 = _mm512_setzero_pd(), d1 = d0, d2 = d0, d3 = d0;
    int64_t i = 0;
    for (; i + 1024 <= n; i += 1024) {
        __m512 a[8];
        for (int k = 0; k < 8; k++)
            a[k] = _mm512_setzero_ps();
        for (int j = 0; j < 1024; j += 128)
            for (int k = 0; k < 8; k++) {
                __m512 v = _mm512_loadu_ps(x + i + j + 16 * k);
                a[k] = _mm512_fmadd_ps(v, v, a[k]);
            }
        for (int k = 0; k < 8; k += 2) {
            d0 = _mm512_add_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(a[k])));
            d1 = _mm512_add_pd(d1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                       _mm512_extractf64x4_pd(_mm512_castps_pd(a[k]), 1))));
            d2 = _mm512_add_pd(d2, _mm512_cvtps_pd(_mm512_castps512_ps256(a[k + 1])));
            d3 = _mm512_add_pd(d3, _mm512_cvtps_pd(_mm256_castpd_ps(
                                       _mm512_extractf64x4_pd(_mm512_castps_pd(a[k + 1]), 1))));
        }
    }
    double total = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(d0, d1),
                                                      _mm512_add_pd(d2, d3)));
    for (; i < n; i++)
        total += (double)x[i] * (double)x[i];
    return total;
}
#else
static void detect_simd(void) { g_simd = 0; }
#endif

static double sumsq_f32(const float *x, int64_t n)
{
    double total;
#ifdef SG_AVX2
    total = g_simd == 2 ? sumsq_f32_avx512(x, n)
            : g_simd    ? sumsq_f32_avx2(x, n)
                        : sumsq_f32_f64(x, n);
#else
    total = sumsq_f32_f64(x, n);
#endif
    /* A float32 sum overflowed (or an element is infinite), or squares that lost precision
     * below FLT_MIN (at most n of them, each under 1.2e-38) may matter to 1e-7 of it. */
    if (isinf(total) || total < (double)n * 1.2e-31)
        total = sumsq_f32_f64(x, n);
    return total;
}

__attribute__((target_clones("avx2", "default")))
static double sumsq_f64(const double *x, int64_t n)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k] * x[i + k];
    double total = 0.0;
    for (int k = 0; k < 8; k++)
        total += acc[k];
    for (; i < n; i++)
        total += x[i] * x[i];
    return total;
}

static double sumsq_bf16(const uint16_t *x, int64_t n)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)x[i] << 16;
        float f;
        memcpy(&f, &bits, 4);
        total += (double)f * (double)f;
    }
    return total;
}

static void put_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_f64(char *p, double v) { memcpy(p, &v, 8); }

/* Measures job j and fills its datagrams; any thread, no GIL. */
static void measure(Measurer *m, Job *j, double *sums, int *present)
{
    for (int l = 0; l < m->layers; l++) {
        sums[l] = 0.0;
        present[l] = 0;
    }
    int any = 0;
    double total = 0.0;
    for (Py_ssize_t t = 0; t < m->n; t++) {
        double s;
        switch (j->kind[t]) {
        case K_F32: s = sumsq_f32((const float *)j->ptr[t], j->numel[t]); break;
        case K_F64: s = sumsq_f64((const double *)j->ptr[t], j->numel[t]); break;
        case K_BF16: s = sumsq_bf16((const uint16_t *)j->ptr[t], j->numel[t]); break;
        case K_VALUE: s = j->value[t]; break;
        default: continue;
        }
        sums[m->owner[t]] += s;
        present[m->owner[t]] = 1;
        total += s;
        any = 1;
    }
    for (int p = 0; p < m->nparts; p++) {
        char *d = j->dgram[p];
        if (p == 0) {
            unsigned char flags = (unsigned char)d[4] & ~(1 | 2 | 4);
            if (j->has_loss)
                flags |= 1;
            if (j->has_lr)
                flags |= 2;
            if (any)
                flags |= 4;
            d[4] = (char)flags;
            put_f64(d + 48, j->has_loss ? j->loss : 0.0);
            put_f64(d + 56, j->has_lr ? j->lr : 0.0);
            put_f64(d + 64, any ? sqrt(total) : 0.0);
        }
        put_u64(d + 8, (uint64_t)j->step);
        put_u32(d + 16, j->epoch);
        put_f64(d + 40, j->when);
        char *v = d + m->values_at[p];
        for (int i = 0; i < m->count[p]; i++) {
            int l = m->first[p] + i;
            put_f64(v + 8 * i, present[l] ? sqrt(sums[l]) : -1.0);
        }
    }
}

/* Sends job j's datagrams; any thread, no GIL. */
static void send_job(Measurer *m, Job *j)
{
    for (int p = 0; p < m->nparts; p++) {
        ssize_t r = sendto(m->fd, j->dgram[p], (size_t)m->tmpl_len[p], MSG_DONTWAIT,
                           (struct sockaddr *)&m->addr, m->addrlen);
        if (r < 0)
            __atomic_add_fetch(&m->dropped, 1, __ATOMIC_RELAXED);
        else
            __atomic_add_fetch(&m->sent, 1, __ATOMIC_RELAXED);
    }
}

static void wake(Measurer *m)
{
    uint64_t one = 1;
    ssize_t r = write(m->evfd, &one, sizeof one);
    (void)r; /* only EAGAIN, with the counter already non-zero: awake anyway */
}

/* Does job j, which the caller (holding send_mu) found waiting: measures it if pending,
 * sends it. */
static void run(Measurer *m, Job *j, double *sums, int *present)
{
    if (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == PENDING)
        measure(m, j, sums, present);
    send_job(m, j);
    /* The snapshots are dropped on the training thread (release(), settle()): taking the
     * GIL here would make the training thread wait for this thread. */
    __atomic_store_n(&j->state, DONE, __ATOMIC_RELEASE);
}

/* Whether job k is in its slot and still to be measured or sent. */
static int waiting_job(Measurer *m, int64_t k)
{
    Job *j = &m->ring[k % RING];
    int state = __atomic_load_n(&j->state, __ATOMIC_ACQUIRE);
    return j->seq == k && (state == PENDING || state == READY);
}

static void *worker(void *arg)
{
    Measurer *m = (Measurer *)arg;
    /* The lowest priority there is: this thread runs on a core nothing else wants, and never
     * takes the training thread's core from it; a step it has not started by the next one
     * is measured or sent there (settle()). */
#ifdef SCHED_IDLE
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
#endif
    for (;;) {
        if (__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE))
            break;
        int64_t submitted = __atomic_load_n(&m->submitted, __ATOMIC_SEQ_CST);
        if (m->worked < submitted) {
            if (submitted - m->worked > RING)
                m->worked = submitted - RING; /* the training thread did those */
            pthread_mutex_lock(&m->send_mu);
            for (; m->worked < submitted; m->worked++)
                if (waiting_job(m, m->worked))
                    run(m, &m->ring[m->worked % RING], m->sums, m->present);
            pthread_mutex_unlock(&m->send_mu);
            continue;
        }
        /* Nothing to do: sleep until woken, or until a control arrives. The training thread
         * hands out a job and then reads `sleeping`; this thread sets `sleeping` and then
         * looks for a job again: one of the two sees the other. (Waking by itself when the
         * next step is due, to spare the training thread that system call, was measured:
         * the send then falls in the next forward pass and costs it more.) */
        __atomic_store_n(&m->sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&m->submitted, __ATOMIC_SEQ_CST) > m->worked ||
            __atomic_load_n(&m->stop, __ATOMIC_SEQ_CST)) {
            __atomic_store_n(&m->sleeping, 0, __ATOMIC_RELAXED);
            continue;
        }
        struct pollfd fds[2] = {{.fd = m->evfd, .events = POLLIN},
                                {.fd = m->fd, .events = POLLIN}};
        int watching = __atomic_load_n(&m->watch, __ATOMIC_ACQUIRE) &&
                       !__atomic_load_n(&m->controls, __ATOMIC_ACQUIRE);
        int r = poll(fds, watching ? 2 : 1, -1);
        __atomic_store_n(&m->sleeping, 0, __ATOMIC_RELAXED);
        if (r < 0)
            continue; /* EINTR */
        if (fds[0].revents & POLLIN) {
            uint64_t v;
            ssize_t got = read(m->evfd, &v, sizeof v);
            (void)got;
        }
        if (watching && (fds[1].revents & POLLNVAL)) /* the socket was closed under us */
            __atomic_store_n(&m->watch, 0, __ATOMIC_RELEASE);
        else if (watching && (fds[1].revents & (POLLIN | POLLERR)))
            __atomic_store_n(&m->controls, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* ---- the training thread ------------------------------------------------------------- */

/* No core was free for the thread: it had not done job j by the next call. A step to
 * measure: doing the next ones within the call costs less than handing them over and taking
 * them back, so do that for a while, then try again. A step to send: sending it here costs
 * no more than the send, so go on handing them over (until MISSES in a row), but look at the
 * socket here for a while. */
static void starved(Measurer *m, Job *j)
{
    m->stolen++;
    if (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == PENDING || ++m->misses >= MISSES) {
        m->starved_left = STARVED_STEPS;
        m->misses = 0;
    }
    m->unwatched_left = UNWATCHED_STEPS;
}

/* Makes sure job k is done: measures or sends it here if the thread has not (waiting for the
 * thread if it is on it; `due`: the thread should have, so it is starved, or else it keeps
 * up), then drops its snapshots. */
static void settle(Measurer *m, int64_t k, int due)
{
    if (k < 0)
        return;
    Job *j = &m->ring[k % RING];
    if (waiting_job(m, k)) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&m->send_mu);
        if (waiting_job(m, k)) {
            if (due)
                starved(m, j);
            run(m, j, m->tsums, m->tpresent);
        }
        pthread_mutex_unlock(&m->send_mu);
        Py_END_ALLOW_THREADS
    } else if (due) {
        m->misses = 0;
    }
    if (j->seq == k && __atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == DONE) {
        PyObject *keep = j->keep;
        j->keep = NULL;
        __atomic_store_n(&j->state, FREE, __ATOMIC_RELEASE);
        Py_XDECREF(keep);
    }
}

static int start_worker(Measurer *m)
{
    if (m->started)
        return 0;
    if (pthread_create(&m->thread, NULL, worker, m) != 0) {
        PyErr_SetString(PyExc_OSError, "cannot start the measuring thread");
        return -1;
    }
    m->started = 1;
    return 0;
}

static int kind_of(Measurer *m, PyObject *dtype)
{
    if (dtype == m->f32) return K_F32;
    if (dtype == m->f64) return K_F64;
    if (dtype == m->bf16) return K_BF16;
    return K_VALUE;
}

/* Tensor attribute `a` of t (a property's value, a method's result). torch.Tensor's own
 * descriptor is called directly: a tensor of exactly that type (or a parameter whose type
 * has it, direct_grad) cannot have another. */
static PyObject *tensor_attr(Measurer *m, int a, PyObject *t)
{
    PyObject *d = m->attr[a];
    if (d == NULL)
        return a <= A_IS_CPU ? PyObject_GetAttr(t, s_name[a])
                             : PyObject_CallMethodNoArgs(t, s_name[a]);
    if (a <= A_IS_CPU) {
        PyGetSetDef *gs = ((PyGetSetDescrObject *)d)->d_getset;
        return gs->get(t, gs->closure);
    }
    return PyObject_Vectorcall(d, &t, 1, NULL);
}

/* Integer attribute `a` of t (data_ptr, numel); -1 with an exception set on failure. */
static long long tensor_int(Measurer *m, int a, PyObject *t)
{
    PyObject *v = tensor_attr(m, a, t);
    if (v == NULL)
        return -1;
    long long r = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return r == -1 && PyErr_Occurred() ? -1 : r;
}

/* A CPU tensor of exactly torch.Tensor's type (no subclass: its bytes may not be what they
 * seem) whose bytes this module may read, dense unless `one` (a single element): its kind
 * (K_F32...), or K_VALUE (read it in Python). Clears any error. */
static int readable_kind(Measurer *m, PyObject *t, int one)
{
    if (Py_TYPE(t) != m->tensor_type)
        return K_VALUE;
    PyObject *dtype = tensor_attr(m, A_DTYPE, t);
    int kind = dtype != NULL ? kind_of(m, dtype) : K_VALUE;
    Py_XDECREF(dtype);
    if (kind != K_VALUE) {
        PyObject *cpu = tensor_attr(m, A_IS_CPU, t);
        if (cpu != Py_True) {
            kind = K_VALUE;
        } else if (!one) {
            PyObject *c = tensor_attr(m, A_IS_CONTIGUOUS, t);
            if (c != Py_True)
                kind = K_VALUE;
            Py_XDECREF(c);
        }
        Py_XDECREF(cpu);
    }
    PyErr_Clear();
    return kind;
}

/* A loss or lr as a double: None (returns 0, *has 0), a number, or a one-element tensor,
 * read in place when it is a CPU tensor of a kind this module reads, else with item().
 * Returns -1 with an exception set when it is none of these. */
static int read_scalar(Measurer *m, PyObject *x, double *out, int *has)
{
    *has = 0;
    if (x == Py_None)
        return 0;
    if (PyFloat_Check(x) || PyLong_Check(x)) {
        *out = PyFloat_AsDouble(x);
        if (*out == -1.0 && PyErr_Occurred())
            return -1;
        *has = 1;
        return 0;
    }
    int kind = readable_kind(m, x, 1);
    if (kind != K_VALUE) {
        long long count = tensor_int(m, A_NUMEL, x);
        long long at = count == 1 ? tensor_int(m, A_DATA_PTR, x) : -1;
        void *p = at > 0 ? (void *)(intptr_t)at : NULL;
        PyErr_Clear();
        if (p != NULL) {
            if (kind == K_F32) {
                float f;
                memcpy(&f, p, 4);
                *out = f;
            } else if (kind == K_F64) {
                memcpy(out, p, 8);
            } else {
                uint32_t bits = (uint32_t)(*(const uint16_t *)p) << 16;
                float f;
                memcpy(&f, &bits, 4);
                *out = f;
            }
            *has = 1;
            return 0;
        }
    }
    PyObject *v = PyObject_HasAttr(x, s_item) ? PyObject_CallMethodNoArgs(x, s_item)
                                                : PyNumber_Float(x);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (*out == -1.0 && PyErr_Occurred())
        return -1;
    *has = 1;
    return 0;
}

/* Drops the gradients job j held while it was measured inline. */
static void let_go(Measurer *m, Job *j)
{
    for (Py_ssize_t t = 0; t < m->n; t++)
        Py_CLEAR(j->held[t]);
}

/* Points job j at this step's gradients: in place within the call (inline), else through
 * snapshots kept in j->keep. Returns -1 with an exception set. */
static int gather(Measurer *m, Job *j, int inl)
{
    PyObject *keep = inl ? NULL : PyList_New(0);
    if (!inl && keep == NULL)
        return -1;
    for (Py_ssize_t t = 0; t < m->n; t++) {
        PyObject *g = m->direct_grad[t] ? tensor_attr(m, A_GRAD, m->params[t])
                                         : PyObject_GetAttr(m->params[t], s_name[A_GRAD]);
        if (g == NULL)
            goto fail;
        if (g == Py_None) {
            j->kind[t] = K_ABSENT;
            Py_DECREF(g);
            continue;
        }
        int kind = readable_kind(m, g, 0);
        if (kind == K_VALUE) { /* measured now, in Python (float64) */
            PyObject *v = PyObject_CallOneArg(m->fallback, g);
            Py_DECREF(g);
            if (v == NULL)
                goto fail;
            j->value[t] = PyFloat_AsDouble(v);
            Py_DECREF(v);
            if (PyErr_Occurred())
                goto fail;
            j->kind[t] = K_VALUE;
            continue;
        }
        /* Its size now (a parameter's data may have been replaced since the first step),
         * and its pointer before any snapshot: asked of the snapshot (a copy-on-write
         * tensor), data_ptr() would copy the data. The snapshot keeps this buffer alive and
         * unchanged: a later in-place write to the gradient copies it elsewhere first. */
        j->numel[t] = tensor_int(m, A_NUMEL, g);
        if (j->numel[t] >= 0)
            j->ptr[t] = (const void *)(intptr_t)tensor_int(m, A_DATA_PTR, g);
        if (PyErr_Occurred()) {
            Py_DECREF(g);
            goto fail;
        }
        j->kind[t] = kind;
        if (inl) {
            j->held[t] = g;
            continue;
        }
        PyObject *s = PyObject_CallOneArg(m->lazy_clone, g);
        Py_DECREF(g);
        if (s == NULL)
            goto fail;
        int r = PyList_Append(keep, s);
        Py_DECREF(s);
        if (r < 0)
            goto fail;
    }
    j->keep = keep;
    return 0;
fail:
    Py_XDECREF(keep);
    let_go(m, j);
    return -1;
}

/* Hands job j (PENDING or READY) to the thread, waking it if it sleeps. */
static void hand_over(Measurer *m, Job *j, int state)
{
    j->seq = m->submitted;
    __atomic_store_n(&j->state, state, __ATOMIC_RELEASE);
    __atomic_store_n(&m->submitted, m->submitted + 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&m->sleeping, __ATOMIC_SEQ_CST))
        wake(m);
}

/* submit(step, epoch, loss, lr, inline=False) */
static PyObject *Measurer_submit(Measurer *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 4 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError, "submit(step, epoch, loss, lr, inline=False)");
        return NULL;
    }
    long long step = PyLong_AsLongLong(args[0]);
    if (step == -1 && PyErr_Occurred())
        return NULL;
    unsigned long epoch = PyLong_AsUnsignedLong(args[1]);
    if (epoch == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    PyObject *loss = args[2], *lr = args[3];
    int inl = nargs > 4 ? PyObject_IsTrue(args[4]) : 0;
    if (inl < 0)
        return NULL;
    double lossv = 0.0, lrv = 0.0;
    int has_loss, has_lr;
    if (read_scalar(m, loss, &lossv, &has_loss) < 0 || read_scalar(m, lr, &lrv, &has_lr) < 0)
        return NULL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* The previous jobs must be done (nothing is more than one step late) before this one
     * takes a place. */
    int64_t n = m->submitted;
    for (int64_t k = n - RING; k < n - 1; k++)
        settle(m, k, 0);
    settle(m, n - 1, 1);
    int alone = 0; /* measured and sent within the call */
    if (m->unwatched_left > 0)
        m->unwatched_left--;
    if (m->starved_left > 0) {
        m->starved_left--;
        alone = inl = 1;
    }
    if (!alone && start_worker(m) < 0)
        alone = inl = 1; /* no thread: do it all here */
    PyErr_Clear();
    Job *j = &m->ring[n % RING];
    if (gather(m, j, inl) < 0)
        return NULL;
    j->step = step;
    j->epoch = (uint32_t)epoch;
    j->when = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    j->has_loss = has_loss;
    j->has_lr = has_lr;
    j->loss = lossv;
    j->lr = lrv;
    if (!inl) {
        hand_over(m, j, PENDING);
        Py_RETURN_NONE;
    }
    Py_BEGIN_ALLOW_THREADS
    measure(m, j, m->tsums, m->tpresent);
    if (alone)
        send_job(m, j);
    Py_END_ALLOW_THREADS
    let_go(m, j);
    if (alone) {
        /* The thread, should it look, finds nothing to do. */
        j->seq = n;
        j->state = FREE;
        __atomic_store_n(&m->submitted, n + 1, __ATOMIC_SEQ_CST);
    } else {
        hand_over(m, j, READY);
    }
    Py_RETURN_NONE;
}

/* release(): drops the snapshots of the steps the thread has measured; never waits. */
static PyObject *Measurer_release(Measurer *m, PyObject *unused)
{
    (void)unused;
    for (int k = 0; k < RING; k++) {
        Job *j = &m->ring[k];
        if (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == DONE) {
            PyObject *keep = j->keep;
            j->keep = NULL;
            __atomic_store_n(&j->state, FREE, __ATOMIC_RELEASE);
            Py_XDECREF(keep);
        }
    }
    Py_RETURN_NONE;
}

/* flush(): every job submitted is sent and its snapshots dropped. */
static PyObject *Measurer_flush(Measurer *m, PyObject *unused)
{
    (void)unused;
    for (int64_t k = m->submitted - RING; k < m->submitted; k++)
        settle(m, k, 0);
    Py_RETURN_NONE;
}

/* waiting(): 1 when the thread saw something arrive in the socket (read it, then rearm());
 * 2 when it cannot watch the socket now (not started, starved, not asked to): look at it
 * yourself; else 0. */
static PyObject *Measurer_waiting(Measurer *m, PyObject *unused)
{
    (void)unused;
    if (!m->started || m->starved_left > 0 || m->unwatched_left > 0 || !m->watch)
        return PyLong_FromLong(2);
    return PyLong_FromLong(__atomic_load_n(&m->controls, __ATOMIC_ACQUIRE) ? 1 : 0);
}

/* rearm(): the caller has read the socket; the thread watches it again. */
static PyObject *Measurer_rearm(Measurer *m, PyObject *unused)
{
    (void)unused;
    if (__atomic_exchange_n(&m->controls, 0, __ATOMIC_ACQ_REL) && m->started)
        wake(m);
    Py_RETURN_NONE;
}

/* watch(on): whether the thread watches the socket for controls. */
static PyObject *Measurer_watch(Measurer *m, PyObject *on)
{
    int v = PyObject_IsTrue(on);
    if (v < 0)
        return NULL;
    __atomic_store_n(&m->watch, v, __ATOMIC_RELEASE);
    if (m->started)
        wake(m);
    Py_RETURN_NONE;
}

static void stop_worker(Measurer *m)
{
    if (!m->started)
        return;
    Py_BEGIN_ALLOW_THREADS
    __atomic_store_n(&m->stop, 1, __ATOMIC_SEQ_CST);
    wake(m);
    pthread_join(m->thread, NULL);
    Py_END_ALLOW_THREADS
    m->started = 0;
}

/* close(): sends what is pending, stops the thread. */
static PyObject *Measurer_close(Measurer *m, PyObject *unused)
{
    PyObject *r = Measurer_flush(m, unused);
    Py_XDECREF(r);
    stop_worker(m);
    m->stop = 0;
    Py_RETURN_NONE;
}

static void Measurer_dealloc(Measurer *m)
{
    stop_worker(m);
    for (int k = 0; k < RING; k++) {
        Py_CLEAR(m->ring[k].keep);
        PyMem_Free(m->ring[k].ptr);
        PyMem_Free(m->ring[k].numel);
        if (m->ring[k].held)
            let_go(m, &m->ring[k]);
        PyMem_Free(m->ring[k].held);
        PyMem_Free(m->ring[k].kind);
        PyMem_Free(m->ring[k].value);
        for (int p = 0; p < m->nparts && m->ring[k].dgram; p++)
            PyMem_Free(m->ring[k].dgram[p]);
        PyMem_Free(m->ring[k].dgram);
    }
    for (Py_ssize_t t = 0; t < m->n && m->params; t++)
        Py_XDECREF(m->params[t]);
    PyMem_Free(m->params);
    PyMem_Free(m->direct_grad);
    for (int a = 0; a < N_ATTRS; a++)
        Py_XDECREF(m->attr[a]);
    PyMem_Free(m->owner);
    PyMem_Free(m->tmpl_len);
    PyMem_Free(m->values_at);
    PyMem_Free(m->first);
    PyMem_Free(m->count);
    PyMem_Free(m->sums);
    PyMem_Free(m->tsums);
    PyMem_Free(m->present);
    PyMem_Free(m->tpresent);
    Py_XDECREF(m->lazy_clone);
    Py_XDECREF(m->fallback);
    Py_XDECREF(m->f32);
    Py_XDECREF(m->f64);
    Py_XDECREF(m->bf16);
    Py_XDECREF(m->tensor_type);
    if (m->evfd_open)
        close(m->evfd);
    if (m->inited)
        pthread_mutex_destroy(&m->send_mu);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

/* torch.Tensor's descriptors for the attributes read each step, each kept only if it is
 * what this module calls directly (a property; a method), else looked up by name. */
static void find_attrs(Measurer *m)
{
    for (int a = 0; a < N_ATTRS; a++) {
        PyObject *d = PyObject_GetAttr((PyObject *)m->tensor_type, s_name[a]);
        PyTypeObject *want = a <= A_IS_CPU ? &PyGetSetDescr_Type : &PyMethodDescr_Type;
        if (d != NULL && (!Py_IS_TYPE(d, want) ||
                          (a <= A_IS_CPU && ((PyGetSetDescrObject *)d)->d_getset->get == NULL)))
            Py_CLEAR(d);
        m->attr[a] = d;
    }
    PyErr_Clear();
}

/* Whether p.grad may be read through torch.Tensor's own descriptor: p's type finds that
 * descriptor (no subclass redefines grad) and looks attributes up the usual way. */
static int direct_grad(Measurer *m, PyObject *p)
{
    if (m->attr[A_GRAD] == NULL || Py_TYPE(p)->tp_getattro != PyObject_GenericGetAttr)
        return 0;
    PyObject *d = PyObject_GetAttr((PyObject *)Py_TYPE(p), s_name[A_GRAD]);
    int same = d == m->attr[A_GRAD];
    Py_XDECREF(d);
    PyErr_Clear();
    return same;
}

/* Measurer(params, owners, layers, templates, fd, family, address, port, lazy_clone,
 *          fallback, (float32, float64, bfloat16), torch.Tensor)
 * templates: [(datagram bytes, values offset, first layer, count)] */
static int Measurer_init(Measurer *m, PyObject *args, PyObject *kw)
{
    PyObject *params, *owners, *templates, *dtypes, *tensor_type;
    int layers, fd, family, port;
    Py_buffer address;
    (void)kw;
    if (m->inited) {
        PyErr_SetString(PyExc_RuntimeError, "a Measurer is made once");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOiOiiy*iOOOO!", &params, &owners, &layers,
                          &templates, &fd, &family, &address, &port, &m->lazy_clone,
                          &m->fallback, &dtypes, &PyType_Type, &tensor_type))
        return -1;
    Py_INCREF(m->lazy_clone);
    Py_INCREF(m->fallback);
    m->tensor_type = (PyTypeObject *)tensor_type;
    Py_INCREF(tensor_type);
    pthread_mutex_init(&m->send_mu, NULL);
    m->inited = 1;
    for (int k = 0; k < RING; k++)
        m->ring[k].seq = -1;
    m->fd = fd;
    memset(&m->addr, 0, sizeof m->addr);
    if (family == AF_INET && address.len == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&m->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        memcpy(&a->sin_addr, address.buf, 4);
        m->addrlen = sizeof *a;
    } else if (family == AF_INET6 && address.len == 16) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&m->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        memcpy(&a->sin6_addr, address.buf, 16);
        m->addrlen = sizeof *a;
    } else {
        PyBuffer_Release(&address);
        PyErr_SetString(PyExc_ValueError, "an IPv4 or IPv6 address is needed");
        return -1;
    }
    PyBuffer_Release(&address);
    if (!PyArg_ParseTuple(dtypes, "OOO", &m->f32, &m->f64, &m->bf16))
        return -1;
    Py_INCREF(m->f32);
    Py_INCREF(m->f64);
    Py_INCREF(m->bf16);
    find_attrs(m);
    m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->evfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    m->evfd_open = 1;
    Py_ssize_t n = PySequence_Length(params);
    if (n < 0 || PySequence_Length(owners) != n)
        goto bad;
    m->n = n;
    m->layers = layers;
    m->params = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    m->direct_grad = PyMem_Calloc(n ? n : 1, sizeof(int));
    m->owner = PyMem_Calloc(n ? n : 1, sizeof(int));
    m->sums = PyMem_Calloc(layers ? layers : 1, sizeof(double));
    m->tsums = PyMem_Calloc(layers ? layers : 1, sizeof(double));
    m->present = PyMem_Calloc(layers ? layers : 1, sizeof(int));
    m->tpresent = PyMem_Calloc(layers ? layers : 1, sizeof(int));
    for (int k = 0; k < RING; k++) {
        m->ring[k].ptr = PyMem_Calloc(n ? n : 1, sizeof(void *));
        m->ring[k].numel = PyMem_Calloc(n ? n : 1, sizeof(int64_t));
        m->ring[k].held = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
        m->ring[k].kind = PyMem_Calloc(n ? n : 1, sizeof(int));
        m->ring[k].value = PyMem_Calloc(n ? n : 1, sizeof(double));
        if (!m->ring[k].ptr || !m->ring[k].numel || !m->ring[k].held || !m->ring[k].kind ||
            !m->ring[k].value)
            goto nomem;
    }
    if (!m->params || !m->direct_grad || !m->owner || !m->sums || !m->tsums || !m->present ||
        !m->tpresent)
        goto nomem;
    for (Py_ssize_t t = 0; t < n; t++) {
        PyObject *p = PySequence_GetItem(params, t);
        PyObject *o = PySequence_GetItem(owners, t);
        m->params[t] = p;
        m->owner[t] = o ? (int)PyLong_AsLong(o) : -1;
        Py_XDECREF(o);
        if (p == NULL || PyErr_Occurred() || m->owner[t] < 0 || m->owner[t] >= layers)
            goto bad;
        m->direct_grad[t] = direct_grad(m, p);
    }
    Py_ssize_t np = PySequence_Length(templates);
    if (np <= 0)
        goto bad;
    m->tmpl_len = PyMem_Calloc(np, sizeof(Py_ssize_t));
    m->values_at = PyMem_Calloc(np, sizeof(Py_ssize_t));
    m->first = PyMem_Calloc(np, sizeof(int));
    m->count = PyMem_Calloc(np, sizeof(int));
    if (!m->tmpl_len || !m->values_at || !m->first || !m->count)
        goto nomem;
    for (int k = 0; k < RING; k++)
        if ((m->ring[k].dgram = PyMem_Calloc(np, sizeof(char *))) == NULL)
            goto nomem;
    m->nparts = (int)np;
    for (Py_ssize_t p = 0; p < np; p++) {
        PyObject *item = PySequence_GetItem(templates, p);
        const char *data;
        Py_ssize_t len, at;
        int first, count;
        if (item == NULL || !PyArg_ParseTuple(item, "y#nii", &data, &len, &at, &first, &count)) {
            Py_XDECREF(item);
            return -1;
        }
        if (len < 72 || at < 72 || at + 8 * (Py_ssize_t)count != len || first < 0 ||
            first + count > layers) {
            Py_DECREF(item);
            goto bad;
        }
        for (int k = 0; k < RING; k++) {
            if ((m->ring[k].dgram[p] = PyMem_Malloc(len)) == NULL) {
                Py_DECREF(item);
                goto nomem;
            }
            memcpy(m->ring[k].dgram[p], data, len);
        }
        m->tmpl_len[p] = len;
        m->values_at[p] = at;
        m->first[p] = first;
        m->count[p] = count;
        Py_DECREF(item);
    }
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "inconsistent layout");
    return -1;
}

static PyObject *Measurer_counters(Measurer *m, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(LLL)", __atomic_load_n(&m->sent, __ATOMIC_RELAXED),
                         __atomic_load_n(&m->dropped, __ATOMIC_RELAXED), m->stolen);
}

static PyMethodDef Measurer_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))Measurer_submit, METH_FASTCALL,
     "submit(step, epoch, loss, lr, inline=False): measures the gradients here (inline) or "
     "snapshots them for the thread, which sends the step."},
    {"release", (PyCFunction)Measurer_release, METH_NOARGS,
     "Drops the snapshots of the steps already measured (never waits)."},
    {"flush", (PyCFunction)Measurer_flush, METH_NOARGS, "Waits until every step is sent."},
    {"close", (PyCFunction)Measurer_close, METH_NOARGS, "Flushes and stops the thread."},
    {"waiting", (PyCFunction)Measurer_waiting, METH_NOARGS,
     "0: nothing arrived in the socket; 1: something did (read it, then rearm()); 2: the "
     "thread cannot watch the socket now (look at it yourself)."},
    {"rearm", (PyCFunction)Measurer_rearm, METH_NOARGS,
     "The socket was read: the thread watches it again."},
    {"watch", (PyCFunction)Measurer_watch, METH_O,
     "watch(on): whether the thread watches the socket for controls."},
    {"counters", (PyCFunction)Measurer_counters, METH_NOARGS,
     "(datagrams sent, datagrams dropped, steps the training thread measured or sent itself)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MeasurerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sonograd._native.Measurer",
    .tp_basicsize = sizeof(Measurer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Measurer_init,
    .tp_dealloc = (destructor)Measurer_dealloc,
    .tp_methods = Measurer_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "sonograd's native CPU measuring thread.", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    detect_simd();
    cap_simd();
    if (PyType_Ready(&MeasurerType) < 0)
        return NULL;
    for (int a = 0; a < N_ATTRS; a++)
        if ((s_name[a] = PyUnicode_InternFromString(attr_name[a])) == NULL)
            return NULL;
    s_item = PyUnicode_InternFromString("item");
    if (s_item == NULL)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&MeasurerType);
    if (PyModule_AddObject(mod, "Measurer", (PyObject *)&MeasurerType) < 0) {
        Py_DECREF(&MeasurerType);
        Py_DECREF(mod);
        return NULL;
    }
    PyModule_AddIntConstant(mod, "SIMD", g_simd);
    return mod;
}

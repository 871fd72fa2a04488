/* The CPU fast path of sonograd's Python client: the sums of squares of each step's
 * gradients, the compact datagram packed and sent, all without the GIL. Built at install time
 * (setup.py) or on first use (sonograd/_build.py); without a C compiler the client measures in
 * Python instead.
 *
 * Measurer.submit(), on the training thread, hands each gradient's data pointer to a native
 * thread of the lowest priority (SCHED_IDLE) with a copy-on-write snapshot of the gradient
 * (torch._lazy_clone: no data is copied unless someone later writes to the gradient in
 * place, e.g. clipping) that keeps those bytes alive and unchanged, and wakes the thread.
 * The thread sums the squares (float32: in float32 eight to a lane, the blocks in float64;
 * float64 and bfloat16 in float64), fills the datagram templates sonograd.wire made once
 * and sends them. release() (after optimizer.step()) and the next submit() drop the
 * snapshots on the training thread. A step the thread has not started by the next submit()
 * is measured there, and the next INLINE_STEPS steps within the call (no core was free):
 * nothing is ever more than one step late. With inline, submit() measures and sends within
 * the call, from the gradients themselves. */

#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RING 4
/* Steps measured within the call after the worker was found starved. */
#define INLINE_STEPS 64

enum { FREE = 0, PENDING = 1, RUNNING = 2, DONE = 3 };
enum { K_ABSENT = 0, K_F32 = 1, K_F64 = 2, K_BF16 = 3, K_VALUE = 4 };

typedef struct {
    int state; /* atomic */
    int64_t step;
    double when, loss, lr;
    uint32_t epoch;
    int has_loss, has_lr;
    const void **ptr;
    int *kind;
    double *value; /* K_VALUE: a sum of squares computed in Python */
    PyObject *keep; /* the snapshots (a list), dropped once measured */
} Job;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    PyObject **params;  /* owned */
    int64_t *numel;
    int *owner;
    int *want;          /* the dtype kind the parameter's gradient must have */
    int layers;
    int nparts;
    char **tmpl;
    Py_ssize_t *tmpl_len, *values_at;
    int *first, *count;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    PyObject *lazy_clone, *fallback;
    PyObject *f32, *f64, *bf16; /* torch dtypes */
    Job ring[RING];
    int64_t submitted;  /* jobs handed out, ring index = submitted % RING */
    int64_t worked;     /* next job the worker looks at */
    int64_t inline_left; /* steps to measure inline, the worker having been starved */
    pthread_t thread;
    int started, stop;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    double *sums;       /* the worker's scratch: per-layer sums */
    double *tsums;      /* the training thread's scratch (a stolen job) */
    int *present, *tpresent;
    /* counters (read from Python) */
    long long sent, dropped, stolen;
} Measurer;

static PyObject *s_grad, *s_data_ptr, *s_is_contiguous, *s_dtype, *s_is_cpu;

/* ---- arithmetic ---------------------------------------------------------------------- */

/* Sums of squares. float32: squares summed in float32 eight to a lane (blocks of 512), the
 * blocks summed in float64, so the result is as exact as a float64 sum to well within 1e-6;
 * should a float32 sum overflow (an element above about 1.8e19 overflows its square), the
 * tensor is summed again in float64. */
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SG_AVX2 1

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
#endif

static double sumsq_f32(const float *x, int64_t n)
{
    double total;
#ifdef SG_AVX2
    static int avx2 = -1;
    if (avx2 < 0)
        avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    total = avx2 ? sumsq_f32_avx2(x, n) : sumsq_f32_f64(x, n);
#else
    total = sumsq_f32_f64(x, n);
#endif
    if (isinf(total)) /* a float32 sum overflowed, or an element is infinite */
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

/* Measures and sends one job; any thread, no GIL. */
static void run_job(Measurer *m, Job *j, double *sums, int *present)
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
        case K_F32: s = sumsq_f32((const float *)j->ptr[t], m->numel[t]); break;
        case K_F64: s = sumsq_f64((const double *)j->ptr[t], m->numel[t]); break;
        case K_BF16: s = sumsq_bf16((const uint16_t *)j->ptr[t], m->numel[t]); break;
        case K_VALUE: s = j->value[t]; break;
        default: continue;
        }
        sums[m->owner[t]] += s;
        present[m->owner[t]] = 1;
        total += s;
        any = 1;
    }
    for (int p = 0; p < m->nparts; p++) {
        char *d = m->tmpl[p];
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
        ssize_t r = sendto(m->fd, d, (size_t)m->tmpl_len[p], MSG_DONTWAIT,
                           (struct sockaddr *)&m->addr, m->addrlen);
        if (r < 0)
            __atomic_add_fetch(&m->dropped, 1, __ATOMIC_RELAXED);
        else
            __atomic_add_fetch(&m->sent, 1, __ATOMIC_RELAXED);
    }
}

static void *worker(void *arg)
{
    Measurer *m = (Measurer *)arg;
    /* The lowest priority there is: this thread runs on a core nothing else wants, and never
     * takes the training thread's core from it; a step it has not started by the next one
     * is measured there (settle()). */
#ifdef SCHED_IDLE
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
#endif
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->stop && m->worked >= __atomic_load_n(&m->submitted, __ATOMIC_ACQUIRE))
            pthread_cond_wait(&m->wake, &m->mu);
        if (m->stop)
            break;
        Job *j = &m->ring[m->worked % RING];
        m->worked++;
        int expect = PENDING;
        if (!__atomic_compare_exchange_n(&j->state, &expect, RUNNING, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue; /* the training thread took it */
        pthread_mutex_unlock(&m->mu);
        run_job(m, j, m->sums, m->present);
        /* The snapshots are dropped on the training thread (release(), settle()): taking
         * the GIL here would make the training thread wait for this thread. */
        __atomic_store_n(&j->state, DONE, __ATOMIC_RELEASE);
        pthread_mutex_lock(&m->mu);
        pthread_cond_broadcast(&m->done);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- the training thread ------------------------------------------------------------- */

/* Waits (GIL released) until job j is no longer pending or running; measures it here if the
 * worker has not started it. */
static void settle(Measurer *m, Job *j)
{
    int expect = PENDING;
    if (__atomic_compare_exchange_n(&j->state, &expect, RUNNING, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        m->stolen++;
        /* No core was free for the worker: measuring within the call costs less than a
         * snapshot measured here later, so do that for a while, then try the worker again. */
        m->inline_left = INLINE_STEPS;
        Py_BEGIN_ALLOW_THREADS
        run_job(m, j, m->tsums, m->tpresent);
        Py_END_ALLOW_THREADS
        __atomic_store_n(&j->state, DONE, __ATOMIC_RELEASE);
    } else if (expect == RUNNING) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&m->mu);
        while (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == RUNNING)
            pthread_cond_wait(&m->done, &m->mu);
        pthread_mutex_unlock(&m->mu);
        Py_END_ALLOW_THREADS
    }
    if (__atomic_load_n(&j->state, __ATOMIC_ACQUIRE) == DONE) {
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

/* submit(step, epoch, when, loss, lr, inline) */
static PyObject *Measurer_submit(Measurer *m, PyObject *args)
{
    long long step;
    unsigned int epoch;
    double when;
    PyObject *loss, *lr;
    int inl = 0;
    if (!PyArg_ParseTuple(args, "LIdOO|p", &step, &epoch, &when, &loss, &lr, &inl))
        return NULL;
    double lossv = 0.0, lrv = 0.0;
    if (loss != Py_None && (lossv = PyFloat_AsDouble(loss)) == -1.0 && PyErr_Occurred())
        return NULL;
    if (lr != Py_None && (lrv = PyFloat_AsDouble(lr)) == -1.0 && PyErr_Occurred())
        return NULL;
    /* The previous jobs must be done before this one takes their place. */
    for (int64_t k = m->submitted - RING + 1; k < m->submitted; k++)
        if (k >= 0)
            settle(m, &m->ring[k % RING]);
    Job *j = &m->ring[m->submitted % RING];
    settle(m, j);
    if (m->inline_left > 0) {
        m->inline_left--;
        inl = 1;
    }
    PyObject *keep = PyList_New(0);
    if (keep == NULL)
        return NULL;
    for (Py_ssize_t t = 0; t < m->n; t++) {
        PyObject *g = PyObject_GetAttr(m->params[t], s_grad);
        if (g == NULL)
            goto fail;
        if (g == Py_None) {
            j->kind[t] = K_ABSENT;
            Py_DECREF(g);
            continue;
        }
        PyObject *dtype = PyObject_GetAttr(g, s_dtype);
        if (dtype == NULL) {
            Py_DECREF(g);
            goto fail;
        }
        int kind = kind_of(m, dtype);
        Py_DECREF(dtype);
        if (kind != K_VALUE) {
            /* Read in place only a dense CPU tensor; anything else (another device, a
             * sparse or strided gradient) is measured in Python. */
            PyObject *cpu = PyObject_GetAttr(g, s_is_cpu);
            PyObject *c = cpu == Py_True ? PyObject_CallMethodNoArgs(g, s_is_contiguous) : NULL;
            if (c != Py_True)
                kind = K_VALUE;
            Py_XDECREF(cpu);
            Py_XDECREF(c);
            PyErr_Clear();
        }
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
        /* The pointer first: asked of the snapshot (a copy-on-write tensor), data_ptr()
         * would copy the data. The snapshot keeps this buffer alive and unchanged: a later
         * in-place write to the gradient copies it elsewhere first. */
        PyObject *p = PyObject_CallMethodNoArgs(g, s_data_ptr);
        if (p == NULL) {
            Py_DECREF(g);
            goto fail;
        }
        j->ptr[t] = PyLong_AsVoidPtr(p);
        Py_DECREF(p);
        if (PyErr_Occurred()) {
            Py_DECREF(g);
            goto fail;
        }
        /* Measured within this call (inline), the gradient itself is enough. */
        PyObject *s = inl ? g : PyObject_CallOneArg(m->lazy_clone, g);
        if (!inl)
            Py_DECREF(g);
        if (s == NULL)
            goto fail;
        int r = PyList_Append(keep, s);
        Py_DECREF(s);
        if (r < 0)
            goto fail;
        j->kind[t] = kind;
    }
    j->step = step;
    j->epoch = epoch;
    j->when = when;
    j->has_loss = loss != Py_None;
    j->has_lr = lr != Py_None;
    j->loss = lossv;
    j->lr = lrv;
    j->keep = keep;
    if (inl) {
        j->state = RUNNING;
        m->submitted++;
        pthread_mutex_lock(&m->mu);
        m->worked = m->submitted > m->worked ? m->submitted : m->worked;
        pthread_mutex_unlock(&m->mu);
        Py_BEGIN_ALLOW_THREADS
        run_job(m, j, m->tsums, m->tpresent);
        Py_END_ALLOW_THREADS
        j->keep = NULL;
        j->state = FREE;
        Py_DECREF(keep);
        Py_RETURN_NONE;
    }
    if (start_worker(m) < 0) {
        j->keep = NULL;
        Py_DECREF(keep);
        return NULL;
    }
    __atomic_store_n(&j->state, PENDING, __ATOMIC_RELEASE);
    pthread_mutex_lock(&m->mu);
    __atomic_store_n(&m->submitted, m->submitted + 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    Py_RETURN_NONE;
fail:
    Py_DECREF(keep);
    return NULL;
}

/* release(): drops the snapshots of the steps the worker has measured; never waits. */
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
    for (int64_t k = m->submitted - RING; k < m->submitted; k++)
        if (k >= 0)
            settle(m, &m->ring[k % RING]);
    Py_RETURN_NONE;
}

static void stop_worker(Measurer *m)
{
    if (!m->started)
        return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&m->mu);
    __atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    Py_END_ALLOW_THREADS
    m->started = 0;
}

/* close(): sends what is pending, stops the worker. */
static PyObject *Measurer_close(Measurer *m, PyObject *unused)
{
    PyObject *r = Measurer_flush(m, NULL);
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
        PyMem_Free(m->ring[k].kind);
        PyMem_Free(m->ring[k].value);
    }
    for (Py_ssize_t t = 0; t < m->n && m->params; t++)
        Py_XDECREF(m->params[t]);
    PyMem_Free(m->params);
    PyMem_Free(m->numel);
    PyMem_Free(m->owner);
    for (int p = 0; p < m->nparts && m->tmpl; p++)
        PyMem_Free(m->tmpl[p]);
    PyMem_Free(m->tmpl);
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
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->done);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

/* Measurer(params, numels, owners, layers, templates, fd, family, address, port, lazy_clone,
 *          fallback, (float32, float64, bfloat16))
 * templates: [(datagram bytes, values offset, first layer, count)] */
static int Measurer_init(Measurer *m, PyObject *args, PyObject *kw)
{
    PyObject *params, *numels, *owners, *templates, *dtypes;
    int layers, fd, family, port;
    Py_buffer address;
    if (!PyArg_ParseTuple(args, "OOOiOiiy*iOOO", &params, &numels, &owners, &layers,
                          &templates, &fd, &family, &address, &port, &m->lazy_clone,
                          &m->fallback, &dtypes))
        return -1;
    Py_INCREF(m->lazy_clone);
    Py_INCREF(m->fallback);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->done, NULL);
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
    Py_ssize_t n = PySequence_Length(params);
    if (n < 0 || PySequence_Length(numels) != n || PySequence_Length(owners) != n)
        goto bad;
    m->n = n;
    m->layers = layers;
    m->params = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    m->numel = PyMem_Calloc(n ? n : 1, sizeof(int64_t));
    m->owner = PyMem_Calloc(n ? n : 1, sizeof(int));
    m->sums = PyMem_Calloc(layers ? layers : 1, sizeof(double));
    m->tsums = PyMem_Calloc(layers ? layers : 1, sizeof(double));
    m->present = PyMem_Calloc(layers ? layers : 1, sizeof(int));
    m->tpresent = PyMem_Calloc(layers ? layers : 1, sizeof(int));
    for (int k = 0; k < RING; k++) {
        m->ring[k].ptr = PyMem_Calloc(n ? n : 1, sizeof(void *));
        m->ring[k].kind = PyMem_Calloc(n ? n : 1, sizeof(int));
        m->ring[k].value = PyMem_Calloc(n ? n : 1, sizeof(double));
        if (!m->ring[k].ptr || !m->ring[k].kind || !m->ring[k].value)
            goto nomem;
    }
    if (!m->params || !m->numel || !m->owner || !m->sums || !m->tsums || !m->present ||
        !m->tpresent)
        goto nomem;
    for (Py_ssize_t t = 0; t < n; t++) {
        PyObject *p = PySequence_GetItem(params, t);
        PyObject *e = PySequence_GetItem(numels, t);
        PyObject *o = PySequence_GetItem(owners, t);
        m->params[t] = p;
        m->numel[t] = e ? PyLong_AsLongLong(e) : -1;
        m->owner[t] = o ? (int)PyLong_AsLong(o) : -1;
        Py_XDECREF(e);
        Py_XDECREF(o);
        if (p == NULL || PyErr_Occurred() || m->owner[t] < 0 || m->owner[t] >= layers)
            goto bad;
    }
    Py_ssize_t np = PySequence_Length(templates);
    if (np <= 0)
        goto bad;
    m->tmpl = PyMem_Calloc(np, sizeof(char *));
    m->tmpl_len = PyMem_Calloc(np, sizeof(Py_ssize_t));
    m->values_at = PyMem_Calloc(np, sizeof(Py_ssize_t));
    m->first = PyMem_Calloc(np, sizeof(int));
    m->count = PyMem_Calloc(np, sizeof(int));
    if (!m->tmpl || !m->tmpl_len || !m->values_at || !m->first || !m->count)
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
        m->tmpl[p] = PyMem_Malloc(len);
        if (m->tmpl[p] == NULL) {
            Py_DECREF(item);
            goto nomem;
        }
        memcpy(m->tmpl[p], data, len);
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
    return Py_BuildValue("(LLL)", __atomic_load_n(&m->sent, __ATOMIC_RELAXED),
                         __atomic_load_n(&m->dropped, __ATOMIC_RELAXED), m->stolen);
}

static PyMethodDef Measurer_methods[] = {
    {"submit", (PyCFunction)Measurer_submit, METH_VARARGS,
     "submit(step, epoch, when, loss, lr, inline=False): snapshots the gradients and hands "
     "them to the worker (measures and sends them here when inline)."},
    {"release", (PyCFunction)Measurer_release, METH_NOARGS,
     "Drops the snapshots of the steps already measured (never waits)."},
    {"flush", (PyCFunction)Measurer_flush, METH_NOARGS, "Waits until every step is sent."},
    {"close", (PyCFunction)Measurer_close, METH_NOARGS, "Flushes and stops the worker."},
    {"counters", (PyCFunction)Measurer_counters, METH_NOARGS,
     "(datagrams sent, datagrams dropped, steps measured on the training thread)"},
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
    if (PyType_Ready(&MeasurerType) < 0)
        return NULL;
    s_grad = PyUnicode_InternFromString("grad");
    s_data_ptr = PyUnicode_InternFromString("data_ptr");
    s_is_contiguous = PyUnicode_InternFromString("is_contiguous");
    s_dtype = PyUnicode_InternFromString("dtype");
    s_is_cpu = PyUnicode_InternFromString("is_cpu");
    if (!s_grad || !s_data_ptr || !s_is_contiguous || !s_dtype || !s_is_cpu)
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
    return mod;
}

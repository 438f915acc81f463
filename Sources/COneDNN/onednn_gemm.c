// oneDNN behind a BLAS-like call (see include/COneDNN.h). oneDNN picks its
// kernels by CPU at run time (AVX2, AVX-512, AMX), so one binary serves every
// host; lt_onednn_matmul_kernel says which one it picked.
#include "COneDNN.h"
#include "CKernels.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The two OpenMP calls used, declared here: Swift's clang ships no omp.h, and
// oneDNN's OpenMP runtime (libgomp) is linked anyway.
int omp_get_max_threads(void);
void omp_set_num_threads(int threads);

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void engine_init(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

// oneDNN (an OpenMP build) takes its thread count from the calling thread's
// OpenMP setting; the engine's own parallel loops call it with 1 so that two
// levels of threads do not fight over the cores.
static void use_threads(int threads) {
    if (threads < 1) threads = 1;
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

int lt_onednn_sgemm(int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
                    float beta, float *c, long ldc, int threads) {
    use_threads(threads);
    dnnl_status_t s = dnnl_sgemm(transa ? 'T' : 'N', transb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return s == dnnl_success ? LT_ONEDNN_OK : LT_ONEDNN_FAILED;
}

// The GEMM thread count of the calling thread when a scope has set one (0 =
// none): per thread, so that one thread's single-threaded scope (attention
// heads, Winograd products) does not change another thread's GEMMs.
static __thread int gemm_threads_here;
int lt_gemm_threads_here(void) { return gemm_threads_here; }
void lt_set_gemm_threads_here(int threads) { gemm_threads_here = threads < 0 ? 0 : threads; }

// ---- matmul primitives, cached by shape ------------------------------------

typedef struct {
    int type, transa, transb, threads;
    long m, n, k, ldc;
    float alpha, beta;
} matmul_key;

typedef struct {
    matmul_key key;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a, b, c, scratchpad;
    size_t scratchpad_bytes;
} matmul_entry;

enum { CACHE_SIZE = 512 };
static matmul_entry cache[CACHE_SIZE];
static int cache_count;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static dnnl_data_type_t data_type(int type) { return type == LT_ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32; }

// Describes op(X) (rows × cols) over a packed copy of the stored matrix.
static dnnl_status_t describe(dnnl_memory_desc_t *md, long rows, long cols, int transposed, dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {transposed ? 1 : cols, transposed ? rows : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

// Creates the primitive for `key`; *status says why not.
static int create_entry(const matmul_key *key, matmul_entry *entry) {
    dnnl_data_type_t type = data_type(key->type);
    entry->key = *key;
    if (describe(&entry->a, key->m, key->k, key->transa, type) != dnnl_success) return LT_ONEDNN_FAILED;
    if (describe(&entry->b, key->k, key->n, key->transb, type) != dnnl_success) return LT_ONEDNN_FAILED;
    dnnl_dims_t cdims = {key->m, key->n}, cstrides = {key->ldc, 1};
    if (dnnl_memory_desc_init_by_strides(&entry->c, 2, cdims, dnnl_f32, cstrides) != dnnl_success) return LT_ONEDNN_FAILED;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &entry->a, &entry->b, NULL, &entry->c) != dnnl_success) return LT_ONEDNN_FAILED;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int result = LT_ONEDNN_FAILED;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) goto done;
    // The caller passes the scratchpad (a per-thread buffer). With oneDNN's
    // own ("library") scratchpad, Debian's build (no DNNL_ENABLE_CONCURRENT_EXEC)
    // let concurrent executions of one cached primitive share it: the bf16
    // kernels copy transposed operands there, and the attention heads, run in
    // parallel with the same shapes, read each other's copies (garbage and NaN
    // in bf16 training gradients on an AVX512-BF16 host; GEMMRoutingTests'
    // concurrent test). oneDNN's documented way to run a primitive from
    // several threads at once is a user scratchpad.
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success) goto done;
    if (key->alpha != 1 && dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha) != dnnl_success) goto done;
    if (key->beta != 0) {
        // C = alpha·A·B + beta·C: oneDNN's "sum" post-op adds the scaled previous C.
        if (dnnl_post_ops_create(&post) != dnnl_success || dnnl_post_ops_append_sum(post, key->beta) != dnnl_success) goto done;
        if (dnnl_primitive_attr_set_post_ops(attr, post) != dnnl_success) goto done;
    }
    use_threads(key->threads);
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    if (s == dnnl_unimplemented) { result = LT_ONEDNN_UNIMPLEMENTED; goto done; }
    if (s != dnnl_success) goto done;
    const dnnl_memory_desc_t *scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (scratchpad) entry->scratchpad = *scratchpad;
    else memset(&entry->scratchpad, 0, sizeof entry->scratchpad);
    entry->scratchpad_bytes = scratchpad ? dnnl_memory_desc_get_size(scratchpad) : 0;
    if (dnnl_primitive_create(&entry->primitive, pd) != dnnl_success) goto done;
    result = LT_ONEDNN_OK;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (post) dnnl_post_ops_destroy(post);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return result;
}

static int lookup(const matmul_key *key, matmul_entry *out) {
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_count; i++) {
        if (memcmp(&cache[i].key, key, sizeof *key) == 0) {
            *out = cache[i];
            pthread_mutex_unlock(&cache_lock);
            return LT_ONEDNN_OK;
        }
    }
    int status = create_entry(key, out);
    if (status == LT_ONEDNN_OK) {
        if (cache_count == CACHE_SIZE) {
            // A workload with this many shapes is not the engine's; start over
            // (primitives in use elsewhere stay alive: oneDNN refcounts them).
            for (int i = 0; i < cache_count; i++) dnnl_primitive_destroy(cache[i].primitive);
            cache_count = 0;
            status = create_entry(key, out);
        }
        if (status == LT_ONEDNN_OK) cache[cache_count++] = *out;
    }
    pthread_mutex_unlock(&cache_lock);
    return status;
}

// Per-thread packing buffers, grown on demand and kept (the engine calls with
// the same shapes again and again).
typedef struct { void *data; size_t bytes; } buffer;
static __thread buffer pack_a, pack_b, scratch;
static void *reserve(buffer *b, size_t bytes) {
    if (b->bytes < bytes) {
        free(b->data);
        b->data = malloc(bytes);
        b->bytes = b->data ? bytes : 0;
    }
    return b->data;
}

// Copies a stored rows × cols matrix (leading dimension ld) into a packed
// buffer of `type`.
static void *pack(buffer *b, int type, const float *src, long rows, long cols, long ld) {
    size_t element = type == LT_ONEDNN_BF16 ? 2 : 4;
    char *dst = reserve(b, (size_t)rows * (size_t)cols * element);
    if (!dst) return NULL;
    for (long r = 0; r < rows; r++) {
        if (type == LT_ONEDNN_BF16) lt_f32_to_bf16(src + r * ld, dst + (size_t)r * cols * 2, (size_t)cols);
        else memcpy(dst + (size_t)r * cols * 4, src + r * ld, (size_t)cols * 4);
    }
    return dst;
}

int lt_onednn_matmul(int type, int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                     long ldb, float beta, float *c, long ldc, int threads) {
    pthread_once(&engine_once, engine_init);
    if (!engine) return LT_ONEDNN_FAILED;
    matmul_key key;
    memset(&key, 0, sizeof key);  // padding bytes take part in memcmp
    key.type = type; key.transa = transa != 0; key.transb = transb != 0; key.threads = threads < 1 ? 1 : threads;
    key.m = m; key.n = n; key.k = k; key.ldc = ldc; key.alpha = alpha; key.beta = beta;
    matmul_entry entry;
    int status = lookup(&key, &entry);
    if (status != LT_ONEDNN_OK) return status;
    // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k).
    void *pa = pack(&pack_a, type, a, transa ? k : m, transa ? m : k, lda);
    void *pb = pack(&pack_b, type, b, transb ? n : k, transb ? k : n, ldb);
    void *ps = entry.scratchpad_bytes ? reserve(&scratch, entry.scratchpad_bytes) : NULL;
    if (!pa || !pb || (entry.scratchpad_bytes && !ps)) return LT_ONEDNN_FAILED;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, ms = NULL;
    dnnl_stream_t stream = NULL;
    status = LT_ONEDNN_FAILED;
    if (dnnl_memory_create(&ma, &entry.a, engine, pa) != dnnl_success) goto done;
    if (dnnl_memory_create(&mb, &entry.b, engine, pb) != dnnl_success) goto done;
    if (dnnl_memory_create(&mc, &entry.c, engine, c) != dnnl_success) goto done;
    if (ps && dnnl_memory_create(&ms, &entry.scratchpad, engine, ps) != dnnl_success) goto done;
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) goto done;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}};
    use_threads(threads);
    if (dnnl_primitive_execute(entry.primitive, stream, ms ? 4 : 3, args) != dnnl_success) goto done;
    if (dnnl_stream_wait(stream) != dnnl_success) goto done;
    status = LT_ONEDNN_OK;
done:
    if (stream) dnnl_stream_destroy(stream);
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (ms) dnnl_memory_destroy(ms);
    return status;
}

static char kernel_names[2][64];
static int bf16_state = -1;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static void probe(void) {
    pthread_once(&engine_once, engine_init);
    for (int type = 0; type < 2; type++) {
        kernel_names[type][0] = 0;
        if (!engine) continue;
        dnnl_memory_desc_t a, b, c;
        dnnl_dims_t dims = {256, 256};
        dnnl_memory_desc_init_by_tag(&a, 2, dims, data_type(type), dnnl_ab);
        dnnl_memory_desc_init_by_tag(&b, 2, dims, data_type(type), dnnl_ab);
        dnnl_memory_desc_init_by_tag(&c, 2, dims, dnnl_f32, dnnl_ab);
        dnnl_matmul_desc_t desc;
        dnnl_primitive_desc_t pd = NULL;
        if (dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c) != dnnl_success) continue;
        if (dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL) != dnnl_success) continue;
        const char *name = NULL;
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name) {
            strncpy(kernel_names[type], name, sizeof kernel_names[type] - 1);
        }
        dnnl_primitive_desc_destroy(pd);
    }
    bf16_state = kernel_names[1][0] != 0;
}

int lt_onednn_bf16_available(void) {
    pthread_once(&probe_once, probe);
    return bf16_state;
}

const char *lt_onednn_matmul_kernel(int type) {
    pthread_once(&probe_once, probe);
    return kernel_names[type == LT_ONEDNN_BF16 ? 1 : 0];
}

const char *lt_onednn_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

void lt_round_to_bf16(const float *src, float *dst, size_t count) {
    // Through CKernels' conversions (nearest-even, NaN kept), in L1-sized pieces.
    uint16_t half[1024];
    for (size_t i = 0; i < count; i += 1024) {
        size_t piece = count - i < 1024 ? count - i : 1024;
        lt_f32_to_bf16(src + i, half, piece);
        lt_bf16_to_f32(half, dst + i, piece);
    }
}

// GPU machine, measurement only (session 20, not product code): why do Engine's 4-bit GEMVs reach only 56-64 % of the
// copy rate on an H200 (gpu-selftest: Q4_K 14336 x 4096 58 %, Q8_0 89 %), and what geometry would reach it?
// A 4.5-bit GEMV in Engine's geometry: 128 threads a group, every warp takes all of the group's rows over its share of
// the columns (lane unit: 32 weights = 16 bytes of nibbles + an f16 scale), int8 activations with f32 scales per 32,
// warp sums by shuffles, then across warps in shared memory. Variants:
//   rows4   : 4 rows a group, grid rows / 4 (Engine today)
//   rows8   : 8 rows a group, grid rows / 8 (twice the loads in flight a thread)
//   pers B  : persistent, B groups an SM, each walks quads of 4 rows (q += grid) with the next quad's weights loaded
//             into registers before the current quad's arithmetic (a software pipeline across quads)
//   wrowR wW: (session 25) each warp takes R whole rows, W warps a group (grid rows / (R W)), a lane's CH units of a row
//             loaded before their arithmetic, x re-read from L1 a unit; no barrier, one warp sum a row. Its sums are in
//             another order ("reordered": within 1e-4 of rows4's). H200: 83-94 % of the copy rate on the large
//             matrices at 32-46 registers; built into Engine it lost (docs/benchmarks.md "Session 25").
// Each variant: 32 launches in a CUDA graph with programmatic launches, each over its own matrix (no L2 reuse), as
// µs a GEMV and % of the device copy rate; outputs checked against rows4's (same arithmetic order: equal bit for bit).
//   nvcc -O3 -arch=sm_90 -std=c++17 scripts/device/gemvbench.cu -o /tmp/gb && /tmp/gb
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <initializer_list>
#include <cmath>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include "bench.cuh"

struct Mat { const uint4* q; const __half* s; };   // q: rows x cols/32 units of 16 bytes; s: rows x cols/32 scales

// sums R row partials over the group; thread r < R stores row r0 + r
template <int R>
__device__ __forceinline__ void group_store(float* p, float* part, float* y, int r0, int buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int r = 0; r < R; r++) for (int o = 16; o; o >>= 1) p[r] += __shfl_xor_sync(0xffffffff, p[r], o);
    float* b = part + buf * 4 * R;
    if (lane == 0) {
#pragma unroll
        for (int r = 0; r < R; r++) b[warp * R + r] = p[r];
    }
    __syncthreads();
    if (threadIdx.x < R) y[r0 + threadIdx.x] = b[threadIdx.x] + b[R + threadIdx.x] + b[2 * R + threadIdx.x] + b[3 * R + threadIdx.x];
}

// R rows a group, grid rows / R
template <int COLS, int R>
__global__ void __launch_bounds__(128) k_rows(Mat m, const int8_t* xq, const float* xs, float* y) {
    constexpr int U = COLS / 32;
    __shared__ float part[2 * 4 * R];
    const int r0 = blockIdx.x * R;
    pdl_trigger();
    pdl_wait();
    float p[R];
#pragma unroll
    for (int r = 0; r < R; r++) p[r] = 0;
    for (int g = threadIdx.x; g < U; g += 128) {
        uint4 w[R]; float s[R];
#pragma unroll
        for (int r = 0; r < R; r++) { w[r] = __ldcs(m.q + (size_t)(r0 + r) * U + g); s[r] = __half2float(m.s[(size_t)(r0 + r) * U + g]); }
        const int4* x4 = reinterpret_cast<const int4*>(xq + 32 * g);
        int4 xa = __ldcg(x4), xb = __ldcg(x4 + 1); float xsc = __ldcg(xs + g);
#pragma unroll
        for (int r = 0; r < R; r++) p[r] += (float)dot4_unit(w[r], xa, xb) * s[r] * xsc;
    }
    group_store<R>(p, part, y, r0, 0);
}

// persistent: quads q = blockIdx.x, + gridDim.x, ...; 4096-column rows only (one unit a thread a row), the next quad's
// four units loaded before the current quad's arithmetic
template <int COLS>
__global__ void __launch_bounds__(128) k_pers(Mat m, const int8_t* xq, const float* xs, float* y, int quads) {
    static_assert(COLS == 128 * 32, "one unit a thread");
    constexpr int U = COLS / 32;
    __shared__ float part[2 * 4 * 4];
    const int g = threadIdx.x;
    int q = blockIdx.x;
    pdl_trigger();
    uint4 w[4]; float s[4];
#pragma unroll
    for (int r = 0; r < 4; r++) { w[r] = __ldcs(m.q + (size_t)(4 * q + r) * U + g); s[r] = __half2float(m.s[(size_t)(4 * q + r) * U + g]); }
    pdl_wait();
    const int4* x4 = reinterpret_cast<const int4*>(xq + 32 * g);
    int4 xa = __ldcg(x4), xb = __ldcg(x4 + 1); float xsc = __ldcg(xs + g);
    int buf = 0;
    for (; q < quads; q += gridDim.x) {
        uint4 wn[4]; float sn[4];
        int qn = q + gridDim.x < quads ? q + gridDim.x : q;
#pragma unroll
        for (int r = 0; r < 4; r++) { wn[r] = __ldcs(m.q + (size_t)(4 * qn + r) * U + g); sn[r] = __half2float(m.s[(size_t)(4 * qn + r) * U + g]); }
        float p[4];
#pragma unroll
        for (int r = 0; r < 4; r++) p[r] = (float)dot4_unit(w[r], xa, xb) * s[r] * xsc;
        group_store<4>(p, part, y, 4 * q, buf);
        buf ^= 1;
#pragma unroll
        for (int r = 0; r < 4; r++) { w[r] = wn[r]; s[r] = sn[r]; }
    }
}


// warp rows (session 25): each warp takes R whole rows (no barrier, no shared memory: a warp reduction and one store a
// row); a lane takes units lane, lane + 32, ... of each row, CH units a row loaded before any arithmetic; x re-read per
// unit from L1. WPB warps a group (grid rows / (R * WPB)).
template <int COLS, int R, int CH>
__global__ void k_wrow(Mat m, const int8_t* xq, const float* xs, float* y) {
    constexpr int U = COLS / 32;
    const int lane = threadIdx.x & 31;
    const int r0 = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * R;
    pdl_trigger();
    pdl_wait();
    float p[R];
#pragma unroll
    for (int r = 0; r < R; r++) p[r] = 0;
    for (int c = 0; c < U; c += 32 * CH) {
        uint4 w[R][CH]; float s[R][CH];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int u = 0; u < CH; u++) {
                int g = c + 32 * u + lane; if (g >= U) g = U - 1;
                w[r][u] = __ldcs(m.q + (size_t)(r0 + r) * U + g); s[r][u] = __half2float(m.s[(size_t)(r0 + r) * U + g]);
            }
#pragma unroll
        for (int u = 0; u < CH; u++) {
            const int g = c + 32 * u + lane;
            if (g < U) {
                const int4* x4 = reinterpret_cast<const int4*>(xq + 32 * g);
                int4 xa = __ldg(x4), xb = __ldg(x4 + 1); float xsc = __ldg(xs + g);
#pragma unroll
                for (int r = 0; r < R; r++) p[r] += (float)dot4_unit(w[r][u], xa, xb) * s[r][u] * xsc;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) for (int o = 16; o; o >>= 1) p[r] += __shfl_xor_sync(0xffffffff, p[r], o);
    if (lane < R) {
        float v = p[0];
#pragma unroll
        for (int r = 1; r < R; r++) if (lane == r) v = p[r];
        y[r0 + lane] = v;
    }
}

__global__ void k_fill(uint8_t* p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}
__global__ void k_fill_h(__half* p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) p[i] = __float2half(0.001f + 0.0001f * (i % 7));
}

template <typename K, typename... A>
static void launchB(cudaStream_t s, K k, int grid, int block, A... args) {
    cudaLaunchConfig_t cfg = {}; cudaLaunchAttribute attr[1];
    cfg.gridDim = dim3(grid); cfg.blockDim = dim3(block); cfg.stream = s;
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr; cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, k, args...));
}

template <typename K, typename... A>
static void launch(cudaStream_t s, K k, int grid, A... args) { launchB(s, k, grid, 128, args...); }

constexpr int N = 32;
static double copyRate;
static int sms;

template <int COLS>
static void shape(int rows) {
    constexpr int U = COLS / 32;
    size_t qb = (size_t)rows * U * 16, sb = (size_t)rows * U * 2;
    static Mat m[N]; uint8_t* base; __half* sbase;
    CK(cudaMalloc(&base, qb * N)); CK(cudaMalloc(&sbase, sb * N));
    k_fill<<<2048, 256>>>(base, qb * N, 11); k_fill_h<<<2048, 256>>>(sbase, sb / 2 * N);
    for (int i = 0; i < N; i++) { m[i].q = reinterpret_cast<const uint4*>(base + qb * i); m[i].s = sbase + sb / 2 * i; }
    int8_t* xq; float* xs; float *y, *y0;
    CK(cudaMalloc(&xq, COLS)); CK(cudaMalloc(&xs, COLS / 32 * 4)); CK(cudaMalloc(&y, rows * 4)); CK(cudaMalloc(&y0, rows * 4));
    k_fill<<<16, 256>>>(reinterpret_cast<uint8_t*>(xq), COLS, 5); k_fill_h<<<16, 256>>>(reinterpret_cast<__half*>(xs), COLS / 32 * 2);
    CK(cudaDeviceSynchronize());
    cudaStream_t s; CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    static float h0[65536], h1[65536];
    launch(s, k_rows<COLS, 4>, rows / 4, m[0], (const int8_t*)xq, (const float*)xs, y0);
    CK(cudaStreamSynchronize(s)); CK(cudaMemcpy(h0, y0, rows * 4, cudaMemcpyDeviceToHost));
    auto time = [&](const char* name, auto fn) {
        CK(cudaMemset(y, 0xff, rows * 4));
        fn(s, 0); CK(cudaStreamSynchronize(s)); CK(cudaGetLastError());
        CK(cudaMemcpy(h1, y, rows * 4, cudaMemcpyDeviceToHost));
        int bad = 0; double md = 0; for (int i = 0; i < rows; i++) { if (h0[i] != h1[i]) bad++; double d = fabs((double)h0[i] - h1[i]) / (fabs((double)h0[i]) + 1e-3); if (d > md) md = d; }
        cudaGraph_t graph; cudaGraphExec_t exec;
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < N; i++) fn(s, i);
        CK(cudaStreamEndCapture(s, &graph)); CK(cudaGraphInstantiate(&exec, graph, 0));
        for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(exec, s));
        CK(cudaEventRecord(e0, s)); for (int i = 0; i < 20; i++) CK(cudaGraphLaunch(exec, s)); CK(cudaEventRecord(e1, s)); CK(cudaEventSynchronize(e1));
        float t; CK(cudaEventElapsedTime(&t, e0, e1)); double us = t * 1000 / 20 / N;
        double at = (qb + sb) / copyRate * 1e6;
        printf("%5d x %5d %-10s %7.2f us  at copy rate %6.2f us  %5.1f %%  %s\n", rows, COLS, name, us, at, 100 * at / us, bad ? (md < 1e-4 ? "reordered" : "OUTPUT DIFFERS") : "equal");
        CK(cudaGraphExecDestroy(exec)); CK(cudaGraphDestroy(graph));
    };
    for (int round = 0; round < 2; round++) {
        time("rows4", [&](cudaStream_t st, int i) { launch(st, k_rows<COLS, 4>, rows / 4, m[i], (const int8_t*)xq, (const float*)xs, y); });
        time("rows8", [&](cudaStream_t st, int i) { launch(st, k_rows<COLS, 8>, rows / 8, m[i], (const int8_t*)xq, (const float*)xs, y); });
        {
            constexpr int CH = COLS == 4096 ? 4 : 7;
            for (int wpb : {1, 2, 4}) {
                char nm[24];
                snprintf(nm, sizeof nm, "wrow1 w%d", wpb);
                time(nm, [&](cudaStream_t st, int i) { launchB(st, k_wrow<COLS, 1, CH>, rows / wpb, 32 * wpb, m[i], (const int8_t*)xq, (const float*)xs, y); });
                snprintf(nm, sizeof nm, "wrow2 w%d", wpb);
                time(nm, [&](cudaStream_t st, int i) { launchB(st, k_wrow<COLS, 2, CH>, rows / 2 / wpb, 32 * wpb, m[i], (const int8_t*)xq, (const float*)xs, y); });
            }
            time("wrow2 ch2 w4", [&](cudaStream_t st, int i) { launchB(st, k_wrow<COLS, 2, 2>, rows / 8, 128, m[i], (const int8_t*)xq, (const float*)xs, y); });
            time("wrow4 ch2 w4", [&](cudaStream_t st, int i) { launchB(st, k_wrow<COLS, 4, 2>, rows / 16, 128, m[i], (const int8_t*)xq, (const float*)xs, y); });
        }
        if constexpr (COLS == 4096) {
            for (int b : {4, 8, 12, 16}) {
                char nm[16]; snprintf(nm, sizeof nm, "pers %d", b);
                int grid = sms * b < rows / 4 ? sms * b : rows / 4;
                time(nm, [&](cudaStream_t st, int i) { launch(st, k_pers<COLS>, grid, m[i], (const int8_t*)xq, (const float*)xs, y, rows / 4); });
            }
        }
    }
    CK(cudaFree(base)); CK(cudaFree(sbase)); CK(cudaFree(xq)); CK(cudaFree(xs)); CK(cudaFree(y)); CK(cudaFree(y0));
}

int main() {
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    uint8_t *c0, *c1; size_t cb = (size_t)1 << 30; CK(cudaMalloc(&c0, cb)); CK(cudaMalloc(&c1, cb));
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    CK(cudaMemcpy(c1, c0, cb, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e0)); for (int i = 0; i < 5; i++) CK(cudaMemcpy(c1, c0, cb, cudaMemcpyDeviceToDevice)); CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
    float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
    copyRate = 2.0 * cb * 5 / (ms / 1000);
    CK(cudaFree(c0)); CK(cudaFree(c1));
    printf("%d SMs, device copy (read + write) %.0f GB/s\n", sms, copyRate / 1e9);
    shape<4096>(4096);
    shape<4096>(14336);
    shape<4096>(28672);
    shape<14336>(4096);
    return 0;
}

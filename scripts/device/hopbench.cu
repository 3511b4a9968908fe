// GPU machine, measurement only (session 17, not product code): what one dependency between two steps costs on this
// GPU, four ways (docs/benchmarks.md "Session 17", "What a dependency costs").
//  chain-pdl : a CUDA graph of N kernels launched with programmatic stream serialization; each kernel triggers its
//              dependents at entry, then griddepcontrol.wait (as Engine's kernels do).
//  chain     : the same graph without the attribute (plain stream order).
//  persistent: one kernel of G groups walking N phases separated by a software grid barrier (an arrival counter
//              with __threadfence and a generation word, as cooperative groups' grid sync does).
//  persistent-mono: the same with the cheapest barrier (a counter that only grows: atom.add.release, ld.acquire).
// Work per step: "none" (thread 0 of group 0 carries a value), or "x" (every group reads the 16 KB vector the step before
// wrote, sums it, and writes 4096/G floats of the next one: a GEMV's data dependency without its weights).
// Build and run there (nvcc is on the device image):
//   nvcc -O3 -arch=sm_90 -std=c++17 scripts/device/hopbench.cu -o /tmp/hb && /tmp/hb
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include "bench.cuh"

constexpr int N = 256;          // steps per graph / phases per persistent launch
constexpr int COLS = 4096;

__device__ __forceinline__ void step_work(const float* __restrict__ xin, float* __restrict__ xout, int groups, bool x)
{
    if (!x) {
        if (blockIdx.x == 0 && threadIdx.x == 0) xout[0] = xin[0] + 1.0f;
        return;
    }
    // every group reads the whole vector (coalesced float4, 128 threads x 8), sums, writes its share of the next
    __shared__ float part[4];
    const float4* v = reinterpret_cast<const float4*>(xin);
    float s = 0;
    #pragma unroll
    for (int k = 0; k < COLS / 4 / 128; k++) { float4 f = __ldcg(v + threadIdx.x + 128 * k); s += f.x + f.y + f.z + f.w; }
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    float t = part[0] + part[1] + part[2] + part[3];
    int share = (COLS + groups - 1) / groups;
    for (int i = threadIdx.x; i < share; i += 128) { int j = blockIdx.x * share + i; if (j < COLS) xout[j] = t * 1e-9f + 1.0f; }
    __syncthreads();
}

__global__ void k_step(const float* xin, float* xout, int groups, int x, int pdl)
{
    if (pdl) { asm volatile("griddepcontrol.launch_dependents;"); asm volatile("griddepcontrol.wait;" ::: "memory"); }
    step_work(xin, xout, groups, x);
}

__device__ unsigned int g_count, g_gen;

__global__ void k_persistent(float* bufs, int groups, int x, int phases)
{
    unsigned int gen = 0;
    if (threadIdx.x == 0) asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(gen) : "l"(&g_gen));
    for (int p = 0; p < phases; p++) {
        step_work(bufs + (p & 1) * COLS, bufs + ((p + 1) & 1) * COLS, groups, x);
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned int arrived = atomicAdd(&g_count, 1u);   // relaxed; the fence below orders this group's writes
            __threadfence();
            if (arrived == (unsigned)groups - 1) {
                g_count = 0;
                __threadfence();
                asm volatile("st.release.gpu.u32 [%0], %1;" :: "l"(&g_gen), "r"(gen + 1) : "memory");
            } else {
                unsigned int g;
                do { asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(g) : "l"(&g_gen) : "memory"); } while (g == gen);
            }
            gen++;
        }
        __syncthreads();
    }
}

// The cheapest barrier: a counter that only grows; a group arrives with atom.add.release and waits with ld.acquire
// until every group of this phase arrived (no reset, no full fence).
__device__ unsigned int g_mono;
__global__ void k_persistent_mono(float* bufs, int groups, int x, int phases, unsigned int base)
{
    for (int p = 0; p < phases; p++) {
        step_work(bufs + (p & 1) * COLS, bufs + ((p + 1) & 1) * COLS, groups, x);
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned int old, target = base + (unsigned)groups * (p + 1), g;
            asm volatile("atom.add.release.gpu.u32 %0, [%1], 1;" : "=r"(old) : "l"(&g_mono) : "memory");
            (void)old;
            do { asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(g) : "l"(&g_mono) : "memory"); } while ((int)(g - target) < 0);
        }
        __syncthreads();
    }
}

static float time_graph(cudaStream_t s, cudaGraphExec_t g, int reps)
{
    cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(g, s));
    CK(cudaEventRecord(a, s));
    for (int i = 0; i < reps; i++) CK(cudaGraphLaunch(g, s));
    CK(cudaEventRecord(b, s)); CK(cudaEventSynchronize(b));
    float ms; CK(cudaEventElapsedTime(&ms, a, b));
    return ms * 1000.0f / reps;
}

int main()
{
    cudaStream_t s; CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float* bufs; CK(cudaMalloc(&bufs, (N + 1) * COLS * sizeof(float)));
    CK(cudaMemset(bufs, 0, (N + 1) * COLS * sizeof(float)));
    int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    int groupsList[] = {1, 32, sms, 4 * sms, 8 * sms};
    printf("mode | work | groups | us per step\n");
    for (int x = 0; x < 2; x++)
        for (int gi = 0; gi < 5; gi++) {
            int groups = groupsList[gi];
            if (!x && groups > sms) continue;
            for (int pdl = 0; pdl < 2; pdl++) {
                cudaGraph_t graph; cudaGraphExec_t exec;
                CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
                for (int i = 0; i < N; i++) {
                    cudaLaunchConfig_t cfg = {}; cudaLaunchAttribute attr[1];
                    cfg.gridDim = dim3(groups); cfg.blockDim = dim3(128); cfg.stream = s;
                    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
                    attr[0].val.programmaticStreamSerializationAllowed = 1;
                    cfg.attrs = attr; cfg.numAttrs = pdl ? 1 : 0;
                    const float* xin = bufs + (size_t)(i & 1) * COLS; float* xout = bufs + (size_t)((i + 1) & 1) * COLS;
                    CK(cudaLaunchKernelEx(&cfg, k_step, xin, xout, groups, x, pdl));
                }
                CK(cudaStreamEndCapture(s, &graph));
                CK(cudaGraphInstantiate(&exec, graph, 0));
                float us = time_graph(s, exec, 20) / N;
                printf("%s | %s | %d | %.3f\n", pdl ? "chain-pdl" : "chain", x ? "x" : "none", groups, us);
                CK(cudaGraphExecDestroy(exec)); CK(cudaGraphDestroy(graph));
            }
            // persistent: all groups must be resident (128 threads: up to 16 an SM)
            cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
            for (int w = 0; w < 2; w++) k_persistent<<<groups, 128, 0, s>>>(bufs, groups, x, N);
            CK(cudaEventRecord(a, s));
            for (int r = 0; r < 20; r++) k_persistent<<<groups, 128, 0, s>>>(bufs, groups, x, N);
            CK(cudaEventRecord(b, s)); CK(cudaEventSynchronize(b)); CK(cudaGetLastError());
            float ms; CK(cudaEventElapsedTime(&ms, a, b));
            printf("persistent | %s | %d | %.3f\n", x ? "x" : "none", groups, ms * 1000.0f / 20 / N);
            unsigned int base = 0;
            CK(cudaMemcpyToSymbol(g_mono, &base, sizeof base));
            for (int w = 0; w < 2; w++, base += (unsigned)groups * N) k_persistent_mono<<<groups, 128, 0, s>>>(bufs, groups, x, N, base);
            CK(cudaEventRecord(a, s));
            for (int r = 0; r < 20; r++, base += (unsigned)groups * N) k_persistent_mono<<<groups, 128, 0, s>>>(bufs, groups, x, N, base);
            CK(cudaEventRecord(b, s)); CK(cudaEventSynchronize(b)); CK(cudaGetLastError());
            CK(cudaEventElapsedTime(&ms, a, b));
            printf("persistent-mono | %s | %d | %.3f\n", x ? "x" : "none", groups, ms * 1000.0f / 20 / N);
        }
    return 0;
}

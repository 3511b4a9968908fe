// GPU machine, measurement only: what the single-file CUDA C++ benchmarks here share (gemvbench.cu, streambench.cu,
// hopbench.cu). Included by relative path, so each still builds with one nvcc line from the repository root.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cuda_runtime.h>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

// Programmatic dependent launch, as Engine's kernels use it: let the next launch start, then wait for the one before.
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;"); }
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// The integer dot of one 4.5-bit lane unit: 32 weights as 16 bytes of nibbles (low nibbles the first 16, high nibbles
// the next 16, each stored + 8) with 32 int8 activations (xa the first 16, xb the next 16), by dp4a.
__device__ __forceinline__ int dot4_unit(uint4 w, int4 xa, int4 xb) {
    int s = 0;
    s = __dp4a((int)__vsub4(w.x & 0x0F0F0F0F, 0x08080808), xa.x, s);
    s = __dp4a((int)__vsub4(w.y & 0x0F0F0F0F, 0x08080808), xa.y, s);
    s = __dp4a((int)__vsub4(w.z & 0x0F0F0F0F, 0x08080808), xa.z, s);
    s = __dp4a((int)__vsub4(w.w & 0x0F0F0F0F, 0x08080808), xa.w, s);
    s = __dp4a((int)__vsub4((w.x >> 4) & 0x0F0F0F0F, 0x08080808), xb.x, s);
    s = __dp4a((int)__vsub4((w.y >> 4) & 0x0F0F0F0F, 0x08080808), xb.y, s);
    s = __dp4a((int)__vsub4((w.z >> 4) & 0x0F0F0F0F, 0x08080808), xb.z, s);
    s = __dp4a((int)__vsub4((w.w >> 4) & 0x0F0F0F0F, 0x08080808), xb.w, s);
    return s;
}

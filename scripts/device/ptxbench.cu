// GPU machine, measurement only: times one of Engine's PTX GEMV entries (gemv, gemv_add: kind gemv; gemv_swiglu:
// kind swiglu) as a CUDA graph of launches over weight buffers rotated past the L2, launched as ntrun launches it
// (one packed argument block of {pointer, length} views and i32s, the PDL attribute), one token. Lets a PTX file be
// edited and timed without a .NET build (docs/benchmarks.md "Session 7"): PTX from kernels/Ptx/obj/ptx/sm_90/.
// Build and run there (nvcc is on the device image):
//   nvcc -O3 -arch=sm_90 -std=c++17 scripts/device/ptxbench.cu -o /tmp/pb -lcuda
//   /tmp/pb FILE.ptx Kernel_ENTRY gemv|swiglu ROWS COLS ROW_BYTES [LAUNCHES]   (FILL=N: weights memset to N;
//   BLOCK=N: N threads a group instead of 128, the grid unchanged, as ENGINE_CUDA_GEMV_BLOCK)
// e.g. /tmp/pb Gemv_Q4_K.ptx Kernel_Gemv_Q4_K gemv 4096 4096 2304 32
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <cuda.h>
#include <cuda_runtime.h>
#define CU(x) do { CUresult r = (x); if (r != CUDA_SUCCESS) { const char* s; cuGetErrorString(r, &s); printf("%s:%d %s\n", __FILE__, __LINE__, s); exit(1);} } while (0)
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)
struct View { unsigned long long p; long long n; };
int main(int argc, char** argv) {
  if (argc < 7) { printf("usage: %s FILE.ptx ENTRY gemv|swiglu ROWS COLS ROW_BYTES [LAUNCHES]\n", argv[0]); return 2; }
  const char* file = argv[1]; const char* entry = argv[2]; bool swiglu = strcmp(argv[3], "swiglu") == 0;
  int rows = atoi(argv[4]), cols = atoi(argv[5]); long long rowBytes = atoll(argv[6]); int n = argc > 7 ? atoi(argv[7]) : 32;
  CK(cudaFree(0));
  FILE* f = fopen(file, "rb");
  if (!f) { printf("%s: cannot open\n", file); return 1; }
  fseek(f, 0, SEEK_END); long sz = ftell(f); fseek(f, 0, SEEK_SET);
  std::vector<char> ptx(sz + 1);
  if (fread(ptx.data(), 1, sz, f) != (size_t)sz) { printf("%s: short read\n", file); return 1; }
  ptx[sz] = 0; fclose(f);
  CUmodule mod; CU(cuModuleLoadData(&mod, ptx.data()));
  CUfunction fn; CU(cuModuleGetFunction(&fn, mod, entry));
  int regs; cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, fn);
  int local; cuFuncGetAttribute(&local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, fn);
  long long wbytes = rowBytes * rows;
  int sets = std::max(2, (int)(400e6 / (wbytes * (swiglu ? 2 : 1))));
  std::vector<CUdeviceptr> w(sets * (swiglu ? 2 : 1));
  std::vector<unsigned> host(wbytes / 4 + 1);
  srand(1); for (auto& h : host) h = (unsigned)rand() * 2654435761u;
  const char* fill = getenv("FILL");
  for (auto& p : w) { CU(cuMemAlloc(&p, wbytes)); if (fill) CU(cuMemsetD8(p, (unsigned char)atoi(fill), wbytes)); else CU(cuMemcpyHtoD(p, host.data(), wbytes)); }
  long long xqBytes = (long long)((cols + 63) / 64 * 2) * 40;
  CUdeviceptr x, xq, y; CU(cuMemAlloc(&x, cols * 4)); CU(cuMemAlloc(&xq, xqBytes)); CU(cuMemAlloc(&y, rows * 4));
  CU(cuMemsetD8(x, 0, cols * 4)); CU(cuMemsetD8(xq, 1, xqBytes)); CU(cuMemsetD8(y, 0, rows * 4));
  CUstream s; CU(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  unsigned block = getenv("BLOCK") ? (unsigned)atoi(getenv("BLOCK")) : 128;
  auto launch = [&](int i) {
    unsigned char buf[128] = {0}; int off = 0;
    auto view = [&](CUdeviceptr p, long long len) { View v{p, len}; memcpy(buf + off, &v, 16); off += 16; };
    if (swiglu) { view(w[2 * i], wbytes); view(w[2 * i + 1], wbytes); } else view(w[i], wbytes);
    view(x, cols); view(xq, xqBytes); view(y, rows);
    int ints[3] = {rows, cols, 1}; memcpy(buf + off, ints, 12); off += 12;
    size_t size = off;
    void* extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END };
    CUlaunchConfig cfg = {}; cfg.gridDimX = (rows + 3) / 4; cfg.gridDimY = 1; cfg.gridDimZ = 1; cfg.blockDimX = block; cfg.blockDimY = 1; cfg.blockDimZ = 1;
    cfg.hStream = s; CUlaunchAttribute at[1]; at[0].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION; at[0].value.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at; cfg.numAttrs = 1;
    CU(cuLaunchKernelEx(&cfg, fn, nullptr, extra));
  };
  CUgraph g; CUgraphExec ge;
  CU(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  for (int i = 0; i < n; i++) launch(i % sets);
  CU(cuStreamEndCapture(s, &g)); CU(cuGraphInstantiate(&ge, g, 0));
  CU(cuGraphLaunch(ge, s)); CU(cuStreamSynchronize(s));
  CUevent e0, e1; cuEventCreate(&e0, 0); cuEventCreate(&e1, 0);
  std::vector<float> ts;
  for (int r = 0; r < 21; r++) { cuEventRecord(e0, s); CU(cuGraphLaunch(ge, s)); cuEventRecord(e1, s); CU(cuEventSynchronize(e1)); float ms; cuEventElapsedTime(&ms, e0, e1); ts.push_back(ms); }
  std::sort(ts.begin(), ts.end());
  double us = ts[10] * 1e3 / n;
  printf("%-28s %6dx%-6d block %4u regs %3d local %3d  %8.2f us  %7.0f GB/s\n", entry, rows, cols, block, regs, local, us, wbytes * (swiglu ? 2 : 1) / (us * 1e-6) / 1e9);
  return 0;
}

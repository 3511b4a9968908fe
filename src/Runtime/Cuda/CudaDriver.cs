using System.Runtime.InteropServices;

namespace Engine.Runtime.Cuda;

/// <summary>The CUDA driver API (cuda.h), bound with [LibraryImport] to libcuda.so.1 and loaded lazily, so no
/// CUDA toolkit is needed at run time and a machine without a driver falls back to the CPU backend.
/// Only the calls the runtime makes are declared; every one returns a <see cref="CuResult"/>.</summary>
public static unsafe partial class CudaDriver
{
    private const string Lib = "cuda";

    static CudaDriver()
    {
        NativeLibrary.SetDllImportResolver(typeof(CudaDriver).Assembly, static (name, asm, path) =>
            name == Lib && NativeLibrary.TryLoad("libcuda.so.1", out var h) ? h : IntPtr.Zero);
    }

    /// <summary>True when libcuda.so.1 loads and cuInit succeeds with at least one device.</summary>
    public static bool TryInitialize(out string reason)
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out _)) { reason = "libcuda.so.1 not found (no NVIDIA driver)"; return false; }
        var r = cuInit(0);
        if (r != CuResult.Success) { reason = "cuInit failed: " + Describe(r); return false; }
        int n;
        r = cuDeviceGetCount(&n);
        if (r != CuResult.Success || n == 0) { reason = r != CuResult.Success ? "cuDeviceGetCount failed: " + Describe(r) : "no CUDA device"; return false; }
        reason = "";
        return true;
    }

    /// <summary>"CUDA_ERROR_OUT_OF_MEMORY (out of memory)": the name and the driver's description.</summary>
    public static string Describe(CuResult r)
    {
        byte* name = null, text = null;
        cuGetErrorName(r, &name);
        cuGetErrorString(r, &text);
        string n = name != null ? Marshal.PtrToStringUTF8((IntPtr)name)! : "CUDA_ERROR_" + (int)r;
        string t = text != null ? Marshal.PtrToStringUTF8((IntPtr)text)! : "";
        return t.Length > 0 ? $"{n} ({t})" : n;
    }

    /// <summary>Throws a <see cref="CudaException"/> naming the call when <paramref name="r"/> is an error.</summary>
    public static void Check(CuResult r, string call)
    {
        if (r != CuResult.Success) Fail(r, call);
    }

    private static void Fail(CuResult r, string call) => throw new CudaException(call, r);

    [LibraryImport(Lib)] public static partial CuResult cuInit(uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuDriverGetVersion(int* version);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetCount(int* count);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGet(int* device, int ordinal);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetName(byte* name, int len, int device);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetAttribute(int* value, CuDeviceAttribute attr, int device);
    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")] public static partial CuResult cuDeviceTotalMem(ulong* bytes, int device);
    [LibraryImport(Lib)] public static partial CuResult cuDevicePrimaryCtxRetain(IntPtr* ctx, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial CuResult cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Lib)] public static partial CuResult cuCtxSetCurrent(IntPtr ctx);
    [LibraryImport(Lib)] public static partial CuResult cuCtxSynchronize();
    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")] public static partial CuResult cuMemGetInfo(ulong* free, ulong* total);

    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")] public static partial CuResult cuMemAlloc(ulong* dptr, ulong bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")] public static partial CuResult cuMemFree(ulong dptr);
    [LibraryImport(Lib)] public static partial CuResult cuMemHostAlloc(void** pp, ulong bytes, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuMemFreeHost(void* p);
    [LibraryImport(Lib, EntryPoint = "cuMemHostGetDevicePointer_v2")] public static partial CuResult cuMemHostGetDevicePointer(ulong* dptr, void* p, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuMemHostRegister_v2")] public static partial CuResult cuMemHostRegister(void* p, ulong bytes, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuMemHostUnregister(void* p);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoD_v2")] public static partial CuResult cuMemcpyHtoD(ulong dst, void* src, ulong bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoH_v2")] public static partial CuResult cuMemcpyDtoH(void* dst, ulong src, ulong bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoD_v2")] public static partial CuResult cuMemcpyDtoD(ulong dst, ulong src, ulong bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial CuResult cuMemcpyHtoDAsync(ulong dst, void* src, ulong bytes, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial CuResult cuMemcpyDtoHAsync(void* dst, ulong src, ulong bytes, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial CuResult cuMemcpyDtoDAsync(ulong dst, ulong src, ulong bytes, IntPtr stream);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD8_v2")] public static partial CuResult cuMemsetD8(ulong dst, byte value, ulong count);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD32_v2")] public static partial CuResult cuMemsetD32(ulong dst, uint value, ulong count);

    [LibraryImport(Lib)] public static partial CuResult cuModuleLoadDataEx(IntPtr* module, byte* image, uint numOptions, CuJitOption* options, void** optionValues);
    [LibraryImport(Lib)] public static partial CuResult cuModuleUnload(IntPtr module);
    [LibraryImport(Lib)] public static partial CuResult cuModuleGetFunction(IntPtr* function, IntPtr module, byte* name);
    [LibraryImport(Lib)] public static partial CuResult cuFuncSetAttribute(IntPtr function, CuFunctionAttribute attr, int value);
    [LibraryImport(Lib)] public static partial CuResult cuFuncGetAttribute(int* value, CuFunctionAttribute attr, IntPtr function);
    [LibraryImport(Lib)] public static partial CuResult cuLaunchKernel(IntPtr f, uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ, uint sharedMemBytes, IntPtr stream, void** kernelParams, void** extra);

    /// <summary>cuLaunchKernel with launch attributes (CUDA 11.8+); the runtime uses it for programmatic dependent
    /// launch on sm_90 (<see cref="CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION"/>).</summary>
    [LibraryImport(Lib)] public static partial CuResult cuLaunchKernelEx(CuLaunchConfig* config, IntPtr f, void** kernelParams, void** extra);

    /// <summary>cuLaunchKernel (1-D blocks, arguments in <paramref name="extra"/>) with programmatic dependent launch:
    /// the kernel may start before the previous kernel in the stream completes and orders itself with
    /// griddepcontrol.wait (kernels/Pdl.cs).</summary>
    public static CuResult LaunchProgrammatic(IntPtr f, uint gridX, uint gridY, uint gridZ, uint blockX, uint sharedMemBytes,
        IntPtr stream, void** extra)
    {
        CuLaunchAttribute attribute = default;
        attribute.Id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attribute.Value = 1;
        var config = new CuLaunchConfig
        {
            GridDimX = gridX, GridDimY = gridY, GridDimZ = gridZ, BlockDimX = blockX, BlockDimY = 1, BlockDimZ = 1,
            SharedMemBytes = sharedMemBytes, Stream = stream, Attrs = &attribute, NumAttrs = 1,
        };
        return cuLaunchKernelEx(&config, f, null, extra);
    }

    [LibraryImport(Lib)] public static partial CuResult cuStreamCreate(IntPtr* stream, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")] public static partial CuResult cuStreamDestroy(IntPtr stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamSynchronize(IntPtr stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamWaitEvent(IntPtr stream, IntPtr ev, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuEventCreate(IntPtr* ev, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] public static partial CuResult cuEventDestroy(IntPtr ev);
    [LibraryImport(Lib)] public static partial CuResult cuEventRecord(IntPtr ev, IntPtr stream);
    [LibraryImport(Lib)] public static partial CuResult cuEventSynchronize(IntPtr ev);
    [LibraryImport(Lib)] public static partial CuResult cuEventQuery(IntPtr ev);
    [LibraryImport(Lib)] public static partial CuResult cuEventElapsedTime(float* ms, IntPtr start, IntPtr end);

    [LibraryImport(Lib, EntryPoint = "cuStreamBeginCapture_v2")] public static partial CuResult cuStreamBeginCapture(IntPtr stream, int mode);
    [LibraryImport(Lib)] public static partial CuResult cuStreamEndCapture(IntPtr stream, IntPtr* graph);
    [LibraryImport(Lib)] public static partial CuResult cuGraphInstantiateWithFlags(IntPtr* exec, IntPtr graph, ulong flags);
    [LibraryImport(Lib)] public static partial CuResult cuGraphLaunch(IntPtr exec, IntPtr stream);
    [LibraryImport(Lib)] public static partial CuResult cuGraphDestroy(IntPtr graph);
    [LibraryImport(Lib)] public static partial CuResult cuGraphExecDestroy(IntPtr exec);

    [LibraryImport(Lib)] private static partial CuResult cuGetErrorName(CuResult error, byte** str);
    [LibraryImport(Lib)] private static partial CuResult cuGetErrorString(CuResult error, byte** str);

    public const uint CU_MEMHOSTALLOC_PORTABLE = 0x01;
    public const uint CU_MEMHOSTALLOC_DEVICEMAP = 0x02;
    public const uint CU_MEMHOSTALLOC_WRITECOMBINED = 0x04;
    public const uint CU_STREAM_NON_BLOCKING = 0x1;
    /// <summary>CUlaunchAttributeID: the kernel may start before the previous kernel in the stream completes; it
    /// orders itself with griddepcontrol.wait (kernels/Pdl.cs).</summary>
    public const int CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;

    // cuLaunchKernel's `extra`: (void*)1 then the argument block, (void*)2 then a size_t* of its bytes, (void*)0 ends.
    public const nint CU_LAUNCH_PARAM_END = 0x00, CU_LAUNCH_PARAM_BUFFER_POINTER = 0x01, CU_LAUNCH_PARAM_BUFFER_SIZE = 0x02;
    public const uint CU_EVENT_DEFAULT = 0x0;
    public const uint CU_EVENT_DISABLE_TIMING = 0x2;
    public const int CU_STREAM_CAPTURE_MODE_GLOBAL = 0;
    public const int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
    public const int CU_STREAM_CAPTURE_MODE_RELAXED = 2;
}

/// <summary>CUresult values the runtime names (cuda.h); the rest print through cuGetErrorName.</summary>
public enum CuResult
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    NoDevice = 100,
    InvalidDevice = 101,
    InvalidPtx = 218,
    UnsupportedPtxVersion = 222,
    NotFound = 500,
    NotReady = 600,
    LaunchFailed = 719,
}

public enum CuDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    PciBusId = 33,
    PciDeviceId = 34,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}

public enum CuFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    LocalSizeBytes = 3,
    NumRegs = 4,
    MaxDynamicSharedSizeBytes = 8,
}

public enum CuJitOption
{
    InfoLogBuffer = 3,
    InfoLogBufferSizeBytes = 4,
    ErrorLogBuffer = 5,
    ErrorLogBufferSizeBytes = 6,
    LogVerbose = 12,
}

/// <summary>A failed driver call: one line naming the call and the CUDA error.</summary>
public sealed class CudaException(string call, CuResult result)
    : Exception($"{call} failed: {CudaDriver.Describe(result)}")
{
    public CuResult Result { get; } = result;
}

/// <summary>CUlaunchAttribute (cuda.h): an id, padding to 8 bytes, and a 64-byte value union whose first int is the
/// value of the flags the runtime sets.</summary>
[StructLayout(LayoutKind.Sequential, Size = 72)]
public struct CuLaunchAttribute
{
    public int Id;
    private int _pad;
    public int Value;
}

/// <summary>CUlaunchConfig (cuda.h).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct CuLaunchConfig
{
    public uint GridDimX, GridDimY, GridDimZ, BlockDimX, BlockDimY, BlockDimZ, SharedMemBytes;
    public IntPtr Stream;
    public CuLaunchAttribute* Attrs;
    public uint NumAttrs;
}

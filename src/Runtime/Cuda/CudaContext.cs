using System.Runtime.InteropServices;
using System.Text;
using static Engine.Runtime.Cuda.CudaDriver;

namespace Engine.Runtime.Cuda;

/// <summary>One CUDA device's primary context, made current on the calling thread, with what the runtime asks of
/// it: allocation, pinned host memory, modules from PTX, streams and events. Everything a plan needs is allocated
/// once at load time; nothing here is called in the token loop except launches and event records.</summary>
public sealed unsafe class CudaContext : IDisposable
{
    public int Ordinal { get; }
    public string Name { get; }
    /// <summary>Compute capability as major*10+minor (90 for an H100).</summary>
    public int Sm { get; }
    public ulong TotalMemory { get; }
    public int MultiprocessorCount { get; }
    public int DriverVersion { get; }
    private IntPtr _ctx;

    private CudaContext(int ordinal)
    {
        Ordinal = ordinal;
        int dev;
        Check(cuDeviceGet(&dev, ordinal), "cuDeviceGet");
        byte* name = stackalloc byte[256];
        Check(cuDeviceGetName(name, 256, dev), "cuDeviceGetName");
        Name = Marshal.PtrToStringUTF8((IntPtr)name) ?? "?";
        int maj, min, sms, ver;
        Check(cuDeviceGetAttribute(&maj, CuDeviceAttribute.ComputeCapabilityMajor, dev), "cuDeviceGetAttribute");
        Check(cuDeviceGetAttribute(&min, CuDeviceAttribute.ComputeCapabilityMinor, dev), "cuDeviceGetAttribute");
        Check(cuDeviceGetAttribute(&sms, CuDeviceAttribute.MultiprocessorCount, dev), "cuDeviceGetAttribute");
        Sm = maj * 10 + min;
        MultiprocessorCount = sms;
        ulong total;
        Check(cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
        TotalMemory = total;
        Check(cuDriverGetVersion(&ver), "cuDriverGetVersion");
        DriverVersion = ver;
        IntPtr ctx;
        Check(cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
        _ctx = ctx;
        Check(cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
    }

    /// <summary>Opens device <paramref name="ordinal"/>; null with a reason when there is no usable driver or GPU.</summary>
    public static CudaContext? TryOpen(int ordinal, out string reason)
    {
        if (!TryInitialize(out reason)) return null;
        try { return new CudaContext(ordinal); }
        catch (CudaException e) { reason = e.Message; return null; }
    }

    /// <summary>Makes this context current on the calling thread (worker threads that launch or copy).</summary>
    public void MakeCurrent() => Check(cuCtxSetCurrent(_ctx), "cuCtxSetCurrent");

    public (ulong Free, ulong Total) MemoryInfo()
    {
        ulong f, t;
        Check(cuMemGetInfo(&f, &t), "cuMemGetInfo");
        return (f, t);
    }

    public ulong Alloc(ulong bytes)
    {
        ulong p;
        var r = cuMemAlloc(&p, Math.Max(bytes, 256));
        if (r != CuResult.Success) throw new CudaException($"cuMemAlloc({bytes} bytes)", r);
        return p;
    }

    public void Free(ulong p) { if (p != 0) cuMemFree(p); }

    /// <summary>Page-locked host memory (for streamed layers and staging), portable across contexts.</summary>
    public void* AllocPinned(ulong bytes)
    {
        void* p;
        var r = cuMemHostAlloc(&p, Math.Max(bytes, 4096), CU_MEMHOSTALLOC_PORTABLE);
        if (r != CuResult.Success) throw new CudaException($"cuMemHostAlloc({bytes} bytes)", r);
        return p;
    }

    /// <summary>Page-locked host memory the kernels read in place (mapped into the device's address space); returns
    /// the host pointer and the device address of the same bytes.</summary>
    public (IntPtr Host, ulong Device) AllocMapped(ulong bytes)
    {
        void* p;
        var r = cuMemHostAlloc(&p, Math.Max(bytes, 4096), CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
        if (r != CuResult.Success) throw new CudaException($"cuMemHostAlloc({bytes} bytes, mapped)", r);
        ulong d;
        Check(cuMemHostGetDevicePointer(&d, p, 0), "cuMemHostGetDevicePointer");
        return ((IntPtr)p, d);
    }

    public void FreePinned(void* p) { if (p != null) cuMemFreeHost(p); }

    /// <summary>Loads a PTX module; on failure the exception carries the JIT's error log.</summary>
    public IntPtr LoadModule(string ptx)
    {
        const int LogSize = 16384;
        byte[] image = Encoding.ASCII.GetBytes(ptx + "\0");
        byte* log = stackalloc byte[LogSize];
        log[0] = 0;
        var opts = stackalloc CuJitOption[2] { CuJitOption.ErrorLogBuffer, CuJitOption.ErrorLogBufferSizeBytes };
        var vals = stackalloc void*[2] { log, (void*)LogSize };
        IntPtr module;
        CuResult r;
        fixed (byte* img = image) r = cuModuleLoadDataEx(&module, img, 2, opts, vals);
        if (r != CuResult.Success)
        {
            string jit = Marshal.PtrToStringUTF8((IntPtr)log)?.Trim() ?? "";
            throw new CudaModuleException(r, jit);
        }
        return module;
    }

    public IntPtr GetFunction(IntPtr module, string name)
    {
        byte[] n = Encoding.ASCII.GetBytes(name + "\0");
        IntPtr f;
        CuResult r;
        fixed (byte* p = n) r = cuModuleGetFunction(&f, module, p);
        if (r != CuResult.Success) throw new CudaException($"cuModuleGetFunction({name})", r);
        return f;
    }

    public IntPtr CreateStream()
    {
        IntPtr s;
        Check(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        return s;
    }

    public IntPtr CreateEvent(bool timing = true)
    {
        IntPtr e;
        Check(cuEventCreate(&e, timing ? CU_EVENT_DEFAULT : CU_EVENT_DISABLE_TIMING), "cuEventCreate");
        return e;
    }

    public static float ElapsedMs(IntPtr start, IntPtr end)
    {
        float ms;
        Check(cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
        return ms;
    }

    public void Dispose()
    {
        if (_ctx != IntPtr.Zero)
        {
            cuCtxSynchronize();
            int dev;
            if (cuDeviceGet(&dev, Ordinal) == CuResult.Success) cuDevicePrimaryCtxRelease(dev);
            _ctx = IntPtr.Zero;
        }
    }
}

/// <summary>A PTX module the driver refused; the message is the call and code, the JIT log follows it.</summary>
public sealed class CudaModuleException(CuResult result, string jitLog)
    : Exception($"cuModuleLoadDataEx failed: {CudaDriver.Describe(result)}" + (jitLog.Length > 0 ? "\n" + jitLog : ""))
{
    public CuResult Result { get; } = result;
    public string JitLog { get; } = jitLog;
}

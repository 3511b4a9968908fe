using static Engine.Runtime.Cuda.CudaDriver;

namespace Engine.Runtime.Cuda;

/// <summary>Measures the two bounds every GPU figure is reported against: device-to-device copy bandwidth
/// (bytes read + bytes written per second, the HBM bound) and pinned host-to-device bandwidth (the tier-B link).
/// Timed with events after a warm-up; the median of several runs.</summary>
public static unsafe class BandwidthProbe
{
    public sealed record Result(double DeviceCopyGBs, double PinnedH2DGBs, double PinnedD2HGBs);

    public static Result Measure(CudaContext cu, ulong bytes = 1UL << 30, int reps = 10)
    {
        ulong a = cu.Alloc(bytes), b = cu.Alloc(bytes);
        void* host = cu.AllocPinned(bytes);
        IntPtr s = cu.CreateStream(), e0 = cu.CreateEvent(), e1 = cu.CreateEvent();
        try
        {
            Check(cuMemsetD8(a, 0x5A, bytes), "cuMemsetD8");
            new Span<byte>(host, (int)Math.Min(bytes, int.MaxValue)).Fill(0x3C);
            double d2d = Median(reps, () => Check(cuMemcpyDtoDAsync(b, a, bytes, s), "cuMemcpyDtoDAsync"), s, e0, e1, 2.0 * bytes);
            double h2d = Median(reps, () => Check(cuMemcpyHtoDAsync(a, host, bytes, s), "cuMemcpyHtoDAsync"), s, e0, e1, bytes);
            double d2h = Median(reps, () => Check(cuMemcpyDtoHAsync(host, a, bytes, s), "cuMemcpyDtoHAsync"), s, e0, e1, bytes);
            return new Result(d2d, h2d, d2h);
        }
        finally
        {
            cuEventDestroy(e0); cuEventDestroy(e1); cuStreamDestroy(s);
            cu.FreePinned(host); cu.Free(a); cu.Free(b);
        }
    }

    private static double Median(int reps, Action op, IntPtr s, IntPtr e0, IntPtr e1, double bytesMoved)
    {
        op(); Check(cuStreamSynchronize(s), "cuStreamSynchronize"); // warm-up
        var gbs = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            Check(cuEventRecord(e0, s), "cuEventRecord");
            op();
            Check(cuEventRecord(e1, s), "cuEventRecord");
            Check(cuEventSynchronize(e1), "cuEventSynchronize");
            gbs[i] = bytesMoved / (CudaContext.ElapsedMs(e0, e1) * 1e-3) / 1e9;
        }
        Array.Sort(gbs);
        return gbs[reps / 2];
    }
}

using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Plans.Hardware;

/// <summary><c>--hw auto</c>: the CUDA driver when libcuda.so.1 loads (function pointers from
/// <see cref="NativeLibrary"/>: no P/Invoke marshalling, AOT-safe), /proc/meminfo MemAvailable, the GPU's PCIe
/// maximum link from sysfs (max_link_*: current_* idles low), and the block device under the model file.</summary>
public static unsafe class HardwareProbe
{
    // cuda.h CUdevice_attribute values.
    private const int AttrComputeMajor = 75, AttrComputeMinor = 76, AttrPciBus = 33, AttrPciDevice = 34, AttrPciDomain = 50;
    private const int AttrMemoryClockKhz = 36, AttrMemoryBusWidth = 37;

    /// <summary>Fraction of the theoretical rate a sustained stream reaches: 0.82 of the PCIe payload rate
    /// (Gen3 x8 → 6.5 GB/s as the seed measured) and 0.9 of HBM/GDDR peak (H100: 3.0 of 3.35 TB/s).</summary>
    public const double PcieEfficiency = 0.82, MemoryEfficiency = 0.9;
    /// <summary>Sequential O_DIRECT read rates assumed for a probed device (not measured by the planner).</summary>
    public const double AssumedNvmeRead = 3.0e9, AssumedOtherDiskRead = 0.5e9;
    /// <summary>Host memory read bandwidth assumed for the cpu backend (dual-channel DDR4 class).</summary>
    public const double AssumedHostBandwidth = 40e9;
    /// <summary>Largest read command the planner issues even when the device allows more.</summary>
    public const long MaxCommandBytes = 4L << 20;

    public static HardwareProfile Probe(string? modelPath)
    {
        long ram = MemInfo("MemAvailable") ?? MemInfo("MemTotal") ?? 0;
        var nvme = modelPath == null ? null : ProbeBlockDeviceOf(modelPath);
        var gpu = ProbeCuda();
        if (gpu == null)
            return new HardwareProfile { Name = "auto", Backend = "cpu", RamBytes = ram, DeviceBandwidth = AssumedHostBandwidth, Nvme = nvme };
        return gpu with { RamBytes = ram, Nvme = nvme };
    }

    public static long? MemInfo(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb)) return kb * 1024;
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    private static HardwareProfile? ProbeCuda()
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out IntPtr lib)) return null;
        try
        {
            var cuInit = (delegate* unmanaged<uint, int>)Sym(lib, "cuInit");
            var cuDeviceGet = (delegate* unmanaged<int*, int, int>)Sym(lib, "cuDeviceGet");
            var cuDeviceGetName = (delegate* unmanaged<byte*, int, int, int>)Sym(lib, "cuDeviceGetName");
            var cuDeviceTotalMem = (delegate* unmanaged<ulong*, int, int>)Sym(lib, "cuDeviceTotalMem_v2");
            var cuDeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)Sym(lib, "cuDeviceGetAttribute");
            var cuDriverGetVersion = (delegate* unmanaged<int*, int>)Sym(lib, "cuDriverGetVersion");
            if (cuInit == null || cuDeviceGet == null || cuDeviceGetName == null || cuDeviceTotalMem == null || cuDeviceGetAttribute == null)
                return null;
            if (cuInit(0) != 0) return null;
            int devOut;
            if (cuDeviceGet(&devOut, 0) != 0) return null;
            int dev = devOut;
            byte* name = stackalloc byte[256];
            if (cuDeviceGetName(name, 256, dev) != 0) return null;
            ulong total;
            if (cuDeviceTotalMem(&total, dev) != 0) return null;
            int Attr(int a) { int v; return cuDeviceGetAttribute(&v, a, dev) == 0 ? v : 0; }
            int version = 0;
            if (cuDriverGetVersion != null) cuDriverGetVersion(&version);
            long free = (long)total;
            var retain = (delegate* unmanaged<IntPtr*, int, int>)Sym(lib, "cuDevicePrimaryCtxRetain");
            var push = (delegate* unmanaged<IntPtr, int>)Sym(lib, "cuCtxPushCurrent_v2");
            var pop = (delegate* unmanaged<IntPtr*, int>)Sym(lib, "cuCtxPopCurrent_v2");
            var release = (delegate* unmanaged<int, int>)Sym(lib, "cuDevicePrimaryCtxRelease_v2");
            var memInfo = (delegate* unmanaged<ulong*, ulong*, int>)Sym(lib, "cuMemGetInfo_v2");
            IntPtr ctx;
            if (retain != null && push != null && pop != null && release != null && memInfo != null && retain(&ctx, dev) == 0)
            {
                if (push(ctx) == 0)
                {
                    ulong f, t;
                    if (memInfo(&f, &t) == 0) free = (long)f;
                    IntPtr popped; pop(&popped);
                }
                release(dev);
            }
            string bus = string.Format(CultureInfo.InvariantCulture, "{0:x4}:{1:x2}:{2:x2}.0", Attr(AttrPciDomain), Attr(AttrPciBus), Attr(AttrPciDevice));
            var (gen, width) = PcieMaxLink("/sys/bus/pci/devices/" + bus);
            double memPeak = Attr(AttrMemoryClockKhz) * 1e3 * 2 * Attr(AttrMemoryBusWidth) / 8.0;
            return new HardwareProfile
            {
                Name = "auto",
                Backend = "cuda",
                GpuName = Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(name)),
                Sm = Attr(AttrComputeMajor) * 10 + Attr(AttrComputeMinor),
                VramBytes = (long)total,
                FreeVramBytes = free,
                RamBytes = 0,
                PcieGen = gen,
                PcieWidth = width,
                H2dBandwidth = Math.Max(1e9, PcieLaneBytes(gen) * Math.Max(1, width) * PcieEfficiency),
                DeviceBandwidth = memPeak > 0 ? memPeak * MemoryEfficiency : 500e9,
                Driver = version == 0 ? "" : $"{version / 1000}.{version % 1000 / 10}",
            };
        }
        finally { NativeLibrary.Free(lib); }
    }

    private static IntPtr Sym(IntPtr lib, string name) => NativeLibrary.TryGetExport(lib, name, out IntPtr p) ? p : IntPtr.Zero;

    /// <summary>Payload bytes/s per lane after line coding (PCIe 3+: 128b/130b).</summary>
    public static double PcieLaneBytes(int gen) => gen switch
    {
        1 => 0.25e9, 2 => 0.5e9, 3 => 0.985e9, 4 => 1.969e9, 5 => 3.938e9, 6 => 7.563e9, _ => 0.985e9,
    };

    /// <summary>sysfs max_link_speed ("16.0 GT/s PCIe") and max_link_width ("16").</summary>
    public static (int Gen, int Width) PcieMaxLink(string deviceDir)
    {
        string? speed = ReadLine(Path.Combine(deviceDir, "max_link_speed"));
        string? width = ReadLine(Path.Combine(deviceDir, "max_link_width"));
        int gen = 0;
        if (speed != null && double.TryParse(speed.Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double gts))
            gen = gts switch { < 3 => 1, < 6 => 2, < 10 => 3, < 20 => 4, < 40 => 5, _ => 6 };
        int w = width != null && int.TryParse(width, NumberStyles.None, CultureInfo.InvariantCulture, out int x) ? x : 0;
        return (gen, w);
    }

    /// <summary>The block device holding <paramref name="path"/> (via /proc/self/mountinfo's major:minor), or null
    /// on a filesystem without one (overlay, tmpfs).</summary>
    public static NvmeProfile? ProbeBlockDeviceOf(string path)
    {
        string full = Path.GetFullPath(path);
        string? best = null; int bestLen = -1;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                var f = line.Split(' ');
                if (f.Length < 5) continue;
                string mount = f[4];
                bool under = full == mount || full.StartsWith(mount.TrimEnd('/') + "/", StringComparison.Ordinal);
                if (under && mount.Length > bestLen) { bestLen = mount.Length; best = f[2]; }
            }
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        return best == null ? null : ProbeSysBlock("/sys/dev/block/" + best);
    }

    /// <summary>A block device by path (/dev/nvme0n1): its queue limits from /sys/class/block/NAME.</summary>
    public static NvmeProfile? ProbeDevice(string devicePath) =>
        ProbeSysBlock("/sys/class/block/" + Path.GetFileName(devicePath));

    private static NvmeProfile? ProbeSysBlock(string sysDir)
    {
        if (!Directory.Exists(sysDir)) return null;
        string dir = sysDir;
        if (File.Exists(Path.Combine(dir, "partition"))) dir = Path.Combine(dir, "..");
        string? block = ReadLine(Path.Combine(dir, "queue", "logical_block_size"));
        string? maxKb = ReadLine(Path.Combine(dir, "queue", "max_hw_sectors_kb"));
        if (block == null) return null;
        int bs = int.TryParse(block, NumberStyles.None, CultureInfo.InvariantCulture, out int b) && b is 512 or 4096 ? b : 4096;
        long max = long.TryParse(maxKb, NumberStyles.None, CultureInfo.InvariantCulture, out long kb) && kb >= 4 ? kb * 1024 : 128 << 10;
        // Virtual disks report huge limits; beyond a few MiB a larger command buys nothing (queue depth does).
        max = Math.Min(max, MaxCommandBytes) / 4096 * 4096;
        string name = Path.GetFileName(Path.GetFullPath(dir));
        bool isNvme = name.StartsWith("nvme", StringComparison.Ordinal);
        return new NvmeProfile(isNvme ? AssumedNvmeRead : AssumedOtherDiskRead, bs, (int)max);
    }

    private static string? ReadLine(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path).Trim() : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}

namespace Engine.Plans.Hardware;

/// <summary>What the planner knows about the machine. Bandwidths are bytes per second. A cpu backend has no
/// GPU: <see cref="VramBytes"/> is 0 and the "device" arena is host memory read at <see cref="DeviceBandwidth"/>.</summary>
public sealed record HardwareProfile
{
    public required string Name { get; init; }
    /// <summary>"cuda" or "cpu".</summary>
    public required string Backend { get; init; }
    public string GpuName { get; init; } = "";
    /// <summary>Compute capability × 10 (86 for sm_86); 0 for cpu.</summary>
    public int Sm { get; init; }
    public long VramBytes { get; init; }
    /// <summary>Free device memory when probed; equal to <see cref="VramBytes"/> for shipped profiles.</summary>
    public long FreeVramBytes { get; init; }
    public required long RamBytes { get; init; }
    public int PcieGen { get; init; }
    public int PcieWidth { get; init; }
    /// <summary>Pinned host→device bytes/s (measured, or assumed from the PCIe link).</summary>
    public double H2dBandwidth { get; init; }
    /// <summary>Device memory read bandwidth, bytes/s: what a GEMV streaming its weights once achieves at best.</summary>
    public required double DeviceBandwidth { get; init; }
    public string Driver { get; init; } = "";
    /// <summary>The NVMe source, or null when the machine has none the planner may stream from.</summary>
    public NvmeProfile? Nvme { get; init; }

    public bool IsCpu => Backend == "cpu";
}

/// <summary>An NVMe source: sequential O_DIRECT read rate, logical block size, largest command (max_hw_sectors_kb).</summary>
public sealed record NvmeProfile(double ReadBandwidth, int BlockSize, int MaxTransfer);

using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Tiering;

/// <summary>How much device memory and RAM the plan may use. Defaults are what the hardware has minus a stated
/// margin; --vram-budget / --ram-budget cap them (a budgeted plan rehearses a small card on a large one).</summary>
public sealed record Budgets(long Vram, long Ram, long VramMargin, long RamMargin)
{
    /// <summary>Device memory kept free: the CUDA context, module images, CUDA-graph memory and allocator
    /// slack (the seed's context + cuBLAS took about 0.5-0.9 GB on the 3090): 5 % of the card, at least 768 MiB.</summary>
    public static long DefaultVramMargin(long vram) => Math.Max(768L << 20, vram / 20);

    /// <summary>RAM kept for the OS, the page cache and the process itself: 20 % of RAM, at least 2 GiB
    /// (pinned memory cannot be swapped, so overcommitting it stalls the machine).</summary>
    public static long DefaultRamMargin(long ram) => Math.Max(2L << 30, ram / 5);

    public static Budgets For(HardwareProfile hw, long? vramCap, long? ramCap)
    {
        long ramMargin = DefaultRamMargin(hw.RamBytes);
        long ram = Math.Max(0, hw.RamBytes - ramMargin);
        if (ramCap is long rc) { ram = rc; ramMargin = Math.Max(0, hw.RamBytes - rc); }
        if (hw.IsCpu) return new Budgets(0, ram, 0, ramMargin);
        long vramMargin = DefaultVramMargin(hw.VramBytes);
        long vram = Math.Max(0, Math.Min(hw.VramBytes - vramMargin, hw.FreeVramBytes - (256L << 20)));
        if (vramCap is long vc) { vram = vc; vramMargin = Math.Max(0, hw.VramBytes - vc); }
        if (vramCap is long v2 && v2 > hw.VramBytes)
            throw new PlanException($"--vram-budget {ByteSize.Format(v2)} exceeds the {hw.Name} profile's VRAM {ByteSize.Format(hw.VramBytes)}");
        return new Budgets(vram, ram, vramMargin, ramMargin);
    }
}

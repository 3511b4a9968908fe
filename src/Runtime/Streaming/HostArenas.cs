using System.Runtime.InteropServices;
using Engine.Plans.PlanFile;

namespace Engine.Runtime.Streaming;

/// <summary>The plan's arenas as the CPU backend holds them, allocated once at load, 4 KiB aligned
/// (NativeMemory.AlignedAlloc; O_DIRECT needs aligned staging, and a slot keeps a tensor's alignment modulo 4 KiB as
/// in the file, so kernels see the same alignment as in the map):
/// <list type="bullet">
/// <item>the device arena's <b>slots</b> only (the range from the first slot to the end of the last): the rest of the
/// device arena is the workspace and KV cache, which <see cref="Cpu.CpuProgram"/> allocates at the plan's offsets,
/// and the tier-A weights, which stay in the read-only map of the GGUF (host memory already: copying them would double
/// the resident set and the load time and change no number);</item>
/// <item>the <b>pinned</b> arena, whole: tier-B layer images and tier-H globals (the token embedding), copied from the
/// map at load;</item>
/// <item>the <b>staging</b> arena, whole: the staging slots tier-C reads land in.</item>
/// </list>
/// Every address handed out was validated by <see cref="PlanValidator"/> against its arena's size.</summary>
public sealed unsafe class HostArenas : IDisposable
{
    /// <summary>The slot range of the device arena: byte 0 here is device-arena offset <see cref="SlotsBase"/>.</summary>
    public byte* Slots { get; private set; }
    public long SlotsBase { get; }
    public long SlotsLength { get; }
    public byte* Pinned { get; private set; }
    public long PinnedLength { get; }
    public byte* Staging { get; private set; }
    public long StagingLength { get; }

    private HostArenas(long slotsBase, long slotsLength, long pinnedLength, long stagingLength)
    {
        (SlotsBase, SlotsLength, PinnedLength, StagingLength) = (slotsBase, slotsLength, pinnedLength, stagingLength);
        try
        {
            Slots = Allocate(slotsLength);
            Pinned = Allocate(pinnedLength);
            Staging = Allocate(stagingLength);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Allocates the arenas of <paramref name="plan"/> and fills the pinned arena from the mapped GGUF
    /// (<paramref name="model"/>, <paramref name="modelLength"/> bytes): each tier-B layer image and each tier-H tensor
    /// at its home offset. An image's 4 KiB-rounded end may pass the end of the file; those bytes are zero.</summary>
    public static HostArenas ForPlan(Plan plan, byte* model, long modelLength)
    {
        var slots = plan.Buffers.Where(b => b.Role == BufferRole.Slot).ToList();
        long slotsBase = slots.Count == 0 ? 0 : slots.Min(b => b.Offset);
        long slotsEnd = slots.Count == 0 ? 0 : slots.Max(b => b.Offset + b.Size);
        var arenas = new HostArenas(slotsBase, slotsEnd - slotsBase, plan.Arenas[Arenas.Pinned].Size, plan.Arenas[Arenas.Staging].Size);
        try
        {
            foreach (var layer in plan.Layers.Where(l => l.Tier == Tier.B))
                CopyFromFile(model, modelLength, layer.ImageFileOffset, layer.ImageSize, arenas.Pinned + layer.HomeOffset);
            foreach (var t in plan.Tensors.Where(t => t.Tier == Tier.H))
                CopyFromFile(model, modelLength, t.FileOffset, t.Size, arenas.Pinned + t.HomeOffset);
            return arenas;
        }
        catch
        {
            arenas.Dispose();
            throw;
        }
    }

    /// <summary>Where the kernels read tensor <paramref name="t"/>: tier A in the map, tier H in the pinned arena,
    /// tiers B and C in their layer's slot (its device offset is final: the plan gives each streamed layer one slot).</summary>
    public byte* KernelAddress(PlanTensor t, byte* model) => t.Tier switch
    {
        Tier.A => model + t.FileOffset,
        Tier.H => Pinned + t.HomeOffset,
        _ => SlotAddress(t.DeviceOffset),
    };

    /// <summary>The host address of device-arena offset <paramref name="deviceOffset"/> inside the slot range.</summary>
    public byte* SlotAddress(long deviceOffset)
    {
        long at = deviceOffset - SlotsBase;
        if (at < 0 || at > SlotsLength)
            throw new PlanException($"device offset {deviceOffset} is outside the slots [{SlotsBase}, {SlotsBase + SlotsLength})");
        return Slots + at;
    }

    private static void CopyFromFile(byte* model, long modelLength, long offset, long size, byte* destination)
    {
        long inFile = Math.Clamp(modelLength - offset, 0, size);
        Buffer.MemoryCopy(model + offset, destination, size, inFile);
        if (inFile < size) NativeMemory.Clear(destination + inFile, (nuint)(size - inFile));
    }

    private static byte* Allocate(long bytes) =>
        bytes == 0 ? null : (byte*)NativeMemory.AlignedAlloc((nuint)bytes, ReadCommand.BlockSize);

    public void Dispose()
    {
        if (Slots != null) NativeMemory.AlignedFree(Slots);
        if (Pinned != null) NativeMemory.AlignedFree(Pinned);
        if (Staging != null) NativeMemory.AlignedFree(Staging);
        Slots = Pinned = Staging = null;
    }
}

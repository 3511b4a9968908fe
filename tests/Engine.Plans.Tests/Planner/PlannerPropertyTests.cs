using CsCheck;
using Engine.Plans.Cli;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Xunit;

namespace Engine.Plans.Tests.Planner;

/// <summary>Properties over random Llama shapes, tensor types, profiles and budgets (CsCheck): a plan is either
/// refused with one line, or every tensor is placed once, arenas stay within budgets, simultaneously live
/// buffers never overlap, tier-C I/O lists are aligned, bounded and cover each layer image exactly once, and the
/// plan survives the file format byte for byte.</summary>
public sealed class PlannerPropertyTests
{
    private static readonly GgmlType[] Types = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

    public sealed record Case(LlamaShape Shape, int TypeSeed, string Profile, double VramFraction, double RamFraction, int Slots, int Ctx,
        bool Nvme, int MaxTransferKb, bool Targeted)
    {
        public override string ToString() =>
            $"{Shape} types#{TypeSeed} {Profile} vram×{VramFraction:0.00} ram×{RamFraction:0.00} slots {Slots} ctx {Ctx} nvme {Nvme} max {MaxTransferKb}K";
    }

    private static readonly Gen<Case> Cases =
        from layers in Gen.Int[1, 8]
        from embdBlocks in Gen.Int[1, 3]
        from ffBlocks in Gen.Int[1, 4]
        from heads in Gen.OneOf(1, 2, 4)
        from kvDiv in Gen.OneOf(1, 2)
        from vocab in Gen.Int[4, 40]
        from tied in Gen.Bool
        from ropeFreqs in Gen.Bool
        from typeSeed in Gen.Int[0, 1000]
        from profile in Gen.OneOf("rtx3090-48g", "h100-80g", "cpu-only", "rtx4090-64g")
        from vf in Gen.Double[0.3, 1.6]
        from rf in Gen.OneOf(Gen.Double[0.02, 0.3], Gen.Double[0.3, 1.3])
        from slots in Gen.Int[1, 3]
        from ctx in Gen.Int[1, 300]
        from nvme in Gen.Int[0, 3].Select(x => x > 0)
        from maxKb in Gen.OneOf(4, 8, 64, 128)
        from targeted in Gen.Int[0, 3]
        select new Case(new LlamaShape("p", layers, 256 * embdBlocks, 256 * ffBlocks, heads, Math.Max(1, heads / kvDiv), vocab * 32,
            ropeFreqs, tied), typeSeed, profile, vf, rf, slots, ctx, nvme, maxKb, targeted > 0);

    [Fact]
    public void Plans_are_sound_or_refused_in_one_line()
    {
        int refused = 0, planned = 0, streamedB = 0, streamedC = 0;
        Cases.Sample(c =>
        {
            using var dir = new TempDir();
            var rng = new Random(c.TypeSeed);
            var types = new Dictionary<(string, int), GgmlType>();
            string model = LlamaModels.Write(dir.Path, c.Shape, "F32", (role, layer) =>
            {
                if (role is "attn_norm" or "ffn_norm" or "output_norm" or "rope_freqs") return GgmlType.F32;
                return types.TryGetValue((role, layer), out var t) ? t : types[(role, layer)] = Types[rng.Next(Types.Length)];
            });
            long modelBytes = new FileInfo(model).Length;
            var hw = HardwareProfiles.Resolve(c.Profile);
            hw = hw with { Nvme = c.Nvme ? new NvmeProfile(3e9, 4096, c.MaxTransferKb * 1024) : null };
            var options = new PlanOptions
            {
                ModelPath = model, Hardware = hw, Ctx = c.Ctx, Slots = c.Slots, EngineVersion = "0.1.0",
                VramBudget = hw.IsCpu ? null : (long)(modelBytes * c.VramFraction),
                RamBudget = (long)(modelBytes * c.RamFraction),
            };
            if (c.Targeted)
            {
                // Budgets around what this model needs (learned from an unconstrained plan), so most cases stream.
                var free = Engine.Plans.Planner.Make(options with { VramBudget = hw.IsCpu ? null : hw.VramBytes, RamBudget = hw.RamBytes }, Engine.Graph.Generated.LlamaProgram.Program);
                long layers = free.Layers.Sum(l => l.ImageSize), maxImage = free.Layers.Max(l => l.ImageSize);
                long fixedDevice = free.Arenas[Arenas.Device].Size - free.Tensors.Where(t => t.Layer >= 0).Sum(t => (t.Size + 255) / 256 * 256);
                long pinned = free.Arenas[Arenas.Pinned].Size;
                long slots = c.Slots * maxImage;
                options = hw.IsCpu
                    ? options with { RamBudget = fixedDevice + 2 * slots + (long)(layers * c.VramFraction * 0.7) }
                    : options with { VramBudget = fixedDevice + slots + (long)(layers * c.VramFraction * 0.6), RamBudget = pinned + slots + (long)(layers * c.RamFraction * 0.6) };
            }
            Plan plan;
            try { plan = Engine.Plans.Planner.Make(options, Engine.Graph.Generated.LlamaProgram.Program); }
            catch (PlanException e)
            {
                Assert.DoesNotContain('\n', e.Message);
                Assert.True(e.Message.Contains("budget") || e.Message.Contains("fits nowhere"), e.Message);
                refused++;
                return;
            }
            planned++;
            if (plan.Layers.Any(l => l.Tier == Tier.B)) streamedB++;
            if (plan.Layers.Any(l => l.Tier == Tier.C)) streamedC++;
            using var gguf = GgufFile.Open(model);
            CheckInvariants(plan, gguf, options);
            PlanKernelTests.CheckAgainstKernelTable(plan);
            var bytes = PlanWriter.ToBytes(plan);
            var loaded = PlanReader.Parse(bytes, "prop.plan");
            Assert.Equal(bytes, PlanWriter.ToBytes(loaded));
            Assert.Equal(PlanExplainer.Text(plan), PlanExplainer.Text(loaded));
            // Same inputs, same bytes.
            Assert.Equal(bytes, PlanWriter.ToBytes(Engine.Plans.Planner.Make(options, Engine.Graph.Generated.LlamaProgram.Program)));
        }, iter: 150, threads: 1);
        // The generator must reach every outcome, or the property proves little.
        Assert.True(planned >= 50 && refused >= 5 && streamedB >= 5 && streamedC >= 3, $"planned {planned}, refused {refused}, with B {streamedB}, with C {streamedC}");
    }

    internal static void CheckInvariants(Plan p, GgufFile gguf, PlanOptions o)
    {
        // Every GGUF tensor placed exactly once, with its file position.
        Assert.Equal(gguf.Tensors.Count, p.Tensors.Count);
        Assert.Equal(gguf.Tensors.Select(t => t.Name).Order(), p.Tensors.Select(t => t.Name).Order());
        foreach (var t in p.Tensors)
        {
            var g = gguf.FindTensor(t.Name)!;
            Assert.Equal((g.FileOffset, g.ByteSize), (t.FileOffset, t.Size));
        }
        // Arenas within budgets.
        long host = p.Arenas[Arenas.Pinned].Size + p.Arenas[Arenas.Staging].Size;
        if (o.Hardware.IsCpu) host += p.Arenas[Arenas.Device].Size;
        else Assert.True(p.Arenas[Arenas.Device].Size <= p.Inputs.VramBudget, $"device {p.Arenas[Arenas.Device].Size} > {p.Inputs.VramBudget}");
        Assert.True(host <= p.Inputs.RamBudget, $"host {host} > {p.Inputs.RamBudget}");

        // No two simultaneously live things overlap in any arena. Streamed tensors live inside their slot (checked
        // below); everything else is whole-run except activations, which live over [first_use, last_use].
        var items = new List<(string Name, int Arena, long Off, long Size, int First, int Last)>();
        foreach (var b in p.Buffers) items.Add((b.Name + "." + b.Layer, b.Arena, b.Offset, b.Size, b.FirstUse, b.LastUse));
        foreach (var t in p.Tensors.Where(t => t.Tier is Tier.A or Tier.H)) items.Add((t.Name, t.DeviceArena, t.DeviceOffset, t.Size, -1, -1));
        foreach (var l in p.Layers.Where(l => l.Tier == Tier.B)) items.Add(("image", Arenas.Pinned, l.HomeOffset, l.ImageSize, -1, -1));
        for (int i = 0; i < items.Count; i++)
            for (int j = i + 1; j < items.Count; j++)
            {
                var (a, b) = (items[i], items[j]);
                if (a.Arena != b.Arena || a.Size == 0 || b.Size == 0) continue;
                bool together = a.First < 0 || b.First < 0 || (a.First <= b.Last && b.First <= a.Last);
                bool overlap = a.Off < b.Off + b.Size && b.Off < a.Off + a.Size;
                Assert.False(together && overlap, $"{a.Name} [{a.Off},+{a.Size}) overlaps {b.Name} [{b.Off},+{b.Size})");
            }
        foreach (var t in p.Tensors.Where(t => t.Tier is Tier.B or Tier.C))
        {
            var l = p.Layers[t.Layer];
            Assert.InRange(t.DeviceOffset, l.SlotOffset, l.SlotOffset + l.ImageSize - t.Size);
            var slot = p.Buffers.Single(b => b.Role == BufferRole.Slot && b.Offset == l.SlotOffset);
            Assert.True(l.ImageSize <= slot.Size);
        }
        // Layer images are the 4 KiB-aligned superset of the layer's bytes; I/O lists cover them exactly once.
        int block = p.Inputs.NvmeMode == NvmeMode.File ? 4096 : p.Inputs.NvmeBlockSize;
        for (int l = 0; l < p.Layers.Count; l++)
        {
            var layer = p.Layers[l];
            var ts = p.Tensors.Where(t => t.Layer == l).ToList();
            Assert.Equal(ts.Min(t => t.FileOffset) / 4096 * 4096, layer.ImageFileOffset);
            Assert.Equal((ts.Max(t => t.FileOffset + t.Size) + 4095) / 4096 * 4096, layer.ImageFileOffset + layer.ImageSize);
            if (layer.Tier != Tier.C) { Assert.Equal(0, layer.IoCount); continue; }
            long next = layer.ImageFileOffset;
            for (int k = layer.IoFirst; k < layer.IoFirst + layer.IoCount; k++)
            {
                var cmd = p.IoCommands[k];
                long start = (cmd.Lba - (p.Inputs.NvmeMode == NvmeMode.Device ? p.Inputs.LbaBase : 0)) * block;
                long len = (long)cmd.BlockCount * block;
                Assert.Equal(0, start % 4096);
                Assert.Equal(0, len % 4096);
                Assert.InRange(len, 4096, p.Inputs.NvmeMaxTransfer);
                Assert.Equal(next, start);
                Assert.Equal(layer.HomeOffset + (start - layer.ImageFileOffset), cmd.StagingOffset);
                Assert.True(cmd.StagingOffset + len <= p.Arenas[Arenas.Staging].Size);
                next = start + len;
            }
            Assert.Equal(layer.ImageFileOffset + layer.ImageSize, next);
        }
        Assert.Equal(p.Layers.Where(l => l.Tier == Tier.C).Sum(l => l.IoCount), p.IoCommands.Count);
    }
}

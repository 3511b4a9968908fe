using System.Globalization;
using System.Security.Cryptography;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;

namespace Engine.Plans.PlanFile;

/// <summary>Cross-checks of a parsed plan: every index, offset and size against the table or arena it points into
/// (ExecuTorch validates its program the same way before running it). After this the runtime trusts the plan.</summary>
public static class PlanValidator
{
    public static void Check(Plan p, string name)
    {
        PlanException Bad(string field, object value, string limit) =>
            new($"{name}: {field} = {Convert.ToString(value, CultureInfo.InvariantCulture)}: {limit}");
        if (p.Arenas.Count != 3) throw Bad("arenas.count", p.Arenas.Count, $"version {PlanFormat.Version} has 3 arenas (device, pinned, staging)");
        foreach (var a in p.Arenas)
            if (a.Alignment <= 0 || (a.Alignment & (a.Alignment - 1)) != 0) throw Bad($"arena {a.Name}.alignment", a.Alignment, "must be a power of two");
        long modelSize = p.Fingerprints.ModelFileSize;
        int nLayer = p.Config.LayerCount;
        if (p.Layers.Count != nLayer) throw Bad("layers.count", p.Layers.Count, $"must equal n_layer {nLayer}");
        if (p.Inputs.Slots < 0 || p.Inputs.Slots > 16) throw Bad("inputs.slots", p.Inputs.Slots, "must be 0..16");
        var slotSize = p.Buffers.Where(b => b.Role == BufferRole.Slot).Select(b => b.Size).DefaultIfEmpty(0).Max();
        var stagingSize = p.Arenas[Arenas.Staging].Size;

        void InArena(string field, int arena, long offset, long size)
        {
            if (arena < 0 || arena >= p.Arenas.Count) throw Bad(field + ".arena", arena, $"must be 0..{p.Arenas.Count - 1}");
            if (offset < 0 || size < 0 || offset + size > p.Arenas[arena].Size)
                throw Bad(field, $"[{offset}, {offset + size})", $"outside the {p.Arenas[arena].Name} arena of {p.Arenas[arena].Size} bytes");
        }

        for (int i = 0; i < p.Tensors.Count; i++)
        {
            var t = p.Tensors[i];
            string f = $"tensor {t.Name}";
            if (t.Layer < -1 || t.Layer >= nLayer) throw Bad(f + ".layer", t.Layer, $"must be -1..{nLayer - 1}");
            long elements = 1; foreach (long d in t.Dims) elements = checked(elements * d);
            if (elements % GgmlTypeInfo.BlockElements(t.Type) != 0 || GgmlTypeInfo.RowBytes(t.Type, elements) != t.Size)
                throw Bad(f + ".size", t.Size, $"must be {GgmlTypeInfo.RowBytes(t.Type, elements)} for {t.Type} {string.Join("x", t.Dims)}");
            if (t.FileOffset < p.Fingerprints.ModelDataOffset || t.FileOffset + t.Size > modelSize)
                throw Bad(f + ".file_offset", t.FileOffset, $"must lie in the model's data [{p.Fingerprints.ModelDataOffset}, {modelSize})");
            InArena(f + ".device", t.DeviceArena, t.DeviceOffset, t.Size);
            if (t.Tier is Tier.B or Tier.C)
            {
                if (t.Layer < 0) throw Bad(f + ".tier", t.Tier, "only layer tensors stream");
                var l = p.Layers[t.Layer];
                if (l.Tier != t.Tier) throw Bad(f + ".tier", t.Tier, $"layer {t.Layer} is tier {l.Tier}");
                long inImage = t.FileOffset - l.ImageFileOffset;
                if (inImage < 0 || inImage + t.Size > l.ImageSize || t.DeviceOffset != l.SlotOffset + inImage)
                    throw Bad(f + ".device_offset", t.DeviceOffset, $"must be slot {l.SlotOffset} + {inImage} inside the layer image");
            }
            if (t.Tier == Tier.C) { if (t.HomeArena != -1) throw Bad(f + ".home_arena", t.HomeArena, "tier C lives on NVMe (-1)"); }
            else InArena(f + ".home", t.HomeArena, t.HomeOffset, t.Size);
        }
        foreach (var b in p.Buffers)
        {
            if (b.Layer < -1 || b.Layer >= nLayer) throw Bad($"buffer {b.Name}.layer", b.Layer, $"must be -1..{nLayer - 1}");
            InArena($"buffer {b.Name}", b.Arena, b.Offset, b.Size);
        }
        int streamed = 0;
        for (int i = 0; i < nLayer; i++)
        {
            var l = p.Layers[i];
            string f = $"layer {i}";
            if (l.ImageFileOffset % 4096 != 0 || l.ImageSize % 4096 != 0 || l.ImageFileOffset + l.ImageSize > (modelSize + 4095) / 4096 * 4096)
                throw Bad(f + ".image", $"{l.ImageFileOffset}+{l.ImageSize}", "must be 4 KiB aligned and within the model file");
            if (l.Tier == Tier.A) continue;
            if (l.StreamIndex != streamed++) throw Bad(f + ".stream_index", l.StreamIndex, $"must be {streamed - 1} (layer order)");
            if (p.Inputs.Slots <= 0 || l.Slot != l.StreamIndex % p.Inputs.Slots) throw Bad(f + ".slot", l.Slot, "must be stream_index % slots");
            if (l.ImageSize > slotSize) throw Bad(f + ".image_size", l.ImageSize, $"larger than the {slotSize}-byte slot");
            InArena(f + ".slot", Arenas.Device, l.SlotOffset, l.ImageSize);
            if (l.Tier == Tier.B) InArena(f + ".home", Arenas.Pinned, l.HomeOffset, l.ImageSize);
            else
            {
                InArena(f + ".staging", Arenas.Staging, l.HomeOffset, l.ImageSize);
                if (l.IoCount <= 0 || l.IoFirst < 0 || (long)l.IoFirst + l.IoCount > p.IoCommands.Count)
                    throw Bad(f + ".io", $"{l.IoFirst}+{l.IoCount}", $"must be a non-empty range of the {p.IoCommands.Count} I/O commands");
                long covered = 0;
                int block = p.Inputs.NvmeMode == NvmeMode.File ? 4096 : p.Inputs.NvmeBlockSize;
                for (int k = l.IoFirst; k < l.IoFirst + l.IoCount; k++)
                {
                    var c = p.IoCommands[k];
                    long bytes = (long)c.BlockCount * block;
                    if (c.BlockCount <= 0 || bytes > p.Inputs.NvmeMaxTransfer || bytes % 4096 != 0 || c.StagingOffset != l.HomeOffset + covered)
                        throw Bad($"io command {k}", $"{c.Lba}/{c.BlockCount}/{c.StagingOffset}", $"must be 4 KiB multiples ≤ {p.Inputs.NvmeMaxTransfer} bytes, contiguous in the layer's staging slot");
                    covered += bytes;
                }
                if (covered != l.ImageSize) throw Bad(f + ".io", covered, $"commands must cover the {l.ImageSize}-byte image exactly");
            }
        }
        if (p.Inputs.NvmeMode == NvmeMode.None && p.Layers.Any(l => l.Tier == Tier.C)) throw Bad("inputs.nvme_mode", "none", "tier-C layers need an NVMe source");
        var kernelIds = new HashSet<uint>();
        foreach (var k in p.Kernels)
        {
            if (!kernelIds.Add(k.Id)) throw Bad($"kernel {k.Entry}.id", k.Id, "duplicate");
            if (k.ArgumentBytes == 0 || k.ArgumentBytes > 4096) throw Bad($"kernel {k.Entry}.argument_bytes", k.ArgumentBytes, "must be 1..4096");
            // The recorded activation precision is what the kernels do: f32act entries exactly where the mode is f32
            // and the family has one for the format (a reader that trusts inputs.activations trusts the kernels too).
            if (Engine.Kernels.Ptx.Generated.KernelTable.Find(k.Entry) is { } e)
            {
                bool hasF32Act = Engine.Kernels.Ptx.Generated.KernelTable.All.Any(x => x.Family == e.Family && x.Format == e.Format && x.F32Activations);
                bool wantF32Act = p.Inputs.Activations == ActivationPrecision.F32 && hasF32Act;
                if (e.F32Activations != wantF32Act)
                    throw Bad($"kernel {k.Entry}", e.F32Activations ? "f32 activations" : "int8 activations",
                        $"the plan records activations {p.Inputs.Activations.ToString().ToLowerInvariant()}");
            }
        }
        if (p.Inputs.Activations == ActivationPrecision.F32 && p.Instructions.FirstOrDefault(x => x.Opcode == Opcode.Launch && x.HasBatchKernel) is { } batched)
            throw Bad($"instruction {batched.OpName} (layer {batched.Layer}).batch_kernel_id", batched.BatchKernelId, "f32 activations run no batch kernel (the int8 GEMM)");
        for (int i = 0; i < p.Instructions.Count; i++)
        {
            var ins = p.Instructions[i];
            string f = $"instruction {i}";
            if (ins.Layer < -1 || ins.Layer >= nLayer) throw Bad(f + ".layer", ins.Layer, $"must be -1..{nLayer - 1}");
            if (ins.Opcode != Opcode.Launch)
            {
                if (ins.Layer < 0 || p.Layers[ins.Layer].Tier == Tier.A) throw Bad(f + ".layer", ins.Layer, $"{ins.Opcode} needs a streamed layer");
                continue;
            }
            if (!kernelIds.Contains(ins.KernelId)) throw Bad(f + ".kernel_id", ins.KernelId, "not in the kernel table");
            if (ins.HasBatchKernel && !kernelIds.Contains(ins.BatchKernelId)) throw Bad(f + ".batch_kernel_id", ins.BatchKernelId, "not in the kernel table");
            if (ins.HasShortKernel && !kernelIds.Contains(ins.ShortKernelId)) throw Bad(f + ".short_kernel_id", ins.ShortKernelId, "not in the kernel table");
            var s = ins.Shape;
            if (s.GridX == 0 || s.GridY == 0 || s.GridZ == 0 || s.BlockX == 0 || s.BlockY == 0 || s.BlockZ == 0 || (long)s.BlockX * s.BlockY * s.BlockZ > 1024)
                throw Bad(f + ".shape", $"{s.GridX}x{s.GridY}x{s.GridZ}/{s.BlockX}x{s.BlockY}x{s.BlockZ}", "grid ≥ 1 and 1..1024 threads per block");
            foreach (var a in ins.Arguments)
            {
                if (a.Kind == ArgKind.Tensor && (a.Value < 0 || a.Value >= p.Tensors.Count)) throw Bad(f + ".arg", a.Value, $"tensor index must be < {p.Tensors.Count}");
                if (a.Kind == ArgKind.Buffer && (a.Value < 0 || a.Value >= p.Buffers.Count)) throw Bad(f + ".arg", a.Value, $"buffer index must be < {p.Buffers.Count}");
                if (a.Kind is ArgKind.I32 or ArgKind.F32 or ArgKind.Tokens && (a.Value < int.MinValue || a.Value > int.MaxValue))
                    throw Bad(f + ".arg", a.Value, "an i32/f32 value must fit in 32 bits");
                if (a.Kind == ArgKind.Tokens && (a.Value < 0 || a.Value * (long)p.Inputs.Batch > int.MaxValue))
                    throw Bad(f + ".arg", a.Value, $"n_tokens × value must fit in an i32 for n_batch {p.Inputs.Batch}");
            }
        }
        foreach (var m in p.Ptx) if (m.Sm <= 0) throw Bad($"ptx {m.Name}.sm", m.Sm, "must be positive");
    }
}

/// <summary>Is this plan for this model, this engine and this GPU? Each refusal is one line saying what differs
/// and the <c>ntc plan</c> command that makes a plan that fits.</summary>
public static class PlanCheck
{
    public static void AgainstEngine(Plan p, string engineVersion, string planPath)
    {
        if (p.Fingerprints.EngineVersion != engineVersion)
            throw new PlanException($"{planPath}: made by engine {p.Fingerprints.EngineVersion}, this is {engineVersion}: re-plan with `{Replan(p, null, planPath)}`");
    }

    public static void AgainstModel(Plan p, string ggufPath, string planPath)
    {
        long size;
        try { size = new FileInfo(ggufPath).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PlanException($"{ggufPath}: cannot read the model: {e.Message}"); }
        var f = p.Fingerprints;
        if (size != f.ModelFileSize)
            throw new PlanException($"{planPath}: made for {f.ModelFileName} of {f.ModelFileSize} bytes, {ggufPath} has {size}: re-plan with `{Replan(p, ggufPath, planPath)}`");
        using var fs = new FileStream(ggufPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        var head = new byte[f.ModelDataOffset];
        fs.ReadExactly(head);
        if (!SHA256.HashData(head).AsSpan().SequenceEqual(f.ModelHeaderSha256))
            throw new PlanException($"{planPath}: made for another model file (GGUF header hash differs from {f.ModelFileName}'s): re-plan with `{Replan(p, ggufPath, planPath)}`");
    }

    /// <summary>Compares the GPU the plan was made for with the one found (backend, name, SM, VRAM). The driver
    /// version is recorded but not compared: a driver update keeps kernels and memory sizes. A cpu plan runs on any
    /// machine (every machine has the CPU backend).</summary>
    public static void AgainstHardware(Plan p, HardwareProfile found, string planPath)
    {
        var f = p.Fingerprints;
        string? what =
            f.HwBackend == "cpu" ? null :
            f.HwBackend != found.Backend ? $"backend {f.HwBackend}, this machine runs {found.Backend}" :
            f.GpuName != found.GpuName ? $"GPU \"{f.GpuName}\", this machine has \"{found.GpuName}\"" :
            f.GpuSm != found.Sm ? $"sm_{f.GpuSm}, this GPU is sm_{found.Sm}" :
            f.GpuVramBytes != found.VramBytes ? $"{f.GpuVramBytes} bytes of VRAM, this GPU has {found.VramBytes}" : null;
        if (what != null) throw new PlanException($"{planPath}: made for {what}: re-plan with `{Replan(p, null, planPath, "auto")}`");
    }

    public static string Replan(Plan p, string? ggufPath, string planPath, string? hw = null)
    {
        var i = p.Inputs;
        var s = new List<string> { "ntc plan", ggufPath ?? p.Fingerprints.ModelFileName, "-o", planPath, "--hw", hw ?? p.Fingerprints.HwProfile,
            "--ctx", i.Ctx.ToString(CultureInfo.InvariantCulture) };
        if (i.Activations == ActivationPrecision.F32) s.AddRange(["--activations", "f32"]);
        if (i.NvmeMode == NvmeMode.Device) s.AddRange(["--nvme", i.NvmeDevice, "--lba", i.LbaBase.ToString(CultureInfo.InvariantCulture)]);
        return string.Join(' ', s);
    }
}

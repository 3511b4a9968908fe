using System.Security.Cryptography;
using Engine.Graph;
using Engine.Kernels.Ptx;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;
using Engine.Plans.IoLists;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;
using Engine.Plans.Schedule;
using Engine.Plans.Tiering;

namespace Engine.Plans;

/// <summary>What <c>ntc plan</c> was asked for.</summary>
public sealed record PlanOptions
{
    public required string ModelPath { get; init; }
    public required HardwareProfile Hardware { get; init; }
    /// <summary>KV-cache length; null = min(4096, the model's trained context).</summary>
    public int? Ctx { get; init; }
    public long? VramBudget { get; init; }
    public long? RamBudget { get; init; }
    public string? NvmeDevice { get; init; }
    public long LbaBase { get; init; }
    public int Slots { get; init; } = 2;
    /// <summary>PTX modules to embed; null = those of the plan's kernels for the profile's GPU (<see cref="PtxFor"/>).</summary>
    public IReadOnlyList<PtxModule>? Ptx { get; init; }
    /// <summary>Tokens one step may process (the workspace is sized for it); decode steps use one.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>What the quantized formats' matmuls read (<see cref="ActivationPrecision"/>; --activations).</summary>
    public ActivationPrecision Activations { get; init; } = ActivationPrecision.Int8;
    public string EngineVersion { get; init; } = EngineInfo.Build;
}

public static class EngineInfo
{
    /// <summary>The EngineVersion MSBuild property (Directory.Build.props), as the assembly's version.</summary>
    public static string Version
    {
        get
        {
            var v = typeof(EngineInfo).Assembly.GetName().Version ?? new Version(0, 0, 0);
            return $"{v.Major}.{v.Minor}.{v.Build}";
        }
    }

    /// <summary>What a plan records as its engine version and a runtime requires (fingerprints.engine_version):
    /// <see cref="Version"/> and the kernel table's launch fingerprint (block, grid rule and parameters of every entry,
    /// generated from llama.graph). A plan's PTX is launched with the runtime's own launch shapes, so an ntrun built
    /// from a spec whose grid rules differ (session 20's gemm_swiglu: 64 rows a group, not 128) refuses the plan
    /// instead of running it over the wrong grid.</summary>
    public static string Build => Version + "+" + Engine.Kernels.Ptx.Generated.KernelTable.LaunchFingerprint;
}

/// <summary>GGUF + hardware + layer program → <see cref="Plan"/>: check the model, reserve workspace, KV cache and
/// globals, choose tiers (<see cref="TierPlanner"/>), lay out arenas, build I/O lists and the instruction stream,
/// predict the token time. Everything the runtime does is decided here.</summary>
public static class Planner
{
    public static readonly GgmlType[] SupportedTypes = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];
    public const int DeviceAlignment = 256, ImageAlignment = 4096;

    public static Plan Make(PlanOptions o, LayerProgram program)
    {
        using var gguf = GgufFile.Open(o.ModelPath);
        var config = ModelConfig.FromGguf(gguf);
        var tokenizer = TokenizerData.FromGguf(gguf);
        var hw = o.Hardware;
        string file = Path.GetFileName(o.ModelPath);
        foreach (var t in gguf.Tensors)
            if (Array.IndexOf(SupportedTypes, t.Type) < 0)
                throw new PlanException($"{file}: tensor {t.Name}: type {t.Type} has no kernel (supported: {string.Join(", ", SupportedTypes)})");
        int ctx = o.Ctx ?? Math.Min(4096, config.TrainedContext);
        if (ctx < 1 || ctx > 1 << 20) throw new PlanException($"--ctx {ctx}: must be 1 .. 1048576");
        if (o.Slots < 1 || o.Slots > 16) throw new PlanException($"--slots {o.Slots}: must be 1 .. 16");
        if (o.Batch < 1 || o.Batch > 4096) throw new PlanException($"--batch {o.Batch}: must be 1 .. 4096");
        if (o.Batch > ctx) throw new PlanException($"--batch {o.Batch}: must not exceed --ctx {ctx}");
        // Gate and up in different formats in any layer: the fused FFN kernel cannot run, the spec's fallback does.
        var fused = program.Layer.FirstOrDefault(op => op.Kind == OpKind.MatMulSwiGlu);
        if (fused != null && Enumerable.Range(0, config.LayerCount).Any(l =>
                ResolveWeight(gguf, program.Tensor(fused.Inputs[0]).WeightRole!, l)?.Type != ResolveWeight(gguf, program.Tensor(fused.Inputs[1]).WeightRole!, l)?.Type))
            program = FusedFallback.Lower(program);
        // The short attention kernel needs head_dim a multiple of 16, at most 128 (two threads a K row of 16-byte loads).
        if (config.HeadDim % 16 != 0 || config.HeadDim > 128) program = FusedFallback.WithoutShortKernels(program);
        // The tiled attention of prompt steps (kernels/AttentionTiled.cs) needs head_dim a multiple of 32, at most 128.
        if (config.HeadDim % 32 != 0 || config.HeadDim > 128) program = FusedFallback.WithoutBatchKernels(program, OpKind.AttentionQuantize);
        // Attention fused with the quantize of its output needs head_dim a multiple of 32 and the row's blocks unpadded.
        if (config.HeadDim % 32 != 0 || config.HeadCount * config.HeadDim % 64 != 0)
            program = FusedFallback.LowerAttentionQuantize(program, keepQuantize: true);
        var shapes = new ModelShapes(config, ctx, o.Batch);
        var workspace = Workspace.Build(program, shapes);

        // Tensors by layer; every program weight must be in the file (rope_freqs optional; output may be tied).
        var byLayer = Enumerable.Range(0, config.LayerCount).Select(_ => new List<int>()).ToArray();
        var globals = new List<int>();
        for (int i = 0; i < gguf.Tensors.Count; i++)
        {
            int l = TensorNames.LayerOf(gguf.Tensors[i].Name);
            if (l >= config.LayerCount) throw new PlanException($"{file}: tensor {gguf.Tensors[i].Name}: layer {l} ≥ block_count {config.LayerCount}");
            (l < 0 ? globals : byLayer[l]).Add(i);
        }
        foreach (var gt in program.Tensors.Where(t => t.Role == TensorRole.Weight))
        {
            if (gt.WeightRole is null) throw new PlanException($"layer program {program.Name}: weight {gt.Name} has no weight role");
            for (int l = gt.PerLayer ? 0 : -1; l < (gt.PerLayer ? config.LayerCount : 0); l++)
                if (ResolveWeight(gguf, gt.WeightRole, l) is null && !IsOptional(gt.WeightRole))
                    throw new PlanException($"{file}: tensor {WeightRoles.TensorName(gt.WeightRole, l)} is missing (required by the {program.Name} layer program)");
        }

        var images = new LayerImage[config.LayerCount];
        for (int l = 0; l < config.LayerCount; l++)
        {
            if (byLayer[l].Count == 0) throw new PlanException($"{file}: layer {l} has no tensors (block_count {config.LayerCount})");
            var ts = byLayer[l].Select(i => gguf.Tensors[i]).ToList();
            long start = ts.Min(t => t.FileOffset) / ImageAlignment * ImageAlignment;
            long end = Workspace.Align(ts.Max(t => t.FileOffset + t.ByteSize), ImageAlignment);
            images[l] = new LayerImage(l, start, end - start, ts.Sum(t => Workspace.Align(t.ByteSize, DeviceAlignment)), ts.Sum(t => t.ByteSize));
        }

        // Globals: the token embedding stays in pinned host memory and its kernel reads one row per token
        // (llama.cpp keeps the input layer on the host too) unless the output is tied to it or there is no GPU.
        bool embdOnHost = !hw.IsCpu && !config.TiedOutput;
        var globalTier = globals.ToDictionary(i => i, i => embdOnHost && gguf.Tensors[i].Name == TensorNames.TokenEmbedding ? Tier.H : Tier.A);
        long globalsDevice = globals.Where(i => globalTier[i] == Tier.A).Sum(i => Workspace.Align(gguf.Tensors[i].ByteSize, DeviceAlignment));
        long pinnedFixed = globals.Where(i => globalTier[i] == Tier.H).Sum(i => Workspace.Align(gguf.Tensors[i].ByteSize, ImageAlignment));
        long kvTotal = workspace.KvBytesPerLayer * config.LayerCount;
        long deviceFixed = workspace.Size + Workspace.Align(kvTotal, DeviceAlignment) + globalsDevice;

        var budgets = Budgets.For(hw, o.VramBudget, o.RamBudget);
        var source = NvmeSourceFor(o, hw);
        double nvmeBw = source.Mode == NvmeMode.None ? 0 : hw.Nvme?.ReadBandwidth ?? HardwareProbe.AssumedNvmeRead;
        var cost = new CostModel(hw.DeviceBandwidth, hw.IsCpu ? 0 : hw.H2dBandwidth, nvmeBw);
        TierDecision decision;
        try
        {
            decision = TierPlanner.Decide(new TierRequest(images, deviceFixed, pinnedFixed, budgets, o.Slots, hw.IsCpu,
                source.Mode != NvmeMode.None, cost, ctx));
        }
        catch (PlanException e) { throw new PlanException($"{file} on {hw.Name}: {e.Message}"); }

        // ---- arenas: device = workspace | KV cache | resident globals | slots | tier-A layers
        var buffers = new List<PlanBuffer>();
        var bufferIndex = new Dictionary<(string, int), int>();
        for (int i = 0; i < workspace.Buffers.Count; i++)
        {
            var b = workspace.Buffers[i];
            bufferIndex[(b.Name, -1)] = buffers.Count;
            buffers.Add(new PlanBuffer(b.Name, b.Role, -1, Arenas.Device, workspace.Offsets[i], b.Size, b.FirstUse, b.LastUse));
        }
        long dev = workspace.Size;
        for (int l = 0; l < config.LayerCount; l++)
            foreach (var (name, size) in workspace.KvPerLayer)
            {
                bufferIndex[(name, l)] = buffers.Count;
                buffers.Add(new PlanBuffer(name, BufferRole.KvCache, l, Arenas.Device, dev, size, -1, -1));
                dev = Workspace.Align(dev + size, DeviceAlignment);
            }
        var tensors = new PlanTensor?[gguf.Tensors.Count];
        long pinned = 0;
        foreach (int i in globals)
        {
            var t = gguf.Tensors[i];
            if (globalTier[i] == Tier.H)
            {
                tensors[i] = Tensor(t, -1, Tier.H, Arenas.Pinned, pinned, Arenas.Pinned, pinned);
                pinned = Workspace.Align(pinned + t.ByteSize, ImageAlignment);
            }
            else
            {
                tensors[i] = Tensor(t, -1, Tier.A, Arenas.Device, dev, Arenas.Device, dev);
                dev = Workspace.Align(dev + t.ByteSize, DeviceAlignment);
            }
        }
        var slotBase = new long[decision.Slots];
        if (decision.Slots > 0) dev = Workspace.Align(dev, ImageAlignment);
        for (int k = 0; k < decision.Slots; k++)
        {
            slotBase[k] = dev;
            buffers.Add(new PlanBuffer("slot." + k, BufferRole.Slot, -1, Arenas.Device, dev, decision.SlotSize, -1, -1));
            dev += decision.SlotSize;
        }
        var stagingBase = new long[decision.StagingSlotSize > 0 ? decision.Slots : 0];
        for (int k = 0; k < stagingBase.Length; k++)
        {
            stagingBase[k] = k * decision.StagingSlotSize;
            buffers.Add(new PlanBuffer("staging." + k, BufferRole.StagingSlot, -1, Arenas.Staging, stagingBase[k], decision.StagingSlotSize, -1, -1));
        }
        var streamOrder = new int[config.LayerCount];
        var layers = new PlanLayer[config.LayerCount];
        var io = new List<IoCommand>();
        int streamed = 0;
        for (int l = 0; l < config.LayerCount; l++)
        {
            var img = images[l];
            var tier = decision.Tiers[l];
            if (tier == Tier.A)
            {
                streamOrder[l] = -1;
                foreach (int i in byLayer[l])
                {
                    var t = gguf.Tensors[i];
                    tensors[i] = Tensor(t, l, Tier.A, Arenas.Device, dev, Arenas.Device, dev);
                    dev = Workspace.Align(dev + t.ByteSize, DeviceAlignment);
                }
                layers[l] = new PlanLayer(Tier.A, -1, -1, img.FileOffset, img.Size, 0, 0, 0, 0, decision.Reasons[l]);
                continue;
            }
            int j = streamed++, slot = j % decision.Slots;
            streamOrder[l] = j;
            long home = 0;
            int ioFirst = 0, ioCount = 0;
            if (tier == Tier.B) { home = pinned; pinned = Workspace.Align(pinned + img.Size, ImageAlignment); }
            else
            {
                home = stagingBase[slot];
                var cmds = IoListBuilder.ForImage(source, img.FileOffset, img.Size, home);
                ioFirst = io.Count; ioCount = cmds.Count;
                io.AddRange(cmds);
            }
            foreach (int i in byLayer[l])
            {
                var t = gguf.Tensors[i];
                long inImage = t.FileOffset - img.FileOffset;
                tensors[i] = Tensor(t, l, tier, tier == Tier.B ? Arenas.Pinned : -1, tier == Tier.B ? home + inImage : 0,
                    Arenas.Device, slotBase[slot] + inImage);
            }
            layers[l] = new PlanLayer(tier, j, slot, img.FileOffset, img.Size, home, slotBase[slot], ioFirst, ioCount, decision.Reasons[l]);
        }
        long staging = (long)stagingBase.Length * decision.StagingSlotSize;
        var arenas = new List<PlanArena>
        {
            new("device", hw.IsCpu ? ArenaKind.HostAsDevice : ArenaKind.Device, dev, hw.IsCpu ? budgets.Ram : budgets.Vram, DeviceAlignment),
            new("pinned", ArenaKind.PinnedMapped, pinned, budgets.Ram, ImageAlignment),
            new("staging", ArenaKind.Staging, staging, budgets.Ram, ImageAlignment),
        };
        long hostTotal = pinned + staging + (hw.IsCpu ? dev : 0);
        if (!hw.IsCpu && dev > budgets.Vram)
            throw new PlanException($"internal: device arena {ByteSize.Format(dev)} exceeds the VRAM budget {ByteSize.Format(budgets.Vram)}");
        if (hostTotal > budgets.Ram)
            throw new PlanException($"RAM budget {ByteSize.Format(budgets.Ram)} < {ByteSize.Format(hostTotal)} needed (pinned {ByteSize.Format(pinned)} + staging {ByteSize.Format(staging)}{(hw.IsCpu ? " + host arena " + ByteSize.Format(dev) : "")}): raise --ram-budget");

        var planTensors = tensors.Select(t => t!).ToList();
        var tensorIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < planTensors.Count; i++) tensorIndex[planTensors[i].Name] = i;

        // Operands of a launch: weights by role (tied output, absent rope_freqs → an empty view), per-layer KV
        // caches, the shared workspace buffers. Buffers' per-token element counts come from their shapes at n_batch 1.
        var tokenShapes = new ModelShapes(config, ctx, 1);
        BoundOperand Resolve(string name, int layer)
        {
            var gt = program.Tensor(name);
            if (gt.Role == TensorRole.Weight)
            {
                var w = ResolveWeight(gguf, gt.WeightRole!, layer);
                if (w is null) return new BoundOperand(new KernelArg(ArgKind.None, -1), GgmlType.F32, [0], 0, "f32");
                long n = w.Dims.Aggregate(1L, (a, d) => a * d);
                return new BoundOperand(new KernelArg(ArgKind.Tensor, tensorIndex[w.Name]), w.Type, (long[])w.Dims.Clone(), n, "any");
            }
            int index = bufferIndex[(name, gt.Role == TensorRole.KvCache ? layer : -1)];
            var dims = gt.Shape.Select(d => tokenShapes.Evaluate(d)).ToArray();
            return new BoundOperand(new KernelArg(ArgKind.Buffer, index), null, dims, tokenShapes.Elements(gt.Shape), gt.ElementType);
        }
        var binding = new KernelBinding(program, shapes.Parameters, config.RmsEpsilon, config.RopeFreqBase, o.Activations);
        // An 8-bit activation is written only where a matmul reads it: not with f32 activations, and not where every
        // matmul reading it has a float weight (F32/F16/BF16 read f32 x) in every layer. Such quantize ops are not
        // launched and a fused attention_quant runs as attention alone (after the workspace: the buffers stay as
        // planned). rms_norm still writes its 8-bit output (one kernel writes both; a few KiB a token).
        bool Unread(string quantized) => o.Activations == ActivationPrecision.F32 || program.AllOps
            .Where(op => op.Weight is not null && op.Inputs.Contains(quantized))
            .SelectMany(op => op.Inputs.Where(i => program.Tensor(i).Role == TensorRole.Weight))
            .All(w => Enumerable.Range(0, config.LayerCount).All(l =>
                ResolveWeight(gguf, program.Tensor(w).WeightRole!, l)?.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or null));
        var dropped = program.AllOps.Where(op => op.Kind == OpKind.Quantize && Unread(op.Outputs[0])).Select(op => op.Name).ToHashSet();
        var launched = dropped.Count == 0 ? program : program with
        {
            Prologue = [.. program.Prologue.Where(op => !dropped.Contains(op.Name))],
            Layer = [.. program.Layer.Where(op => !dropped.Contains(op.Name))],
            Epilogue = [.. program.Epilogue.Where(op => !dropped.Contains(op.Name))],
        };
        if (program.AllOps.FirstOrDefault(op => op.Kind == OpKind.AttentionQuantize) is { } fusedAttention && Unread(fusedAttention.Outputs[1]))
            launched = FusedFallback.LowerAttentionQuantize(launched, keepQuantize: false);
        var instructions = InstructionStream.Build(launched, config.LayerCount, streamOrder, decision.Slots, (op, l) => binding.Launches(op, l, Resolve));

        var prediction = Predict(planTensors, layers, images, workspace, config, cost, gguf);
        var fp = new Fingerprints(o.EngineVersion, gguf.FileSize, HeaderHash(o.ModelPath, gguf.DataOffset), gguf.DataOffset, file,
            hw.Name, hw.Backend, hw.GpuName, hw.Sm, hw.VramBytes, hw.PcieGen, hw.PcieWidth, hw.Driver);
        var inputs = new PlanInputs(ctx, o.Batch, decision.Slots, hw.IsCpu ? 0 : budgets.Vram, budgets.Ram, budgets.VramMargin, budgets.RamMargin,
            source.Mode, source.Device, source.LbaBase, source.BlockSize, source.MaxTransfer, cost.H2dBandwidth, cost.DeviceBandwidth, cost.NvmeBandwidth,
            o.Activations);
        var kernels = binding.Kernels;
        var ptx = (o.Ptx ?? PtxFor(hw, kernels)).OrderBy(p => p.Sm).ThenBy(p => p.Name, StringComparer.Ordinal).ToList();
        return new Plan(fp, inputs, config, tokenizer, planTensors, layers, arenas, buffers, kernels, instructions, io, ptx, prediction);
    }

    /// <summary>The PTX module of every kernel the plan launches, for the best architecture built for the profile's
    /// GPU (sm_90 for 9.x, sm_80 for 8.x; Engine.Kernels.Ptx); none for a cpu plan.</summary>
    public static IReadOnlyList<PtxModule> PtxFor(HardwareProfile hw, IReadOnlyList<KernelInfo> kernels)
    {
        if (hw.IsCpu) return [];
        string arch = PtxModules.ArchitectureFor(hw.Sm / 10, hw.Sm % 10)
            ?? throw new PlanException($"{hw.Name}: GPU {hw.GpuName} is sm_{hw.Sm}; the kernels are built for sm_80 and later");
        var modules = PtxModules.Get(arch);
        int sm = int.Parse(arch.AsSpan(3), System.Globalization.CultureInfo.InvariantCulture);
        return kernels.Select(k => new PtxModule(sm, k.Entry, System.Text.Encoding.ASCII.GetBytes(modules[k.Entry]))).ToList();
    }

    private static bool IsOptional(string role) => role is "rope_freqs" or "output";

    /// <summary>The GGUF tensor a weight role names in a layer: output falls back to the token embedding (tied
    /// output, llama.cpp's LLM_TENSOR_OUTPUT duplicate), rope_freqs may be absent.</summary>
    private static GgufTensorInfo? ResolveWeight(GgufFile f, string role, int layer)
    {
        var t = f.FindTensor(WeightRoles.TensorName(role, Math.Max(layer, 0)));
        if (t is null && role == "output") t = f.FindTensor(TensorNames.TokenEmbedding);
        return t;
    }

    private static PlanTensor Tensor(GgufTensorInfo t, int layer, Tier tier, int homeArena, long homeOffset, int deviceArena, long deviceOffset) =>
        new(t.Name, t.Type, (long[])t.Dims.Clone(), t.FileOffset, t.ByteSize, layer, tier, homeArena, homeOffset, deviceArena, deviceOffset);

    private static NvmeSource NvmeSourceFor(PlanOptions o, HardwareProfile hw)
    {
        if (o.NvmeDevice is { } devPath)
        {
            try { using var h = File.OpenHandle(devPath, FileMode.Open, FileAccess.Read); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                throw new PlanException($"--nvme {devPath}: cannot open for reading: {e.Message}");
            }
            var probed = HardwareProbe.ProbeDevice(devPath);
            int block = probed?.BlockSize ?? hw.Nvme?.BlockSize ?? 4096;
            int max = probed?.MaxTransfer ?? hw.Nvme?.MaxTransfer ?? 128 << 10;
            if (o.LbaBase < 0 || o.LbaBase * block % ImageAlignment != 0)
                throw new PlanException($"--lba {o.LbaBase}: the GGUF must start 4 KiB aligned on the device (LBA × {block} bytes a multiple of 4096)");
            return new NvmeSource(NvmeMode.Device, devPath, o.LbaBase, block, max);
        }
        if (hw.Nvme is { } n) return new NvmeSource(NvmeMode.File, "", 0, 4096, n.MaxTransfer);
        return new NvmeSource(NvmeMode.None, "", 0, 0, 0);
    }

    private static byte[] HeaderHash(string path, long dataOffset)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[1 << 16];
        long left = dataOffset;
        while (left > 0)
        {
            int n = fs.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n <= 0) throw new PlanException($"{path}: shorter than its header ({dataOffset} bytes)");
            sha.AppendData(buf, 0, n);
            left -= n;
        }
        return sha.GetHashAndReset();
    }

    private static Prediction Predict(List<PlanTensor> tensors, PlanLayer[] layers, LayerImage[] images, Workspace ws, ModelConfig c,
        CostModel cost, GgufFile f)
    {
        // Per token: every resident weight once, the token embedding's one row, the whole KV cache (a token at
        // position n_ctx), and the streamed layers' images over their links.
        long resident = tensors.Where(t => t.Tier == Tier.A).Sum(t => t.Size) + ws.KvBytesPerLayer * c.LayerCount;
        var embd = tensors.FirstOrDefault(t => t.Name == TensorNames.TokenEmbedding && t.Tier == Tier.H);
        if (embd != null) resident += embd.Size / Math.Max(1, embd.Dims.Length > 1 ? embd.Dims[1] : 1);
        double tA = resident / cost.DeviceBandwidth, tB = 0, tC = 0;
        long bytesB = 0, bytesC = 0;
        for (int l = 0; l < layers.Length; l++)
        {
            var img = images[l];
            if (layers[l].Tier == Tier.B) { bytesB += img.Size; tB += cost.Seconds(Tier.B, img.Size, img.WeightBytes); }
            if (layers[l].Tier == Tier.C) { bytesC += img.Size; tC += cost.Seconds(Tier.C, img.Size, img.WeightBytes); }
        }
        double t = tA + tB + tC;
        return new Prediction(resident, bytesB, bytesC, tA, tB, tC, t, t > 0 ? 1 / t : 0);
    }
}

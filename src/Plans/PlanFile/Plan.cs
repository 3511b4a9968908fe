using Engine.Plans.Gguf;
using Engine.Plans.Model;

namespace Engine.Plans.PlanFile;

// The in-memory plan: one record per section of docs/plan-format.md, fields in the order the page lists them.

public static class PlanFormat
{
    public const uint Version = 6;
    public static ReadOnlySpan<byte> Magic => "NTPLAN\0\0"u8;
    public const int SectionAlignment = 4096;
    public const int MaxSections = 64;
    public const int MaxString = 1 << 20;
    /// <summary>Kernel-table weight type of an op that reads no weight.</summary>
    public const uint NoWeightType = 255;
    /// <summary>Instruction batch_kernel_id of a launch without a batch kernel.</summary>
    public const uint NoBatchKernel = uint.MaxValue;

    /// <summary>instruction.short_kernel_id of a launch without a short kernel.</summary>
    public const uint NoShortKernel = uint.MaxValue;
}

public enum SectionKind : uint
{
    Fingerprints = 1, Inputs, ModelConfig, Tokenizer, Tensors, Layers, Arenas, Kernels, Instructions, IoLists, Ptx, Prediction,
}

/// <summary>A: device-resident; B: pinned RAM → device per token; C: NVMe → pinned staging → device per token;
/// H: host-resident in the pinned arena and read in place (the token embedding: one row per token).</summary>
public enum Tier : byte { A = 0, B = 1, C = 2, H = 3 }

public enum NvmeMode : byte { None = 0, File = 1, Device = 2 }

/// <summary>What the quantized formats' matmuls multiply their weights with (inputs.activations,
/// <c>ntc plan --activations</c>): Int8, the activations quantized to 8 bits per block of 32 (llama.cpp's mmvq/mmq and
/// ggml-cpu's vec_dot_q8; the fast path, the default); F32, the f32 activations themselves (the f32act entry points, no
/// batch GEMM): slower, and CUDA and the CPU backend then agree to f32 rounding. The float formats read f32 either way.</summary>
public enum ActivationPrecision : byte { Int8 = 0, F32 = 1 }

public enum ArenaKind : byte { Device = 0, PinnedMapped = 1, Staging = 2, HostAsDevice = 3 }

public enum BufferRole : byte { Input = 0, Activation = 1, KvCache = 2, Output = 3, Slot = 4, StagingSlot = 5 }

public enum Opcode : byte { Launch = 1, Prefetch = 2, Wait = 3 }

/// <summary>A kernel argument's source (docs/plan-format.md "instructions"): a view of a tensor or buffer (or an empty
/// view), an i32 or f32 constant, or an i32 that is <c>value × n_tokens</c> of the step (patched per step).</summary>
public enum ArgKind : byte { Tensor = 0, Buffer = 1, I32 = 2, None = 3, F32 = 4, Tokens = 5 }

public static class Arenas
{
    public const int Device = 0, Pinned = 1, Staging = 2;
}

public sealed record Fingerprints(string EngineVersion, long ModelFileSize, byte[] ModelHeaderSha256, long ModelDataOffset,
    string ModelFileName, string HwProfile, string HwBackend, string GpuName, int GpuSm, long GpuVramBytes, int PcieGen,
    int PcieWidth, string Driver, string ModelPath = "");

/// <summary>Where a plan finds its GGUF (fingerprints.model_path): the path relative to the plan file's directory, so
/// a plan and its model moved together still find each other and the same layout plans to the same bytes.</summary>
public static class PlanModelPath
{
    /// <summary>The plan as it is written to <paramref name="planPath"/>, recording <paramref name="modelPath"/>.</summary>
    public static Plan Record(Plan plan, string modelPath, string planPath)
    {
        string relative = Path.GetRelativePath(PlanDirectory(planPath), Path.GetFullPath(modelPath));
        return plan with { Fingerprints = plan.Fingerprints with { ModelPath = relative } };
    }

    /// <summary>The recorded model path resolved against the plan file's directory; null when none is recorded.</summary>
    public static string? Resolve(Plan plan, string planPath) =>
        plan.Fingerprints.ModelPath.Length == 0 ? null : Path.GetFullPath(Path.Combine(PlanDirectory(planPath), plan.Fingerprints.ModelPath));

    private static string PlanDirectory(string planPath) => Path.GetDirectoryName(Path.GetFullPath(planPath)) ?? "/";
}

public sealed record PlanInputs(int Ctx, int Batch, int Slots, long VramBudget, long RamBudget, long VramMargin, long RamMargin,
    NvmeMode NvmeMode, string NvmeDevice, long LbaBase, int NvmeBlockSize, int NvmeMaxTransfer, double H2dBandwidth,
    double DeviceBandwidth, double NvmeBandwidth, ActivationPrecision Activations = ActivationPrecision.Int8);

public sealed record PlanTensor(string Name, GgmlType Type, long[] Dims, long FileOffset, long Size, int Layer, Tier Tier,
    int HomeArena, long HomeOffset, int DeviceArena, long DeviceOffset);

public sealed record PlanLayer(Tier Tier, int StreamIndex, int Slot, long ImageFileOffset, long ImageSize, long HomeOffset,
    long SlotOffset, int IoFirst, int IoCount, string Reason);

public sealed record PlanArena(string Name, ArenaKind Kind, long Size, long Budget, int Alignment);

public sealed record PlanBuffer(string Name, BufferRole Role, int Layer, int Arena, long Offset, long Size, int FirstUse, int LastUse);

public sealed record KernelInfo(uint Id, string Family, uint WeightType, string Entry, uint ArgumentBytes);

public readonly record struct KernelArg(ArgKind Kind, long Value);

public readonly record struct LaunchShape(uint GridX, uint GridY, uint GridZ, uint BlockX, uint BlockY, uint BlockZ, uint SharedBytes);

/// <summary>An instruction; a launch may name a batch kernel (<see cref="BatchKernelId"/>, else
/// <see cref="PlanFormat.NoBatchKernel"/>) with the same arguments, which the CUDA runtime runs instead for steps of
/// many tokens, and a short kernel (<see cref="ShortKernelId"/>, else <see cref="PlanFormat.NoShortKernel"/>), run
/// instead for one-token steps of short contexts (docs/plan-format.md "instructions").</summary>
public sealed record Instruction(Opcode Opcode, int Layer, uint KernelId = 0, string OpName = "", LaunchShape Shape = default,
    KernelArg[]? Args = null, uint BatchKernelId = PlanFormat.NoBatchKernel, uint ShortKernelId = PlanFormat.NoShortKernel)
{
    public bool HasBatchKernel => BatchKernelId != PlanFormat.NoBatchKernel;

    public bool HasShortKernel => ShortKernelId != PlanFormat.NoShortKernel;

    public KernelArg[] Arguments => Args ?? [];
}

public readonly record struct IoCommand(long Lba, int BlockCount, long StagingOffset);

public sealed record PtxModule(int Sm, string Name, byte[] Text);

public sealed record Prediction(long BytesResident, long BytesPinned, long BytesNvme, double TimeResident, double TimePinned,
    double TimeNvme, double TokenSeconds, double TokensPerSecond);

/// <summary>The whole plan: what ntc writes and what the runtime replays.</summary>
public sealed record Plan(Fingerprints Fingerprints, PlanInputs Inputs, ModelConfig Config, TokenizerData Tokenizer,
    IReadOnlyList<PlanTensor> Tensors, IReadOnlyList<PlanLayer> Layers, IReadOnlyList<PlanArena> Arenas,
    IReadOnlyList<PlanBuffer> Buffers, IReadOnlyList<KernelInfo> Kernels, IReadOnlyList<Instruction> Instructions,
    IReadOnlyList<IoCommand> IoCommands, IReadOnlyList<PtxModule> Ptx, Prediction Prediction);

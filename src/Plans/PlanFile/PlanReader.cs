using System.Buffers.Binary;
using System.Text;
using Engine.Plans.Gguf;
using Engine.Plans.Model;

namespace Engine.Plans.PlanFile;

/// <summary>Loads and validates a plan (docs/plan-format.md): every offset, count and size is checked against
/// the file and against the arenas it points into, once, here; a bad plan gives one <see cref="PlanException"/>
/// naming the file, the field, the value and the limit. NativeAOT-safe (no reflection).</summary>
public static class PlanReader
{
    public static Plan Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlanException($"{path}: cannot read the plan: {e.Message}");
        }
        return Parse(bytes, path);
    }

    /// <summary>What ntrun calls: load, validate, and refuse a plan made for another engine version, model file or
    /// GPU (<paramref name="found"/>: <see cref="Hardware.HardwareProbe.Probe"/> on the machine that runs it; null when
    /// the runtime emulates the plan's device on the CPU backend, so no GPU need match).
    /// <paramref name="modelPath"/> null means the GGUF the plan records (<see cref="PlanModelPath.Resolve"/>).</summary>
    public static Plan LoadFor(string planPath, string? modelPath, Hardware.HardwareProfile? found, string engineVersion)
    {
        var plan = Load(planPath);
        PlanCheck.AgainstEngine(plan, engineVersion, planPath);
        modelPath ??= PlanModelPath.Resolve(plan, planPath)
            ?? throw new PlanException($"{planPath}: the plan records no model path: give --model PATH");
        if (!File.Exists(modelPath))
            throw new PlanException($"{planPath}: model file {modelPath} is missing: give --model PATH, or re-plan with `{PlanCheck.Replan(plan, null, planPath)}`");
        PlanCheck.AgainstModel(plan, modelPath, planPath);
        if (found != null) PlanCheck.AgainstHardware(plan, found, planPath);
        return plan;
    }

    public static Plan Parse(byte[] file, string name)
    {
        var h = new Cursor(file, 0, file.Length, name, "header");
        if (file.Length < 24 || !file.AsSpan(0, 8).SequenceEqual(PlanFormat.Magic))
            throw new PlanException($"{name}: not a plan file (magic is not NTPLAN): run ntc plan MODEL.gguf -o {name}");
        h.Pos = 8;
        uint version = h.U32("format_version");
        if (version != PlanFormat.Version)
            throw new PlanException($"{name}: plan format {version}, this engine reads {PlanFormat.Version}: re-run ntc plan");
        uint headerLength = h.U32("header_length");
        uint count = h.U32("section_count");
        if (h.U32("flags") != 0) throw h.Bad(20, "flags", "non-zero", $"must be 0 in version {PlanFormat.Version}");
        if (count != (uint)Enum.GetValues<SectionKind>().Length || count > PlanFormat.MaxSections)
            throw h.Bad(16, "section_count", count.ToString(), $"version {PlanFormat.Version} has exactly {Enum.GetValues<SectionKind>().Length} sections");
        if (headerLength != 24 + 24 * count || headerLength > file.Length)
            throw h.Bad(12, "header_length", headerLength.ToString(), $"must be {24 + 24 * count} and within the {file.Length}-byte file");
        var sections = new Dictionary<SectionKind, Cursor>();
        long prevEnd = headerLength;
        for (uint i = 0; i < count; i++)
        {
            long at = 24 + 24 * i;
            uint kind = h.U32("section.kind");
            h.U32("section.reserved");
            ulong off = h.U64("section.offset"), len = h.U64("section.length");
            if (kind != i + 1) throw h.Bad(at, "section.kind", kind.ToString(), $"entry {i} must be kind {i + 1} (sorted, each once)");
            if (off % PlanFormat.SectionAlignment != 0 || (long)off < prevEnd || off > (ulong)file.Length || len > (ulong)file.Length - off)
                throw h.Bad(at + 8, $"section {(SectionKind)kind}.offset/length", $"{off}+{len}", $"must be 4096-aligned, after the previous section and within the {file.Length}-byte file");
            prevEnd = (long)(off + len);
            sections[(SectionKind)kind] = new Cursor(file, (long)off, (long)(off + len), name, ((SectionKind)kind).ToString());
        }

        var fp = ReadFingerprints(sections[SectionKind.Fingerprints]);
        var inputs = ReadInputs(sections[SectionKind.Inputs]);
        var config = ReadConfig(sections[SectionKind.ModelConfig]);
        var tokenizer = ReadTokenizer(sections[SectionKind.Tokenizer]);
        var c = sections[SectionKind.Tensors];
        var tensors = c.List("tensors", 1 << 20, () => ReadTensor(c));
        c.End();
        c = sections[SectionKind.Layers];
        var layers = c.List("layers", 1 << 16, () => ReadLayer(c));
        c.End();
        c = sections[SectionKind.Arenas];
        var arenas = c.List("arenas", 16, () => new PlanArena(c.Str("arena.name"), c.Enum<ArenaKind>("arena.kind", 3), c.Size("arena.size"), c.Size("arena.budget"), (int)c.U32("arena.alignment")));
        var buffers = c.List("buffers", 1 << 20, () => new PlanBuffer(c.Str("buffer.name"), c.Enum<BufferRole>("buffer.role", 5), c.I32("buffer.layer"),
            c.I32("buffer.arena"), c.Size("buffer.offset"), c.Size("buffer.size"), c.I32("buffer.first_use"), c.I32("buffer.last_use")));
        c.End();
        c = sections[SectionKind.Kernels];
        var kernels = c.List("kernels", 1 << 16, () => new KernelInfo(c.U32("kernel.id"), c.Str("kernel.family"), c.U32("kernel.weight_type"), c.Str("kernel.entry"), c.U32("kernel.argument_bytes")));
        c.End();
        c = sections[SectionKind.Instructions];
        var instructions = c.List("instructions", 1 << 24, () => ReadInstruction(c));
        c.End();
        c = sections[SectionKind.IoLists];
        var io = c.List("io_commands", 1 << 26, () =>
        {
            long lba = c.Size("io.lba"); uint blocks = c.U32("io.block_count");
            if (c.U32("io.reserved") != 0) throw c.Bad(c.Pos - 4, "io.reserved", "non-zero", "must be 0");
            return new IoCommand(lba, (int)Math.Min(blocks, int.MaxValue), c.Size("io.staging_offset"));
        });
        c.End();
        c = sections[SectionKind.Ptx];
        var ptx = c.List("ptx", 64, () => new PtxModule((int)c.U32("ptx.sm"), c.Str("ptx.name"), c.Bytes("ptx.text", c.U32("ptx.byte_length")).ToArray()));
        c.End();
        c = sections[SectionKind.Prediction];
        var prediction = new Prediction(c.Size("bytes_resident"), c.Size("bytes_pinned"), c.Size("bytes_nvme"), c.F64("time_resident"),
            c.F64("time_pinned"), c.F64("time_nvme"), c.F64("token_seconds"), c.F64("tokens_per_second"));
        c.End();

        var plan = new Plan(fp, inputs, config, tokenizer, tensors, layers, arenas, buffers, kernels, instructions, io, ptx, prediction);
        PlanValidator.Check(plan, name);
        return plan;
    }

    private static Fingerprints ReadFingerprints(Cursor c)
    {
        var f = new Fingerprints(c.Str("engine_version"), c.Size("model_file_size"), c.Bytes("model_header_sha256", 32).ToArray(),
            c.Size("model_data_offset"), c.Str("model_file_name"), c.Str("hw_profile"), c.Str("hw_backend"), c.Str("gpu_name"),
            (int)c.U32("gpu_sm"), c.Size("gpu_vram_bytes"), (int)c.U32("pcie_gen"), (int)c.U32("pcie_width"), c.Str("driver"), c.Str("model_path"));
        c.End();
        return f;
    }

    private static PlanInputs ReadInputs(Cursor c)
    {
        var i = new PlanInputs(c.I32("n_ctx"), c.I32("n_batch"), c.I32("slots"), c.Size("vram_budget"), c.Size("ram_budget"),
            c.Size("vram_margin"), c.Size("ram_margin"), c.Enum<NvmeMode>("nvme_mode", 2), c.Str("nvme_device"), c.Size("lba_base"),
            (int)c.U32("nvme_block_size"), (int)c.U32("nvme_max_transfer"), c.F64("h2d_bw"), c.F64("device_bw"), c.F64("nvme_bw"),
            c.Enum<ActivationPrecision>("activations", 1));
        c.End();
        return i;
    }

    private static ModelConfig ReadConfig(Cursor c)
    {
        string arch = c.Str("architecture"), name = c.Str("name");
        int embd = c.I32("n_embd"), layers = c.I32("n_layer"), ff = c.I32("n_ff"), heads = c.I32("n_head"), kv = c.I32("n_head_kv"),
            headDim = c.I32("head_dim"), vocab = c.I32("n_vocab"), train = c.I32("n_ctx_train"), rot = c.I32("n_rot");
        var cfg = new ModelConfig
        {
            Architecture = arch, Name = name, EmbeddingLength = embd, LayerCount = layers, FeedForwardLength = ff, HeadCount = heads,
            HeadCountKv = kv, HeadDim = headDim, VocabSize = vocab, TrainedContext = train, RopeDimensions = rot,
            RmsEpsilon = c.F32("rms_eps"), RopeFreqBase = c.F32("rope_freq_base"), HasRopeFreqs = c.Bool("has_rope_freqs"),
            TiedOutput = c.Bool("tied_output"), FileType = c.I64("file_type"),
        };
        c.End();
        foreach (var (f, v) in new[] { ("n_embd", embd), ("n_layer", layers), ("n_ff", ff), ("n_head", heads), ("n_head_kv", kv), ("head_dim", headDim), ("n_vocab", vocab) })
            if (v <= 0) throw c.Bad(c.Start, "model_config." + f, v.ToString(), "must be positive");
        return cfg;
    }

    private static TokenizerData ReadTokenizer(Cursor c)
    {
        string model = c.Str("tokenizer.model"), pre = c.Str("tokenizer.pre");
        var tokens = c.List("tokenizer.tokens", 1 << 24, () => c.Str("token")).ToArray();
        var scores = c.Bool("has_scores") ? c.List("tokenizer.scores", 1 << 24, () => c.F32("score")).ToArray() : null;
        var types = c.Bool("has_types") ? c.List("tokenizer.token_types", 1 << 24, () => c.I32("token_type")).ToArray() : null;
        var merges = c.Bool("has_merges") ? c.List("tokenizer.merges", 1 << 24, () => c.Str("merge")).ToArray() : null;
        if (scores != null && scores.Length != tokens.Length) throw c.Bad(c.Start, "tokenizer.scores", scores.Length.ToString(), $"must match {tokens.Length} tokens");
        if (types != null && types.Length != tokens.Length) throw c.Bad(c.Start, "tokenizer.token_types", types.Length.ToString(), $"must match {tokens.Length} tokens");
        var t = new TokenizerData
        {
            Model = model, Pre = pre, Tokens = tokens, Scores = scores, TokenTypes = types, Merges = merges,
            BosId = c.I32("bos"), EosId = c.I32("eos"), EotId = c.I32("eot"), EomId = c.I32("eom"), UnknownId = c.I32("unk"), PaddingId = c.I32("pad"),
            AddBos = c.Bool("add_bos"), AddEos = c.Bool("add_eos"), AddSpacePrefix = c.Bool("add_space_prefix"),
        };
        if (c.Bool("has_chat_template")) t = t with { ChatTemplate = c.Str("chat_template") };
        c.End();
        return t;
    }

    private static PlanTensor ReadTensor(Cursor c)
    {
        string name = c.Str("tensor.name");
        uint type = c.U32("tensor.ggml_type");
        if (!GgmlTypeInfo.IsKnown(type)) throw c.Bad(c.Pos - 4, $"tensor {name}.ggml_type", type.ToString(), "unknown ggml type");
        uint nd = c.U32("tensor.n_dims");
        if (nd is 0 or > 4) throw c.Bad(c.Pos - 4, $"tensor {name}.n_dims", nd.ToString(), "must be 1..4");
        var dims = new long[nd];
        for (int i = 0; i < nd; i++) { dims[i] = c.Size("tensor.dim"); if (dims[i] <= 0) throw c.Bad(c.Pos - 8, $"tensor {name}.dims", dims[i].ToString(), "must be positive"); }
        return new PlanTensor(name, (GgmlType)type, dims, c.Size("tensor.file_offset"), c.Size("tensor.size"), c.I32("tensor.layer"),
            c.Enum<Tier>("tensor.tier", 3), c.I32("tensor.home_arena"), c.Size("tensor.home_offset"), c.I32("tensor.device_arena"), c.Size("tensor.device_offset"));
    }

    private static PlanLayer ReadLayer(Cursor c) =>
        new(c.Enum<Tier>("layer.tier", 2), c.I32("layer.stream_index"), c.I32("layer.slot"), c.Size("layer.image_file_offset"), c.Size("layer.image_size"),
            c.Size("layer.home_offset"), c.Size("layer.slot_offset"), (int)Math.Min(c.U32("layer.io_first"), int.MaxValue),
            (int)Math.Min(c.U32("layer.io_count"), int.MaxValue), c.Str("layer.reason"));

    private static Instruction ReadInstruction(Cursor c)
    {
        var op = c.Enum<Opcode>("instruction.opcode", 3, min: 1);
        int layer = c.I32("instruction.layer");
        if (op != Opcode.Launch) return new Instruction(op, layer);
        uint kernel = c.U32("instruction.kernel_id");
        uint batch = c.U32("instruction.batch_kernel_id");
        uint shortKernel = c.U32("instruction.short_kernel_id");
        string name = c.Str("instruction.op_name");
        var shape = new LaunchShape(c.U32("grid_x"), c.U32("grid_y"), c.U32("grid_z"), c.U32("block_x"), c.U32("block_y"), c.U32("block_z"), c.U32("shared_bytes"));
        var args = c.List("instruction.args", 64, () => new KernelArg(c.Enum<ArgKind>("arg.kind", 5), c.I64("arg.value"))).ToArray();
        return new Instruction(op, layer, kernel, name, shape, args, batch, shortKernel);
    }

    /// <summary>A bounds-checked little-endian reader over one section.</summary>
    internal sealed class Cursor(byte[] file, long start, long end, string name, string section)
    {
        public long Pos = start;
        public readonly long Start = start;

        public PlanException Bad(long at, string field, string value, string why) =>
            new($"{name}: {section} section, offset {at}: {field} = {value}: {why}");

        private ReadOnlySpan<byte> Take(int n, string field)
        {
            if (n < 0 || Pos + n > end) throw Bad(Pos, field, $"{n} bytes", $"runs past the end of the section ({end - Pos} bytes left)");
            var s = file.AsSpan((int)Pos, n);
            Pos += n;
            return s;
        }

        public uint U32(string f) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, f));
        public ulong U64(string f) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, f));
        public int I32(string f) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, f));
        public long I64(string f) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, f));
        public float F32(string f) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, f));
        public double F64(string f)
        {
            double v = BinaryPrimitives.ReadDoubleLittleEndian(Take(8, f));
            return double.IsFinite(v) && v >= 0 ? v : throw Bad(Pos - 8, f, v.ToString(System.Globalization.CultureInfo.InvariantCulture), "must be finite and ≥ 0");
        }
        public ReadOnlySpan<byte> Bytes(string f, uint n) => Take(checked((int)Math.Min(n, int.MaxValue)), f);

        /// <summary>A u64 size/offset: must fit in a signed 64-bit value below 2^62.</summary>
        public long Size(string f)
        {
            ulong v = U64(f);
            return v < 1UL << 62 ? (long)v : throw Bad(Pos - 8, f, v.ToString(), "larger than 2^62");
        }

        public bool Bool(string f)
        {
            byte b = Take(1, f)[0];
            return b <= 1 ? b == 1 : throw Bad(Pos - 1, f, b.ToString(), "must be 0 or 1");
        }

        public T Enum<T>(string f, int max, int min = 0) where T : struct, System.Enum
        {
            byte b = Take(1, f)[0];
            if (b < min || b > max) throw Bad(Pos - 1, f, b.ToString(), $"must be {min}..{max}");
            return (T)(object)b;
        }

        public string Str(string f)
        {
            uint n = U32(f + ".length");
            if (n > PlanFormat.MaxString) throw Bad(Pos - 4, f, $"{n} bytes", "longer than the format's 1 MiB string limit");
            try { return new UTF8Encoding(false, true).GetString(Take((int)n, f)); }
            catch (DecoderFallbackException) { throw Bad(Pos - n, f, "(bytes)", "not valid UTF-8"); }
        }

        public List<T> List<T>(string f, int limit, Func<T> one)
        {
            uint n = U32(f + ".count");
            if (n > limit || n > end - Pos) throw Bad(Pos - 4, f + ".count", n.ToString(), $"more than {Math.Min(limit, end - Pos)} fit");
            var l = new List<T>((int)n);
            for (uint i = 0; i < n; i++) l.Add(one());
            return l;
        }

        public void End()
        {
            if (Pos != end) throw Bad(Pos, "section length", (end - Start).ToString(), $"{end - Pos} bytes left unread");
        }
    }
}

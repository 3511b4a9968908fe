namespace Engine.Graph;

// The layer-graph IR: what the Roslyn generator emits from src/Graph/llama.graph and what the planner consumes.
// It is plain data (no behaviour): shapes are expressions over the model's hyper-parameters, evaluated by the
// planner for a concrete model.

/// <summary>Operation kinds of a Llama layer. A fused op is its own kind, declared as fused in the spec.</summary>
public enum OpKind
{
    Embedding,      // x[n_embd] = dequant(token_embd[token])
    RmsNorm,        // y = x / rms(x) * w
    MatMul,         // y[rows] = W[rows, cols] · x[cols]  (GEMV for one token, GEMM for a batch)
    Rope,           // rotate q/k pairs by position (normal mode; Llama 3.1 frequency factors when present)
    KvStore,        // write k, v of this position into the layer's cache
    RopeKvStore,    // fused rope and kv_store: q rotated in place, k rotated into the cache with v
    Attention,      // GQA attention of q over the cache
    AttentionQuantize, // fused attention and the quantize of its output (the o projection's 8-bit input)
    Add,            // residual add
    SwiGlu,         // y = silu(gate) * up
    MatMulSwiGlu,   // fused gate+up GEMV and SwiGLU
    MatMulAdd,      // y += W · x: a projection added to the residual stream (fused GEMV and add)
    MatMulQkv,      // fused q, k and v projections of one input (one GEMV launch over the three matrices)
    Copy,
    Quantize,       // y = x as 8-bit integers per block of 32 with a scale and the block's integer sum (matmul input)
    ArgMax,         // tokens[0] = argmax of the last logits row, positions[0] = its position + 1 (greedy feedback)
}

/// <summary>What a tensor is to the program.</summary>
public enum TensorRole
{
    Input,       // token ids / positions
    Weight,      // a GGUF tensor; WeightRole names it (see Engine.Plans.Gguf.TensorNames)
    Activation,  // a scratch buffer, placed by lifetime
    KvCache,     // per-layer persistent cache
    Output,      // logits
}

/// <summary>A tensor of the program. <see cref="Shape"/> entries are expressions over hyper-parameter names
/// (n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab, n_ctx, n_batch), row length first as in GGUF.</summary>
public sealed record GraphTensor(string Name, TensorRole Role, IReadOnlyList<string> Shape, string? WeightRole = null,
    bool PerLayer = false)
{
    /// <summary>Element type as the spec writes it: f32, f16, i32, or "any" for a weight whose type comes from the
    /// GGUF file.</summary>
    public string ElementType { get; init; } = "f32";

    /// <summary>An optional weight may be absent from the file (rope_freqs before Llama 3.1, output when the
    /// embedding is tied); <see cref="Fallback"/> names the tensor used in its place, null for "pass an empty view".</summary>
    public bool Optional { get; init; }
    public string? Fallback { get; init; }

    /// <summary>Index of the first and last op (in <see cref="LayerProgram.AllOps"/> order) that touch this tensor;
    /// -1 when unused. Computed by the generator from op order.</summary>
    public int FirstUse { get; init; } = -1;
    public int LastUse { get; init; } = -1;
}

/// <summary>One operation: a kernel family applied to named tensors. <see cref="Weight"/> is the weight tensor
/// whose format picks the kernel specialisation (null for format-free ops).</summary>
public sealed record GraphOp(OpKind Kind, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    string? Weight = null)
{
    /// <summary>Kernel family that runs this op (a <see cref="KernelFamily.Name"/>).</summary>
    public string Kernel { get; init; } = "";

    /// <summary>For a fused op, the op kinds it stands for, in order (empty otherwise). The planner falls back to
    /// those ops when the fused kernel cannot be used (e.g. gate and up weights of different formats).</summary>
    public IReadOnlyList<OpKind> Fuses { get; init; } = [];

    /// <summary>Kernel family that runs this op in steps of many tokens (prefill) where it has an entry point for the
    /// weight's format (null: <see cref="Kernel"/> always). Same arguments as <see cref="Kernel"/>, so the runtime
    /// swaps the function and the grid, not the argument block (docs/graph-spec.md "batch").</summary>
    public string? Batch { get; init; }

    /// <summary>Kernel family that runs this op in one-token steps whose context is short (null: <see cref="Kernel"/>
    /// always): the same arguments and formats as <see cref="Kernel"/>, correct at any context length; the CUDA runtime
    /// picks it by the step's position (docs/graph-spec.md "short").</summary>
    public string? Short { get; init; }
}

/// <summary>A kernel family: one generic ILGPU body (class <see cref="Body"/> in kernels/) specialised for each of
/// <see cref="Formats"/> (empty: one format-free entry point). Entry point names are <see cref="EntryPoint"/>.</summary>
public sealed record KernelFamily(string Name, string Body, bool Implicit, IReadOnlyList<string> Formats)
{
    /// <summary>The family's arguments in C# (= PTX) order, after an implicit kernel's extent.</summary>
    public IReadOnlyList<KernelArgument> Args { get; init; } = [];

    /// <summary>Threads per group (block).</summary>
    public int Block { get; init; }

    /// <summary>Explicit kernels: grid (x[, y[, z]]) as expressions over the family's i32 arguments.</summary>
    public IReadOnlyList<string> Grid { get; init; } = [];

    /// <summary>Implicit kernels: total threads as an expression over the family's i32 arguments; the grid is
    /// ceil_div(extent, block) and the kernel bounds-checks itself.</summary>
    public string? Extent { get; init; }

    /// <summary>Formats (a subset of <see cref="Formats"/>) with a second entry point that reads f32 activations where
    /// the format's own reads int8 ones (spec attribute f32act=; the plan's f32 activation mode).</summary>
    public IReadOnlyList<string> F32ActFormats { get; init; } = [];

    /// <summary>The entry point of this family for a weight format (ggml type name, or a pair A/B: Body_A_B), or the
    /// format-free one; <paramref name="f32Activations"/> names the f32act variant (Body_Format_F32Act).</summary>
    public string EntryPoint(string? format, bool f32Activations = false) =>
        Formats.Count == 0 ? Body
        : format != null && Formats.Contains(format) && !f32Activations ? Body + "_" + format.Replace('/', '_')
        : format != null && F32ActFormats.Contains(format) && f32Activations ? Body + "_" + format.Replace('/', '_') + "_F32Act"
        : throw new ArgumentException("kernel family " + Name + " has no " + (f32Activations ? "f32-activation " : "") + "entry point for format " + (format ?? "(none)"));
}

/// <summary>A kernel-family argument: <see cref="Type"/> is view&lt;u8|i32|f32|f16&gt;, i32 or f32 as the spec writes it.</summary>
public sealed record KernelArgument(string Name, string Type)
{
    public bool IsView => Type.StartsWith("view<", StringComparison.Ordinal);

    /// <summary>Bytes per element of a view (u8 1, f16 2, i32/f32 4).</summary>
    public int ElementBytes => Type switch { "view<u8>" => 1, "view<f16>" => 2, _ => 4 };
}

/// <summary>The whole program: ops before the layers (embedding), the per-layer body (repeated n_layer times),
/// and ops after (final norm, output projection).</summary>
public sealed record LayerProgram(string Name, IReadOnlyList<GraphTensor> Tensors, IReadOnlyList<GraphOp> Prologue,
    IReadOnlyList<GraphOp> Layer, IReadOnlyList<GraphOp> Epilogue)
{
    /// <summary>Hyper-parameter names the shapes are written in.</summary>
    public IReadOnlyList<string> Parameters { get; init; } = [];

    /// <summary>Kernel families, in spec order.</summary>
    public IReadOnlyList<KernelFamily> Kernels { get; init; } = [];

    public KernelFamily Kernel(string name) =>
        Kernels.FirstOrDefault(k => k.Name == name) ?? throw new KeyNotFoundException("no kernel family " + name + " in " + Name);

    public IEnumerable<GraphOp> AllOps => Prologue.Concat(Layer).Concat(Epilogue);

    public GraphTensor Tensor(string name) =>
        Tensors.FirstOrDefault(t => t.Name == name) ?? throw new KeyNotFoundException("no tensor " + name + " in " + Name);
}

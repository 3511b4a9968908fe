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
    Attention,      // GQA attention of q over the cache
    Add,            // residual add
    SwiGlu,         // y = silu(gate) * up
    MatMulSwiGlu,   // fused gate+up GEMV and SwiGLU
    Copy,
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
    /// <summary>Index of the first and last op (in <see cref="LayerProgram.AllOps"/> order) that touch this tensor;
    /// -1 when unused. Computed by the generator from op order.</summary>
    public int FirstUse { get; init; } = -1;
    public int LastUse { get; init; } = -1;
}

/// <summary>One operation: a kernel family applied to named tensors. <see cref="Weight"/> is the weight tensor
/// whose format picks the kernel specialisation (null for format-free ops).</summary>
public sealed record GraphOp(OpKind Kind, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    string? Weight = null);

/// <summary>The whole program: ops before the layers (embedding), the per-layer body (repeated n_layer times),
/// and ops after (final norm, output projection).</summary>
public sealed record LayerProgram(string Name, IReadOnlyList<GraphTensor> Tensors, IReadOnlyList<GraphOp> Prologue,
    IReadOnlyList<GraphOp> Layer, IReadOnlyList<GraphOp> Epilogue)
{
    public IEnumerable<GraphOp> AllOps => Prologue.Concat(Layer).Concat(Epilogue);

    public GraphTensor Tensor(string name) =>
        Tensors.FirstOrDefault(t => t.Name == name) ?? throw new KeyNotFoundException("no tensor " + name + " in " + Name);
}

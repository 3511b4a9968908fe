namespace Engine.Runtime.Cpu;

/// <summary>What one step of the CPU backend's token loop does. Each kind is the meaning of a kernel family of the
/// layer-graph spec (src/Graph/llama.graph, docs/graph-spec.md) run on the CPU, or one of the streamer's two actions.</summary>
public enum CpuStepKind : byte
{
    /// <summary>embedding: y[b] = table[tokens[b]], dequantized.</summary>
    Embedding,
    /// <summary>rms_norm: y = x / sqrt(mean(x²) + eps) · w, per token.</summary>
    RmsNorm,
    /// <summary>gemv: y_i = W_i · x for one to three matrices sharing x (consecutive plan launches fused at load).</summary>
    MatMul,
    /// <summary>gemv_add: y += W · x (the residual add fused into a projection).</summary>
    MatMulAdd,
    /// <summary>gemv_swiglu: y = silu(W_gate · x) ⊙ (W_up · x).</summary>
    MatMulSwiGlu,
    /// <summary>rope: q and k rotated in place at the pass's positions.</summary>
    Rope,
    /// <summary>kv_store: k and v rounded to f16 into the layer's cache rows at the pass's positions.</summary>
    KvStore,
    /// <summary>rope_kv_store: rope, then kv_store of the rotated k and v (the fused op; k is rotated in place, its
    /// buffer being dead after the op).</summary>
    RopeKvStore,
    /// <summary>attention: causal GQA over the layer's cache.</summary>
    Attention,
    /// <summary>add: x += y.</summary>
    Add,
    /// <summary>swiglu: y = silu(gate) ⊙ up.</summary>
    SwiGlu,
    /// <summary>argmax: tokens[0] = the argmax of the pass's last logits row, positions[0] = its position + 1 (the
    /// greedy feedback a device decode loop reads; skipped, as the logits are, in a pass whose logits nobody reads).</summary>
    ArgMax,
    /// <summary>The plan's wait: block until a streamed layer's weights are in its slot.</summary>
    Wait,
    /// <summary>After a streamed layer's last launch: its slot may take the next layer that uses it.</summary>
    Release,
}

/// <summary>One pre-resolved step of the token loop: every pointer, matrix and scalar bound at load from the plan's
/// launch (or fused launches), so running it is a switch on <see cref="Kind"/>. Per-token element counts let a step
/// of n tokens run on the first n rows of its buffers (row-major [n_batch, per-token]).</summary>
public unsafe struct CpuStep
{
    public CpuStepKind Kind;
    /// <summary>The layer (−1: prologue/epilogue); for Wait/Release the streamed layer.</summary>
    public int Layer;
    /// <summary>An epilogue step (after the last layer): it only feeds the logits, so it runs over the rows whose
    /// logits are wanted, or not at all in a pass whose logits nobody reads.</summary>
    public bool Epilogue;
    /// <summary>Index of the plan instruction this step comes from (the first, when launches were fused); −1 for the
    /// streaming steps.</summary>
    public int Instruction;
    /// <summary>Plan launches this step stands for (fused matmuls and the quantize launches folded into them).</summary>
    public int Launches;

    public WeightMatrix W0, W1, W2;   // MatMul: up to three; MatMulSwiGlu: gate, up; MatMulAdd / Embedding: W0
    public int Matrices;              // MatMul: how many of W0..W2
    public bool F32Activations;       // MatMul*: an f32act kernel (quantized rows dotted with f32 x, not its int8 quantization)
    public float* X;                  // input [n, per-token]; Add: the accumulated x; SwiGlu: gate; ArgMax: the logits
    public float* X2;                 // Rope, RopeKvStore: k; KvStore: v; SwiGlu: up; Add: y
    public float* X3;                 // RopeKvStore: v
    public float* Y0, Y1, Y2;         // outputs (MatMul: one per matrix; Rope: none)
    public float* Weight;             // RmsNorm: the norm vector [cols]
    public int* Tokens;               // Embedding: the plan's token ids; ArgMax: written at [0]
    public int* Positions;            // Rope, KvStore, Attention: the pass's positions (consecutive from [0]); ArgMax: [0] written
    public Half* KCache, VCache;      // KvStore, Attention: the layer's cache [ctx, kv_dim]
    public int Cols;                  // per-token elements of the input (RmsNorm, Add, SwiGlu, KvStore: kv_dim)
    public float Scalar;              // RmsNorm: eps; Attention: scale
}

/// <summary>A step as tests and logs see it: kind, layer, the plan instructions it covers, and for a matmul whether it
/// reads f32 activations (an f32act kernel).</summary>
public readonly record struct CpuStepInfo(CpuStepKind Kind, int Layer, int Instruction, int Launches, bool Epilogue, bool F32Activations = false);

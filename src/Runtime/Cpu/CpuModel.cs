using Engine.Plans.Model;
using Engine.Plans.PlanFile;
using Engine.Runtime.Streaming;

namespace Engine.Runtime.Cpu;

/// <summary>How the CPU backend runs a plan; every size (n_ctx, n_batch, buffers) comes from the plan.</summary>
public sealed record CpuModelOptions
{
    /// <summary>Threads of the worker pool, the caller included.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>A plan replayed on the CPU (llama.cpp llm_build_llama is the reference graph the plan's layer program
/// encodes: x = embd; per layer h = x + Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)),
/// x = h + Wdown·(silu(Wgate·n₂(h)) ⊙ Wup·n₂(h)); logits = Wout·n(x)). At load the plan's instruction stream becomes a
/// <see cref="CpuProgram"/>: an array of pre-resolved steps over one host workspace laid out by the plan's buffer
/// table; a pass writes the tokens and positions into the plan's input buffers, runs the steps in order (a switch per
/// step, nothing allocated or looked up) and copies the wanted rows of the plan's logits buffer out. Weights stay in
/// the mapped GGUF, except those of streamed layers, which a <see cref="LayerStreamer"/> brings into their slot before
/// the plan's wait for the layer returns (docs/streaming.md). Greedy decoding (<see cref="DecodeGreedy"/>) runs
/// passes back to back on the inputs the plan's argmax step leaves, as the CUDA backend's greedy graph does (here it
/// saves the logits row's copy and the sampler's second argmax).</summary>
public sealed unsafe class CpuModel : ILanguageModel, IGreedyDecoder, IDisposable
{
    public ModelConfig Config { get; }
    public CpuWeights Weights { get; }
    public int MaxContext { get; }
    public int MaxBatch { get; }
    public int Threads => _pool.ThreadCount;
    /// <summary>The steps the token loop runs, in order (tests: the loop follows the plan).</summary>
    public IReadOnlyList<CpuStepInfo> Steps => _program.Describe();

    private readonly CpuProgram _program;
    private readonly CpuStep[] _steps;
    private readonly WorkerPool _pool;
    private readonly MatMul _matMul;
    private readonly Attention _attention;
    private readonly Rope? _rope;
    private readonly LayerStreamer? _streamer;   // null when every layer is resident
    private readonly float* _scratch;            // [n_batch, widest fused output] gemv_add's product, gemv_swiglu's up
    private bool _disposed;

    /// <summary>The model of <paramref name="plan"/> over <paramref name="weights"/> (bound through the plan's tensor
    /// table); with a <paramref name="streamer"/>, the streamed layers' matrices are bound to their slots and the
    /// plan's waits block until a layer's weights are there (the streamer stays the caller's to dispose). A plan the
    /// CPU backend cannot run is one <see cref="PlanException"/> line.</summary>
    public CpuModel(Plan plan, CpuWeights weights, CpuModelOptions options, LayerStreamer? streamer = null)
    {
        if (options.Threads < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "Threads must be positive");
        var config = plan.Config;
        if (config.RopeDimensions % 2 != 0 || config.RopeDimensions > config.HeadDim)
            throw new ArgumentException($"rope dimension count {config.RopeDimensions} must be even and at most head_dim {config.HeadDim}");
        Config = config;
        Weights = weights;
        _streamer = streamer;
        _program = CpuProgram.Build(plan, weights, streamer != null);
        _steps = _program.Steps;
        MaxContext = _program.Context;
        MaxBatch = _program.Batch;
        _pool = new WorkerPool(options.Threads);
        _matMul = new MatMul(options.Threads, _program.MaxMatMulColumns, MaxBatch);
        _attention = new Attention(options.Threads, MaxContext, config.HeadCount, config.HeadCountKv, config.HeadDim);
        if (_program.Rope is { } r) _rope = new Rope(MaxContext, config.RopeDimensions, r.FreqBase, r.FreqFactors, r.FreqScale);
        _scratch = NativeBuffers.Floats((long)MaxBatch * _program.MaxScratchRows);
    }

    public void Forward(ReadOnlySpan<int> tokens, int startPos, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int n = tokens.Length, vocab = Config.VocabSize;
        bool all = ForwardArguments.Check(this, tokens, startPos, logits);

        for (int done = 0; done < n; done += MaxBatch)
        {
            int count = Math.Min(MaxBatch, n - done);
            bool last = done + count == n;
            for (int i = 0; i < count; i++) { _program.Tokens[i] = tokens[done + i]; _program.Positions[i] = startPos + done + i; }
            // Logits rows wanted: every row when all are, else the last pass's last row, else none.
            int firstRow = all ? 0 : last ? count - 1 : 0, rows = all ? count : last ? 1 : 0;
            Pass(count, firstRow, rows);
            if (rows > 0)
                new ReadOnlySpan<float>(_program.Logits + (long)firstRow * vocab, rows * vocab)
                    .CopyTo(all ? logits.Slice(done * vocab, rows * vocab) : logits);
        }
    }

    /// <summary>Plans with the argmax op (every plan of llama.graph since it has one).</summary>
    public bool CanDecodeGreedy => _steps.Any(s => s.Kind == CpuStepKind.ArgMax);

    public int DecodeGreedy(int token, int startPos, int maxSteps, Func<int, bool> onToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!CanDecodeGreedy) throw new InvalidOperationException("this plan has no argmax op: sample on the host");
        ForwardArguments.CheckGreedy(this, token, startPos, maxSteps);
        _program.Tokens[0] = token;
        _program.Positions[0] = startPos;
        for (int step = 0; step < maxSteps; step++)
        {
            Pass(1, 0, 1);   // the argmax step writes the next token and position into the inputs
            if (!onToken(_program.Tokens[0])) return step + 1;
        }
        return maxSteps;
    }

    /// <summary>One pass of the plan over n tokens (at most n_batch); the epilogue over rows firstRow.. only.</summary>
    private void Pass(int n, int firstRow, int rows)
    {
        var steps = _steps;
        for (int i = 0; i < steps.Length; i++)
        {
            ref readonly var s = ref steps[i];
            int first = 0, count = n;
            if (s.Epilogue)
            {
                if (rows == 0) continue;
                first = firstRow; count = rows;
            }
            switch (s.Kind)
            {
                case CpuStepKind.Embedding:
                    Embedding.Lookup(s.W0, new ReadOnlySpan<int>(s.Tokens + first, count), s.Y0 + (long)first * s.Cols);
                    break;
                case CpuStepKind.RmsNorm:
                    RmsNorm.Apply(s.X + (long)first * s.Cols, s.Weight, s.Y0 + (long)first * s.Cols, count, s.Cols, s.Scalar);
                    break;
                case CpuStepKind.MatMul:
                {
                    float* x = s.X + (long)first * s.W0.Columns;
                    if (s.Matrices == 1) _matMul.Run(_pool, s.W0, x, count, s.Y0 + (long)first * s.W0.Rows, f32Activations: s.F32Activations);
                    else _matMul.Run(_pool, x, count, s.W0, s.Y0 + (long)first * s.W0.Rows, s.W1, s.Y1 + (long)first * s.W1.Rows,
                        s.W2, s.Matrices == 3 ? s.Y2 + (long)first * s.W2.Rows : null, s.F32Activations);
                    break;
                }
                case CpuStepKind.MatMulAdd:
                {
                    int rowsOut = s.W0.Rows;
                    _matMul.Run(_pool, s.W0, s.X + (long)first * s.W0.Columns, count, _scratch, f32Activations: s.F32Activations);
                    Add.InPlace(s.Y0 + (long)first * rowsOut, _scratch, (long)count * rowsOut);
                    break;
                }
                case CpuStepKind.MatMulSwiGlu:
                {
                    int rowsOut = s.W0.Rows;
                    float* y = s.Y0 + (long)first * rowsOut;
                    _matMul.Run(_pool, s.X + (long)first * s.W0.Columns, count, s.W0, y, s.W1, _scratch, f32Activations: s.F32Activations);
                    SwiGlu.Apply(y, _scratch, y, (long)count * rowsOut);
                    break;
                }
                case CpuStepKind.Rope or CpuStepKind.RopeKvStore:
                {
                    _rope!.Apply(s.X, count, Config.HeadCount, Config.HeadDim, s.Positions[0]);
                    _rope.Apply(s.X2, count, Config.HeadCountKv, Config.HeadDim, s.Positions[0]);
                    if (s.Kind == CpuStepKind.Rope) break;
                    long at = (long)s.Positions[0] * s.Cols;   // rope_kv_store: the rotated k and v into the caches
                    KvStore.Write(s.X2, s.X3, s.KCache + at, s.VCache + at, count * s.Cols);
                    break;
                }
                case CpuStepKind.KvStore:
                {
                    long at = (long)s.Positions[0] * s.Cols;
                    KvStore.Write(s.X, s.X2, s.KCache + at, s.VCache + at, count * s.Cols);
                    break;
                }
                case CpuStepKind.Attention:
                    _attention.Run(_pool, s.X, s.KCache, s.VCache, s.Y0, count, s.Positions[0], s.Scalar);
                    break;
                case CpuStepKind.Add:
                    Add.InPlace(s.X + (long)first * s.Cols, s.X2 + (long)first * s.Cols, (long)count * s.Cols);
                    break;
                case CpuStepKind.SwiGlu:
                    SwiGlu.Apply(s.X + (long)first * s.Cols, s.X2 + (long)first * s.Cols, s.Y0 + (long)first * s.Cols, (long)count * s.Cols);
                    break;
                case CpuStepKind.ArgMax:
                    s.Tokens[0] = Sampling.Sampler.ArgMax(new ReadOnlySpan<float>(s.X + (long)(n - 1) * s.Cols, s.Cols));
                    s.Positions[0] = s.Positions[n - 1] + 1;
                    break;
                case CpuStepKind.Wait:
                    _streamer!.WaitLoaded(s.Layer);
                    break;
                case CpuStepKind.Release:
                    _streamer!.Release(s.Layer);
                    break;
            }
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _pool.Dispose();
        _matMul.Dispose();
        _attention.Dispose();
        _rope?.Dispose();
        _program.Dispose();
        NativeBuffers.Free(_scratch);
    }
}

using Engine.Plans.Model;
using Engine.Runtime.Streaming;

namespace Engine.Runtime.Cpu;

/// <summary>Sizes fixed at load: every buffer is allocated for these once.</summary>
public sealed record CpuModelOptions
{
    /// <summary>Longest sequence (prompt + generated) the KV cache holds.</summary>
    public int MaxContext { get; init; } = 2048;
    /// <summary>Most tokens one batched pass processes; longer prompts are split into passes of this size.</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>Threads of the worker pool, the caller included.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>A Llama-family model on the CPU (llama.cpp llm_build_llama is the reference graph):
/// x = embd; per layer h = x + Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)),
/// x = h + Wdown·(silu(Wgate·n₂(h)) ⊙ Wup·n₂(h)); logits = Wout·n(x). Weights stay in the mapped GGUF, except those
/// of streamed layers, which a <see cref="LayerStreamer"/> brings into their slot before the layer runs
/// (docs/streaming.md); activations and the logits are f32 and the KV cache f16, in buffers allocated once here.</summary>
public sealed unsafe class CpuModel : ILanguageModel, IDisposable
{
    public ModelConfig Config { get; }
    public CpuWeights Weights { get; }
    public int MaxContext { get; }
    public int MaxBatch { get; }
    public int Threads => _pool.ThreadCount;

    private readonly WorkerPool _pool;
    private readonly MatMul _matMul;
    private readonly Attention _attention;
    private readonly Rope _rope;
    private readonly LayerStreamer? _streamer;   // null when every layer is resident
    private readonly float*[] _norms;    // [layer · 2 + 0/1] attn/ffn norm, then output norm at the end; [n_embd]

    // Activations for one batch (B = MaxBatch).
    private readonly float* _x;          // [B, n_embd] residual stream
    private readonly float* _xb;         // [B, n_embd] normed input / projection output
    private readonly float* _q;          // [B, n_head·head_dim]
    private readonly float* _k;          // [B, n_head_kv·head_dim] this pass's keys before they are stored in f16
    private readonly float* _v;          // [B, n_head_kv·head_dim] this pass's values before they are stored in f16
    private readonly float* _att;        // [B, n_head·head_dim] attention output
    private readonly float* _gate;       // [B, n_ff]
    private readonly float* _up;         // [B, n_ff]
    // KV cache, f16 as llama.cpp's default and the CUDA backend's: [n_layer, MaxContext, n_head_kv·head_dim] each.
    private readonly Half* _keys;
    private readonly Half* _values;
    private bool _disposed;

    /// <summary>A model over <paramref name="weights"/>; with a <paramref name="streamer"/>, the streamed layers'
    /// matrices are bound to their slots and each layer waits for its weights before it runs (the streamer stays the
    /// caller's to dispose).</summary>
    public CpuModel(ModelConfig config, CpuWeights weights, CpuModelOptions options, LayerStreamer? streamer = null)
    {
        if (options.MaxContext < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MaxContext, "MaxContext must be positive");
        if (options.MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatch, "MaxBatch must be positive");
        if (options.Threads < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "Threads must be positive");
        if (config.RopeDimensions % 2 != 0 || config.RopeDimensions > config.HeadDim)
            throw new ArgumentException($"rope dimension count {config.RopeDimensions} must be even and at most head_dim {config.HeadDim}");
        Config = config;
        Weights = weights;
        _streamer = streamer;
        MaxContext = options.MaxContext;
        MaxBatch = options.MaxBatch;
        int d = config.EmbeddingLength, B = MaxBatch;
        _pool = new WorkerPool(options.Threads);
        _matMul = new MatMul(options.Threads, Math.Max(d, Math.Max(config.FeedForwardLength, config.QDim)), MaxBatch);
        _attention = new Attention(options.Threads, MaxContext, config.HeadCount, config.HeadCountKv, config.HeadDim);
        _rope = new Rope(MaxContext, config.RopeDimensions, config.RopeFreqBase, weights.RopeFreqs);
        _norms = new float*[config.LayerCount * 2 + 1];
        for (int l = 0; l < config.LayerCount; l++)
        {
            _norms[2 * l] = Copy(weights.Layers[l].AttnNorm);
            _norms[2 * l + 1] = Copy(weights.Layers[l].FfnNorm);
        }
        _norms[^1] = Copy(weights.OutputNorm);
        _x = NativeBuffers.Floats((long)B * d);
        _xb = NativeBuffers.Floats((long)B * d);
        _q = NativeBuffers.Floats((long)B * config.QDim);
        _k = NativeBuffers.Floats((long)B * config.KvDim);
        _v = NativeBuffers.Floats((long)B * config.KvDim);
        _att = NativeBuffers.Floats((long)B * config.QDim);
        _gate = NativeBuffers.Floats((long)B * config.FeedForwardLength);
        _up = NativeBuffers.Floats((long)B * config.FeedForwardLength);
        long cache = (long)config.LayerCount * MaxContext * config.KvDim;
        _keys = NativeBuffers.Halves(cache);
        _values = NativeBuffers.Halves(cache);
    }

    private static float* Copy(float[] v)
    {
        float* p = NativeBuffers.Floats(v.Length);
        v.CopyTo(new Span<float>(p, v.Length));
        return p;
    }

    public void Forward(ReadOnlySpan<int> tokens, int startPos, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int n = tokens.Length, vocab = Config.VocabSize;
        bool all = ForwardArguments.Check(this, tokens, startPos, logits);

        fixed (float* pl = logits)
            for (int done = 0; done < n; done += MaxBatch)
            {
                int count = Math.Min(MaxBatch, n - done);
                bool lastPass = done + count == n;
                float* rows = all ? pl + (long)done * vocab : lastPass ? pl : null;
                Pass(tokens.Slice(done, count), startPos + done, rows, all);
            }
    }

    /// <summary>One batched pass over at most MaxBatch tokens; logits (when not null) of every token or the last.</summary>
    private void Pass(ReadOnlySpan<int> tokens, int pos, float* logits, bool allLogits)
    {
        var c = Config;
        int n = tokens.Length, d = c.EmbeddingLength, kvDim = c.KvDim, ff = c.FeedForwardLength;
        Embedding.Lookup(Weights.TokenEmbedding, tokens, _x);
        for (int l = 0; l < c.LayerCount; l++)
        {
            var w = Weights.Layers[l];
            Half* layerKeys = _keys + (long)l * MaxContext * kvDim, layerValues = _values + (long)l * MaxContext * kvDim;

            _streamer?.WaitLoaded(l);   // a streamed layer's weights are in its slot from here until Release
            RmsNorm.Apply(_x, _norms[2 * l], _xb, n, d, c.RmsEpsilon);
            _matMul.Run(_pool, _xb, n, w.Q, _q, w.K, _k, w.V, _v);
            _rope.Apply(_q, n, c.HeadCount, c.HeadDim, pos);
            _rope.Apply(_k, n, c.HeadCountKv, c.HeadDim, pos);
            KvStore.Write(_k, _v, layerKeys + (long)pos * kvDim, layerValues + (long)pos * kvDim, n * kvDim);
            _attention.Run(_pool, _q, layerKeys, layerValues, _att, n, pos);
            _matMul.Run(_pool, w.O, _att, n, _xb);
            Add.InPlace(_x, _xb, (long)n * d);

            RmsNorm.Apply(_x, _norms[2 * l + 1], _xb, n, d, c.RmsEpsilon);
            _matMul.Run(_pool, _xb, n, w.Gate, _gate, w.Up, _up);
            SwiGlu.Apply(_gate, _up, (long)n * ff);
            _matMul.Run(_pool, w.Down, _gate, n, _xb);
            _streamer?.Release(l);      // its slot may take the next layer that uses it
            Add.InPlace(_x, _xb, (long)n * d);
        }
        if (logits == null) return;
        if (allLogits)
        {
            RmsNorm.Apply(_x, _norms[^1], _xb, n, d, c.RmsEpsilon);
            _matMul.Run(_pool, Weights.Output, _xb, n, logits);
        }
        else
        {
            RmsNorm.Apply(_x + (long)(n - 1) * d, _norms[^1], _xb, 1, d, c.RmsEpsilon);
            _matMul.Run(_pool, Weights.Output, _xb, 1, logits);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _pool.Dispose();
        _matMul.Dispose();
        _attention.Dispose();
        _rope.Dispose();
        foreach (var p in _norms) NativeBuffers.Free(p);
        NativeBuffers.Free(_x); NativeBuffers.Free(_xb); NativeBuffers.Free(_q); NativeBuffers.Free(_k); NativeBuffers.Free(_v); NativeBuffers.Free(_att);
        NativeBuffers.Free(_gate); NativeBuffers.Free(_up); NativeBuffers.Free(_keys); NativeBuffers.Free(_values);
    }
}

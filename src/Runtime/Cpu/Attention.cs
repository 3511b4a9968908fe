using System.Runtime.Intrinsics;

namespace Engine.Runtime.Cpu;

/// <summary>Causal grouped-query attention over the f16 KV cache (llama.cpp's default cache type; the CUDA backend's
/// kernels/Attention.cs reads the same f16 values): s[t] = q·k[t] / sqrt(head_dim) for t ≤ pos, p = softmax(s) in f32
/// with the max subtracted (ggml_soft_max_ext), out = Σ p[t]·v[t]. q stays f32; K and V rows are widened to f32
/// (exact) and all arithmetic is f32, as on the GPU. Query head h reads KV head h / (n_head / n_head_kv) (llama.cpp's
/// GQA broadcast). One work item is a (token, KV head) pair and serves the group of query heads that share that KV
/// head, so each cached row is converted once per group rather than once per query head.</summary>
public sealed unsafe class Attention : IParallelWork, IDisposable
{
    private readonly int _heads, _kvHeads, _headDim, _group;
    private readonly float*[] _scores;   // [thread][group, max context] scores, then probabilities
    private readonly float*[] _row;      // [thread][head_dim] one K or V row widened to f32
    private float* _q, _out;
    private Half* _keys, _values;
    private int _tokens, _startPos;
    private float _scale;

    /// <summary>Buffers for <paramref name="maxContext"/> positions of a model with <paramref name="heads"/> query
    /// heads, <paramref name="kvHeads"/> KV heads (a divisor of heads) of <paramref name="headDim"/> values.</summary>
    public Attention(int threadCount, int maxContext, int heads, int kvHeads, int headDim)
    {
        if (kvHeads < 1 || heads % kvHeads != 0)
            throw new ArgumentException($"head count {heads} must be a multiple of the KV head count {kvHeads}");
        _heads = heads; _kvHeads = kvHeads; _headDim = headDim; _group = heads / kvHeads;
        _scores = new float*[threadCount];
        _row = new float*[threadCount];
        for (int t = 0; t < threadCount; t++)
        {
            _scores[t] = NativeBuffers.Floats((long)_group * maxContext);
            _row[t] = NativeBuffers.Floats(headDim);
        }
    }

    /// <summary>q, output: [tokens, heads · headDim] f32; keys, values: this layer's f16 cache
    /// [context, kvHeads · headDim], already holding positions 0 .. startPos + tokens - 1; <paramref name="scale"/>
    /// multiplies the scores (the plan's, 1/sqrt(head_dim) for Llama).</summary>
    public void Run(WorkerPool pool, float* q, Half* keys, Half* values, float* output, int tokens, int startPos, float scale)
    {
        _q = q; _keys = keys; _values = values; _out = output;
        _tokens = tokens; _startPos = startPos; _scale = scale;
        pool.Run(this, 2L * tokens * _heads * _headDim * (startPos + tokens));
    }

    public void Execute(int thread, int threadCount)
    {
        var (start, end) = WorkerPool.Share(_tokens * _kvHeads, thread, threadCount);
        int hd = _headDim, kvDim = _kvHeads * hd, group = _group;
        float scale = _scale;
        float* scores = _scores[thread], row = _row[thread];
        for (int item = start; item < end; item++)
        {
            int b = item / _kvHeads, kvh = item % _kvHeads;
            int count = _startPos + b + 1;   // causal: this token sees positions 0 .. startPos + b
            long headOffset = ((long)b * _heads + kvh * group) * hd;   // the group's query heads are consecutive
            float* q = _q + headOffset, o = _out + headOffset;
            Half* keys = _keys + kvh * hd, values = _values + kvh * hd;

            for (int t = 0; t < count; t++)
            {
                KvStore.Widen(keys + (long)t * kvDim, row, hd);
                for (int g = 0; g < group; g++)
                    scores[g * count + t] = MatMul.Dot(q + g * hd, row, hd) * scale;
            }
            for (int g = 0; g < group; g++)
                Softmax(scores + g * count, count);

            new Span<float>(o, group * hd).Clear();
            for (int t = 0; t < count; t++)
            {
                KvStore.Widen(values + (long)t * kvDim, row, hd);
                for (int g = 0; g < group; g++)
                    Axpy(scores[g * count + t], row, o + g * hd, hd);
            }
        }
    }

    /// <summary>s = exp(s - max s) / Σ exp(s - max s), the sum in double (ggml_float).</summary>
    private static void Softmax(float* s, int n)
    {
        float max = float.NegativeInfinity;
        for (int t = 0; t < n; t++) max = MathF.Max(max, s[t]);
        double sum = 0;
        for (int t = 0; t < n; t++)
        {
            float e = MathF.Exp(s[t] - max);
            s[t] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int t = 0; t < n; t++) s[t] *= inv;
    }

    /// <summary>y += a·x, each element one fused multiply-add whatever the vector width (the same bits on every path
    /// but the scalar tail).</summary>
    private static void Axpy(float a, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(a);
            for (; i + 16 <= n; i += 16)
                Vector512.FusedMultiplyAdd(va, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(a);
            for (; i + 8 <= n; i += 8)
                Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] += a * x[i];
    }

    public void Dispose()
    {
        for (int t = 0; t < _scores.Length; t++)
        {
            NativeBuffers.Free(_scores[t]); _scores[t] = null;
            NativeBuffers.Free(_row[t]); _row[t] = null;
        }
    }
}

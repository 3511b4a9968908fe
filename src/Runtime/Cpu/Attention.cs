using System.Runtime.Intrinsics;

namespace Engine.Runtime.Cpu;

/// <summary>Causal grouped-query attention over the f32 KV cache, one (token, head) pair per work item:
/// s[t] = q·k[t] / sqrt(head_dim) for t ≤ pos, p = softmax(s) in f32 with the max subtracted (ggml_soft_max_ext),
/// out = Σ p[t]·v[t]. Query head h reads KV head h / (n_head / n_head_kv) (llama.cpp's GQA broadcast).</summary>
public sealed unsafe class Attention : IParallelWork, IDisposable
{
    private readonly float*[] _scores;   // [thread][max context]
    private float* _q, _out, _keys, _values;
    private int _tokens, _startPos, _heads, _kvHeads, _headDim;

    public Attention(int threadCount, int maxContext)
    {
        _scores = new float*[threadCount];
        for (int t = 0; t < threadCount; t++) _scores[t] = NativeBuffers.Floats(maxContext);
    }

    /// <summary>q, out: [tokens, heads · headDim]; keys, values: this layer's cache [context, kvHeads · headDim],
    /// already holding positions 0 .. startPos + tokens - 1.</summary>
    public void Run(WorkerPool pool, float* q, float* keys, float* values, float* output, int tokens, int startPos,
        int heads, int kvHeads, int headDim)
    {
        _q = q; _keys = keys; _values = values; _out = output;
        _tokens = tokens; _startPos = startPos; _heads = heads; _kvHeads = kvHeads; _headDim = headDim;
        pool.Run(this, 2L * tokens * heads * headDim * (startPos + tokens));
    }

    public void Execute(int thread, int threadCount)
    {
        int items = _tokens * _heads;
        var (start, end) = WorkerPool.Share(items, thread, threadCount);
        int hd = _headDim, kvDim = _kvHeads * hd, group = _heads / _kvHeads;
        float scale = 1.0f / MathF.Sqrt(hd);
        float* s = _scores[thread];
        for (int item = start; item < end; item++)
        {
            int b = item / _heads, h = item % _heads, kvh = h / group;
            int last = _startPos + b;   // causal: this token sees positions 0..last
            float* q = _q + ((long)b * _heads + h) * hd;
            float max = float.NegativeInfinity;
            for (int t = 0; t <= last; t++)
            {
                float v = MatMul.Dot(q, _keys + (long)t * kvDim + kvh * hd, hd) * scale;
                s[t] = v;
                if (v > max) max = v;
            }
            double sum = 0;
            for (int t = 0; t <= last; t++)
            {
                float e = MathF.Exp(s[t] - max);
                s[t] = e;
                sum += e;
            }
            float inv = (float)(1.0 / sum);
            float* o = _out + ((long)b * _heads + h) * hd;
            new Span<float>(o, hd).Clear();
            for (int t = 0; t <= last; t++)
                Axpy(s[t] * inv, _values + (long)t * kvDim + kvh * hd, o, hd);
        }
    }

    /// <summary>y += a·x.</summary>
    private static void Axpy(float a, float* x, float* y, int n)
    {
        int i = 0;
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
        for (int t = 0; t < _scores.Length; t++) { NativeBuffers.Free(_scores[t]); _scores[t] = null; }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Runtime.Cpu;

/// <summary>y[b, r] = Σ_c W[r, c] · x[b, c] for up to three weight matrices that share the input (Q/K/V, gate/up),
/// split over the pool by output rows. Each row is dequantized once into the thread's scratch (f32, L1-resident)
/// and dotted with every token of the batch (a GEMV for one token, a GEMM for a prompt); F32 rows are read in
/// place. Activations and accumulation stay f32, unlike ggml-cpu, which quantizes activations to 8 bits for its
/// quantized dot products (ggml-cpu vec_dot_type).</summary>
public sealed unsafe class MatMul : IParallelWork, IDisposable
{
    /// <summary>Tokens dotted per pass over a dequantized row: keeps the activation tile in L1/L2.</summary>
    private const int TokenTile = 16;

    private readonly float*[] _rowScratch;   // [thread][max columns]
    private readonly WeightMatrix[] _weights = new WeightMatrix[3];
    private readonly nint[] _outputs = new nint[3];
    private int _count;
    private float* _x;
    private int _tokens;
    private int _outStride0, _outStride1, _outStride2;

    public MatMul(int threadCount, int maxColumns)
    {
        _rowScratch = new float*[threadCount];
        for (int t = 0; t < threadCount; t++) _rowScratch[t] = NativeBuffers.Floats(maxColumns);
    }

    public void Dispose()
    {
        for (int t = 0; t < _rowScratch.Length; t++) { NativeBuffers.Free(_rowScratch[t]); _rowScratch[t] = null; }
    }

    /// <summary>y = x·Wᵀ for x [tokens, W.Columns] and y [tokens, W.Rows] (row stride = W.Rows).</summary>
    public void Run(WorkerPool pool, WeightMatrix w, float* x, int tokens, float* y, int yStride = 0)
    {
        _count = 1;
        _weights[0] = w; _outputs[0] = (nint)y; _outStride0 = yStride == 0 ? w.Rows : yStride;
        _x = x; _tokens = tokens;
        pool.Run(this, (long)w.Rows * w.Columns * tokens);
    }

    /// <summary>Two or three matrices over the same input, in one pass of the pool (one barrier).</summary>
    public void Run(WorkerPool pool, float* x, int tokens, WeightMatrix w0, float* y0, WeightMatrix w1, float* y1,
        WeightMatrix w2 = default, float* y2 = null)
    {
        _count = y2 == null ? 2 : 3;
        _weights[0] = w0; _outputs[0] = (nint)y0; _outStride0 = w0.Rows;
        _weights[1] = w1; _outputs[1] = (nint)y1; _outStride1 = w1.Rows;
        if (y2 != null) { _weights[2] = w2; _outputs[2] = (nint)y2; _outStride2 = w2.Rows; }
        _x = x; _tokens = tokens;
        pool.Run(this, ((long)w0.Rows + w1.Rows + (y2 != null ? w2.Rows : 0)) * w0.Columns * tokens);
    }

    public void Execute(int thread, int threadCount)
    {
        int total = 0;
        for (int m = 0; m < _count; m++) total += _weights[m].Rows;
        var (start, end) = WorkerPool.Share(total, thread, threadCount, grain: 16);
        int offset = 0;
        for (int m = 0; m < _count && start < end; m++)
        {
            var w = _weights[m];
            int lo = Math.Max(start, offset) - offset, hi = Math.Min(end, offset + w.Rows) - offset;
            if (lo < hi)
            {
                int stride = m == 0 ? _outStride0 : m == 1 ? _outStride1 : _outStride2;
                Rows(w, lo, hi, (float*)_outputs[m], stride, _rowScratch[thread]);
            }
            offset += w.Rows;
        }
    }

    private void Rows(WeightMatrix w, int lo, int hi, float* y, int yStride, float* scratch)
    {
        int cols = w.Columns;
        for (int t0 = 0; t0 < _tokens; t0 += TokenTile)
        {
            int t1 = Math.Min(_tokens, t0 + TokenTile);
            for (int r = lo; r < hi; r++)
            {
                float* row;
                if (w.Type == Plans.Gguf.GgmlType.F32) row = (float*)w.Row(r);
                else { w.DequantizeRow(r, scratch); row = scratch; }
                for (int b = t0; b < t1; b++)
                    y[(long)b * yStride + r] = Dot(row, _x + (long)b * cols, cols);
            }
        }
    }

    /// <summary>Σ a[i]·b[i] with four 8-wide FMA accumulators (ggml_vec_dot_f32's GGML_F32_STEP shape).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 32 <= n; i += 32)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 16), Vector256.Load(b + i + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 24), Vector256.Load(b + i + 24), s3);
            }
            for (; i + 8 <= n; i += 8)
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Engine.Plans.Gguf;

namespace Engine.Runtime.Cpu;

/// <summary>y[b, r] = Σ_c W[r, c] · x[b, c] for up to three weight matrices that share the input (Q/K/V, gate/up),
/// split over the pool by output rows in contiguous shares. Q8_0, Q4_0 and K-quant rows are dotted in int8 with
/// the activations quantized once per call to 8 bits per block of 32 (<see cref="QuantizedDot"/>, the blocks the CUDA
/// GEMV multiplies too). Other formats are dequantized row by row into the thread's scratch (f32, L1-resident) and dotted
/// in f32 with every token of the batch (a GEMV for one token, a GEMM for a prompt); F32 rows are read in place.
/// Either way a weight row is read from memory once per tile of 16 tokens. With f32 activations (the plan's
/// <c>--activations f32</c>, the f32act kernels) the quantized rows take the dequantize-and-dot path too, as the CUDA
/// f32act GEMV does: no 8-bit rounding of the input, so the two backends differ only by f32 summation order.</summary>
public sealed unsafe class MatMul : IParallelWork, IDisposable
{
    /// <summary>Tokens dotted per pass over a dequantized row: keeps the activation tile in L1/L2.</summary>
    private const int TokenTile = 16;

    private readonly float*[] _rowScratch;   // [thread][max columns]
    private readonly sbyte* _xq;              // [max tokens, max columns] int8 activations (QuantizedDot)
    private readonly float* _xd;              // [max tokens, max columns / 32] their block scales
    private readonly int* _xs;                // [max tokens, max columns / 32] their block sums Σ q (K-quants' minimums)
    private readonly int _maxColumns, _maxTokens;
    private readonly WeightMatrix[] _weights = new WeightMatrix[3];
    private readonly nint[] _outputs = new nint[3];
    private int _count;
    private float* _x;
    private int _tokens;
    private bool _f32Activations;
    private int _outStride0, _outStride1, _outStride2;

    /// <param name="maxTokens">Most tokens of one call (the model's batch).</param>
    public MatMul(int threadCount, int maxColumns, int maxTokens = 64)
    {
        _maxColumns = maxColumns;
        _maxTokens = maxTokens;
        _rowScratch = new float*[threadCount];
        for (int t = 0; t < threadCount; t++) _rowScratch[t] = NativeBuffers.Floats(maxColumns);
        _xq = (sbyte*)NativeBuffers.Floats(((long)maxTokens * maxColumns + 3) / 4);
        _xd = NativeBuffers.Floats((long)maxTokens * maxColumns / 32);
        _xs = (int*)NativeBuffers.Floats((long)maxTokens * maxColumns / 32);
    }

    public void Dispose()
    {
        for (int t = 0; t < _rowScratch.Length; t++) { NativeBuffers.Free(_rowScratch[t]); _rowScratch[t] = null; }
        NativeBuffers.Free((float*)_xq);
        NativeBuffers.Free(_xd);
        NativeBuffers.Free((float*)_xs);
    }

    /// <summary>y = x·Wᵀ for x [tokens, W.Columns] and y [tokens, W.Rows] (row stride = W.Rows);
    /// <paramref name="f32Activations"/>: quantized rows dotted with x itself, not its 8-bit quantization.</summary>
    public void Run(WorkerPool pool, WeightMatrix w, float* x, int tokens, float* y, int yStride = 0, bool f32Activations = false)
    {
        _count = 1;
        _f32Activations = f32Activations;
        _weights[0] = w; _outputs[0] = (nint)y; _outStride0 = yStride == 0 ? w.Rows : yStride;
        _x = x; _tokens = tokens;
        QuantizeActivations(w.Type, w.Type, w.Type, w.Columns);
        pool.Run(this, (long)w.Rows * w.Columns * tokens);
    }

    /// <summary>Two or three matrices over the same input, in one pass of the pool (one barrier).</summary>
    public void Run(WorkerPool pool, float* x, int tokens, WeightMatrix w0, float* y0, WeightMatrix w1, float* y1,
        WeightMatrix w2 = default, float* y2 = null, bool f32Activations = false)
    {
        _count = y2 == null ? 2 : 3;
        _f32Activations = f32Activations;
        _weights[0] = w0; _outputs[0] = (nint)y0; _outStride0 = w0.Rows;
        _weights[1] = w1; _outputs[1] = (nint)y1; _outStride1 = w1.Rows;
        if (y2 != null) { _weights[2] = w2; _outputs[2] = (nint)y2; _outStride2 = w2.Rows; }
        _x = x; _tokens = tokens;
        QuantizeActivations(w0.Type, w1.Type, y2 != null ? w2.Type : w0.Type, w0.Columns);
        pool.Run(this, ((long)w0.Rows + w1.Rows + (y2 != null ? w2.Rows : 0)) * w0.Columns * tokens);
    }

    /// <summary>8-bit activations, once per call on the calling thread, when one of the matrices takes them
    /// (a few microseconds for a token; the matrices sharing the input share them too).</summary>
    private void QuantizeActivations(GgmlType t0, GgmlType t1, GgmlType t2, int cols)
    {
        if (!Int8(t0) && !Int8(t1) && !Int8(t2)) return;
        if (_tokens > _maxTokens || cols > _maxColumns)
            throw new ArgumentException($"matmul of {_tokens} tokens × {cols} columns exceeds the {_maxTokens} × {_maxColumns} it was sized for");
        for (int b = 0; b < _tokens; b++)
            QuantizedDot.QuantizeRow(_x + (long)b * cols, cols, _xq + (long)b * cols, _xd + (long)b * (cols / 32), _xs + (long)b * (cols / 32));
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
        if (Int8(w.Type))
        {
            Int8Rows(w, lo, hi, y, yStride);
            return;
        }
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

    /// <summary>Whether rows of <paramref name="type"/> take the int8 dot in this call.</summary>
    private bool Int8(GgmlType type) => !_f32Activations && QuantizedDot.UsesInt8Activations(type);

    private void Int8Rows(WeightMatrix w, int lo, int hi, float* y, int yStride)
    {
        int cols = w.Columns, blocks = cols / 32;
        long rowBytes = w.RowBytes;
        for (int t0 = 0; t0 < _tokens; t0 += TokenTile)
        {
            int t1 = Math.Min(_tokens, t0 + TokenTile);
            byte* row = w.Data + lo * rowBytes;
            for (int r = lo; r < hi; r++, row += rowBytes)
            {
                int b = t0;
                for (; b + 4 <= t1; b += 4)   // a prompt: 4 tokens per load of each weight block
                    QuantizedDot.Dot4(w.Type, row, _xq + (long)b * cols, _xd + (long)b * blocks, _xs + (long)b * blocks, cols, blocks,
                        y + (long)b * yStride + r, yStride);
                for (; b < t1; b++)
                    y[(long)b * yStride + r] = QuantizedDot.Dot(w.Type, row, _xq + (long)b * cols, _xd + (long)b * blocks, _xs + (long)b * blocks, blocks);
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

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;

namespace Engine.Runtime.Cpu;

/// <summary>Int8 dot products of Q8_0/Q4_0 weight rows with activations quantized to 8 bits per block of 32, the
/// way ggml-cpu computes them (its vec_dot_type for these formats is Q8_0: ggml-cpu.c type_traits_cpu,
/// arch/x86/quants.c quantize_row_q8_0, ggml_vec_dot_q8_0_q8_0, ggml_vec_dot_q4_0_q8_0). A weight byte is
/// multiplied as an integer and never turned into a float, so decode streams the weights once with a few integer
/// instructions per 32 of them instead of dequantizing each row into a scratch and dotting it again.
/// Activations are stored apart from their scales: <c>qs</c> 32 signed bytes per block (32-byte aligned loads),
/// <c>ds</c> one f32 per block, the f16-rounded scale ggml stores in block_q8_0.</summary>
public static unsafe class QuantizedDot
{
    /// <summary>Weight types whose matmul uses 8-bit activations (block of 32, f16 scale).</summary>
    public static bool UsesInt8Activations(GgmlType type) => type is GgmlType.Q8_0 or GgmlType.Q4_0;

    /// <summary>f16 → f32 for every bit pattern (256 KiB): ggml's ggml_table_f32_f16. The block scales are
    /// f16 and a table load is cheaper per block than the software conversion of <see cref="Half"/>.</summary>
    private static readonly float* HalfToSingle = BuildHalfTable();

    private static float* BuildHalfTable()
    {
        var t = (float*)NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
        for (int i = 0; i < 65536; i++) t[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return t;
    }


    /// <summary>Quantizes <paramref name="cols"/> (a multiple of 32) activations as quantize_row_q8_0 does:
    /// d = max|x| / 127 rounded to f16, q = round-to-nearest-even(x · 127 / max|x|).</summary>
    public static void QuantizeRow(float* x, int cols, sbyte* qs, float* ds)
    {
        for (int k = 0; k < cols / 32; k++, x += 32, qs += 32)
        {
            float amax;
            if (Vector256.IsHardwareAccelerated)
            {
                var v0 = Vector256.Load(x); var v1 = Vector256.Load(x + 8);
                var v2 = Vector256.Load(x + 16); var v3 = Vector256.Load(x + 24);
                amax = HorizontalMax(Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)),
                    Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3))));
                var id = Vector256.Create(amax != 0 ? 127f / amax : 0f);
                var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * id));
                var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * id));
                var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * id));
                var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * id));
                Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3)).Store(qs);   // |q| ≤ 127: no saturation needed
            }
            else
            {
                amax = 0;
                for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
                float id = amax != 0 ? 127f / amax : 0f;
                for (int j = 0; j < 32; j++) qs[j] = (sbyte)MathF.Round(x[j] * id, MidpointRounding.ToEven);
            }
            ds[k] = (float)(Half)(amax / 127f);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>Σ over <paramref name="blocks"/> blocks of d_w·d_x·Σ q_w·q_x for a Q8_0 weight row.</summary>
    public static float DotQ8_0(byte* row, sbyte* qs, float* ds, int blocks) =>
        Avx2.IsSupported ? Dot<Q8_0Blocks>(row, qs, ds, blocks) : DotScalar<Q8_0Blocks>(row, qs, ds, blocks);

    /// <summary>Σ over <paramref name="blocks"/> blocks of d_w·d_x·Σ (q_w − 8)·q_x for a Q4_0 weight row.</summary>
    public static float DotQ4_0(byte* row, sbyte* qs, float* ds, int blocks) =>
        Avx2.IsSupported ? Dot<Q4_0Blocks>(row, qs, ds, blocks) : DotScalar<Q4_0Blocks>(row, qs, ds, blocks);

    public static float DotQ8_0Scalar(byte* row, sbyte* qs, float* ds, int blocks) => DotScalar<Q8_0Blocks>(row, qs, ds, blocks);
    public static float DotQ4_0Scalar(byte* row, sbyte* qs, float* ds, int blocks) => DotScalar<Q4_0Blocks>(row, qs, ds, blocks);

    /// <summary>y[j · yStride] = the dot of one weight row with token j's activations, for 4 tokens whose
    /// activations are <paramref name="xStride"/> bytes (and xStride / 32 scales) apart: each weight block is loaded
    /// and its |w| formed once for the 4 (a prompt's GEMM; decode uses the single-token dot).</summary>
    public static void Dot4(GgmlType type, byte* row, sbyte* qs, float* ds, int xStride, int blocks, float* y, long yStride)
    {
        if (!Avx2.IsSupported)
            for (int j = 0; j < 4; j++) y[j * yStride] = Dot(type, row, qs + j * xStride, ds + j * (xStride / 32), blocks);
        else if (type == GgmlType.Q8_0) Dot4<Q8_0Blocks>(row, qs, ds, xStride, blocks, y, yStride);
        else Dot4<Q4_0Blocks>(row, qs, ds, xStride, blocks, y, yStride);
    }

    /// <summary>One weight row (Q8_0 or Q4_0) with one token's activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(GgmlType type, byte* row, sbyte* qs, float* ds, int blocks) =>
        type == GgmlType.Q8_0 ? DotQ8_0(row, qs, ds, blocks) : DotQ4_0(row, qs, ds, blocks);

    /// <summary>The block layouts the int8 kernels are generic over (STYLE.md convention 2): a block starts with its
    /// f16 scale and holds 32 weights, given back as signed bytes.</summary>
    private interface IInt8Blocks
    {
        static abstract int Bytes { get; }
        static abstract Vector256<sbyte> Weights(byte* block);
        static abstract sbyte Weight(byte* block, int j);
    }

    private struct Q8_0Blocks : IInt8Blocks
    {
        public static int Bytes => BlockQ8_0.Size;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Weights(byte* block) => Vector256.Load((sbyte*)(block + 2));
        public static sbyte Weight(byte* block, int j) => ((sbyte*)(block + 2))[j];
    }

    /// <summary>Q4_0: byte j holds weight j in its low nibble and weight j + 16 in its high nibble, w = q − 8
    /// (ggml bytes_from_nibbles_32).</summary>
    private struct Q4_0Blocks : IInt8Blocks
    {
        public static int Bytes => BlockQ4_0.Size;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Weights(byte* block)
        {
            var bytes = Vector128.Load(block + 2);
            var lo = bytes & Vector128.Create((byte)0x0F);
            var hi = Vector128.ShiftRightLogical(bytes, 4);
            return Vector256.Create(lo, hi).AsSByte() - Vector256.Create((sbyte)8);
        }
        public static sbyte Weight(byte* block, int j) => (sbyte)((j < 16 ? block[2 + j] & 0x0F : block[2 + j - 16] >> 4) - 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float BlockScale(float* table, byte* block) => table[*(ushort*)block];

    // Each kernel reads the table into a local once: a static read inside the loop keeps a class-initialization
    // check there (and spills the accumulators around it) until tiering recompiles the method.
    private static float Dot<T>(byte* w, sbyte* qs, float* ds, int blocks) where T : IInt8Blocks
    {
        float* table = HalfToSingle;
        int n = T.Bytes;
        // Four independent accumulators: the FMA latency chain would otherwise bound a row (ggml unrolls by 2..4).
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int k = 0;
        for (; k + 4 <= blocks; k += 4, w += 4 * n, qs += 128)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w) * ds[k]), Products(T.Weights(w), Vector256.Load(qs)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + n) * ds[k + 1]), Products(T.Weights(w + n), Vector256.Load(qs + 32)), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + 2 * n) * ds[k + 2]), Products(T.Weights(w + 2 * n), Vector256.Load(qs + 64)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + 3 * n) * ds[k + 3]), Products(T.Weights(w + 3 * n), Vector256.Load(qs + 96)), a3);
        }
        for (; k < blocks; k++, w += n, qs += 32)
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w) * ds[k]), Products(T.Weights(w), Vector256.Load(qs)), a0);
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    private static void Dot4<T>(byte* w, sbyte* qs, float* ds, int xStride, int blocks, float* y, long yStride) where T : IInt8Blocks
    {
        float* table = HalfToSingle;
        int n = T.Bytes, dStride = xStride / 32;
        sbyte* q0 = qs, q1 = qs + xStride, q2 = qs + 2 * xStride, q3 = qs + 3 * xStride;
        float* d0 = ds, d1 = ds + dStride, d2 = ds + 2 * dStride, d3 = ds + 3 * dStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int k = 0; k < blocks; k++, w += n)
        {
            var wv = T.Weights(w);
            var aw = Avx2.Abs(wv);
            float dw = BlockScale(table, w);
            int o = 32 * k;
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d0[k]), Products(aw, wv, Vector256.Load(q0 + o)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d1[k]), Products(aw, wv, Vector256.Load(q1 + o)), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d2[k]), Products(aw, wv, Vector256.Load(q2 + o)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d3[k]), Products(aw, wv, Vector256.Load(q3 + o)), a3);
        }
        y[0] = Vector256.Sum(a0);
        y[yStride] = Vector256.Sum(a1);
        y[2 * yStride] = Vector256.Sum(a2);
        y[3 * yStride] = Vector256.Sum(a3);
    }

    private static float DotScalar<T>(byte* w, sbyte* qs, float* ds, int blocks) where T : IInt8Blocks
    {
        float* table = HalfToSingle;
        float sum = 0;
        for (int k = 0; k < blocks; k++, w += T.Bytes, qs += 32)
        {
            int s = 0;
            for (int j = 0; j < 32; j++) s += T.Weight(w, j) * qs[j];
            sum += s * (BlockScale(table, w) * ds[k]);
        }
        return sum;
    }

    /// <summary>Eight partial sums of w·x over 32 signed bytes, as floats (ggml mul_sum_i8_pairs_float):
    /// vpmaddubsw multiplies unsigned by signed bytes, so |w| is paired with x carrying w's sign. |w| ≤ 128 and
    /// |x| ≤ 127 keep each pair sum within int16 (2 · 128 · 127 &lt; 32768).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(Vector256<sbyte> w, Vector256<sbyte> x) => Products(Avx2.Abs(w), w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(Vector256<byte> absW, Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var pairs = Avx2.MultiplyAddAdjacent(absW, Avx2.Sign(x, w));
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1)));
    }
}

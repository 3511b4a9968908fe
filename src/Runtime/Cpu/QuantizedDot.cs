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

    /// <summary>The table, read once per row into a local: a static read inside the loop keeps a class-initialization
    /// check there (and spills the accumulators around it) until tiering recompiles the method.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scale(float* table, Half h) => table[BitConverter.HalfToUInt16Bits(h)];

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
    public static float DotQ8_0(byte* row, sbyte* qs, float* ds, int blocks)
    {
        var w = (BlockQ8_0*)row;
        if (!Avx2.IsSupported) return DotQ8_0Scalar(row, qs, ds, blocks);
        float* table = HalfToSingle;
        // Four independent accumulators: the FMA latency chain would otherwise bound a row (ggml unrolls by 2..4).
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int k = 0;
        for (; k + 4 <= blocks; k += 4, w += 4, qs += 128)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w[0].D) * ds[k]), Products(Vector256.Load(w[0].Qs), Vector256.Load(qs)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w[1].D) * ds[k + 1]), Products(Vector256.Load(w[1].Qs), Vector256.Load(qs + 32)), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w[2].D) * ds[k + 2]), Products(Vector256.Load(w[2].Qs), Vector256.Load(qs + 64)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w[3].D) * ds[k + 3]), Products(Vector256.Load(w[3].Qs), Vector256.Load(qs + 96)), a3);
        }
        for (; k < blocks; k++, w++, qs += 32)
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w->D) * ds[k]), Products(Vector256.Load(w->Qs), Vector256.Load(qs)), a0);
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    /// <summary>Σ over <paramref name="blocks"/> blocks of d_w·d_x·Σ (q_w − 8)·q_x for a Q4_0 weight row (byte j holds
    /// weight j in its low nibble and weight j + 16 in its high nibble).</summary>
    public static float DotQ4_0(byte* row, sbyte* qs, float* ds, int blocks)
    {
        var w = (BlockQ4_0*)row;
        if (!Avx2.IsSupported) return DotQ4_0Scalar(row, qs, ds, blocks);
        float* table = HalfToSingle;
        Vector256<float> a0 = default, a1 = default;
        int k = 0;
        for (; k + 2 <= blocks; k += 2, w += 2, qs += 64)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w[0].D) * ds[k]), Products(Nibbles(w[0].Qs), Vector256.Load(qs)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w[1].D) * ds[k + 1]), Products(Nibbles(w[1].Qs), Vector256.Load(qs + 32)), a1);
        }
        for (; k < blocks; k++, w++, qs += 32)
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(Scale(table, w->D) * ds[k]), Products(Nibbles(w->Qs), Vector256.Load(qs)), a0);
        return Vector256.Sum(a0 + a1);
    }

    /// <summary>The 32 weights of a Q4_0 block as signed bytes q − 8 (low nibbles first: ggml bytes_from_nibbles_32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Nibbles(byte* q)
    {
        var bytes = Vector128.Load(q);
        var lo = bytes & Vector128.Create((byte)0x0F);
        var hi = Vector128.ShiftRightLogical(bytes, 4);
        return Vector256.Create(lo, hi).AsSByte() - Vector256.Create((sbyte)8);
    }

    /// <summary>Eight partial sums of w·x over 32 signed bytes, as floats (ggml mul_sum_i8_pairs_float):
    /// vpmaddubsw multiplies unsigned by signed bytes, so |w| is paired with x carrying w's sign. |w| ≤ 128 and
    /// |x| ≤ 127 keep each pair sum within int16 (2 · 128 · 127 &lt; 32768).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w));
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1)));
    }

    /// <summary>The same sums without SIMD (the fallback, and the check of the vector path).</summary>
    public static float DotQ8_0Scalar(byte* row, sbyte* qs, float* ds, int blocks)
    {
        var w = (BlockQ8_0*)row;
        float* table = HalfToSingle;
        float sum = 0;
        for (int k = 0; k < blocks; k++, w++, qs += 32)
        {
            int s = 0;
            for (int j = 0; j < 32; j++) s += w->Qs[j] * qs[j];
            sum += s * (Scale(table, w->D) * ds[k]);
        }
        return sum;
    }

    public static float DotQ4_0Scalar(byte* row, sbyte* qs, float* ds, int blocks)
    {
        var w = (BlockQ4_0*)row;
        float* table = HalfToSingle;
        float sum = 0;
        for (int k = 0; k < blocks; k++, w++, qs += 32)
        {
            int s = 0;
            for (int j = 0; j < 16; j++) s += ((w->Qs[j] & 0x0F) - 8) * qs[j] + ((w->Qs[j] >> 4) - 8) * qs[j + 16];
            sum += s * (Scale(table, w->D) * ds[k]);
        }
        return sum;
    }
}

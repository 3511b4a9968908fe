using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;

namespace Engine.Plans.Synth;

/// <summary>Quantizers for synthetic weights only: valid blocks of the ggml layouts (ggml-common.h) that
/// dequantize close to the input, but not byte-identical to llama.cpp's quantize_row_*_ref. Q8_0 and Q4_0
/// are the reference formulas vectorised (ties round to even instead of away from zero); the K-quants skip
/// the make_qkx2_quants / make_qx_quants scale searches (the reference's whole cost) and take each
/// sub-block's scale straight from its range, then quantize scales and levels as the reference does.
/// The reference codecs in Formats stay the ones every other path uses.</summary>
public static class SynthQuantizers
{
    public static void QuantizeRow(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        switch (type)
        {
            case GgmlType.Q8_0: Q8_0(src, MemoryMarshal.Cast<byte, BlockQ8_0>(dst)); break;
            case GgmlType.Q4_0: Q4_0(src, MemoryMarshal.Cast<byte, BlockQ4_0>(dst)); break;
            case GgmlType.Q4_K: Q4_K(src, MemoryMarshal.Cast<byte, BlockQ4_K>(dst)); break;
            case GgmlType.Q5_K: Q5_K(src, MemoryMarshal.Cast<byte, BlockQ5_K>(dst)); break;
            case GgmlType.Q6_K: Q6_K(src, MemoryMarshal.Cast<byte, BlockQ6_K>(dst)); break;
            default: WeightFormat.QuantizeRow(type, src, dst); break;
        }
    }

    private static unsafe void Q8_0(ReadOnlySpan<float> src, Span<BlockQ8_0> blocks)
    {
        for (int i = 0; i < blocks.Length; i++)
        {
            var x = src.Slice(32 * i, 32);
            var x0 = Vector256.Create(x); var x1 = Vector256.Create(x[8..]);
            var x2 = Vector256.Create(x[16..]); var x3 = Vector256.Create(x[24..]);
            float amax = Vector256.Max(Vector256.Max(Vector256.Abs(x0), Vector256.Abs(x1)),
                                       Vector256.Max(Vector256.Abs(x2), Vector256.Abs(x3))).HMax();
            float d = amax / 127;
            var id = Vector256.Create(d != 0 ? 1 / d : 0);
            ref BlockQ8_0 b = ref blocks[i];
            b.D = Fp16.ToHalf(d);
            var lo = Vector256.Narrow(Q(x0 * id), Q(x1 * id));
            var hi = Vector256.Narrow(Q(x2 * id), Q(x3 * id));
            Vector256.Narrow(lo, hi).CopyTo(MemoryMarshal.CreateSpan(ref b.Qs[0], 32));
        }
    }

    private static float HMax(this Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        return MathF.Max(MathF.Max(m[0], m[1]), MathF.Max(m[2], m[3]));
    }

    private static float HMin(this Vector256<float> v)
    {
        var m = Vector128.Min(v.GetLower(), v.GetUpper());
        return MathF.Min(MathF.Min(m[0], m[1]), MathF.Min(m[2], m[3]));
    }

    private static Vector256<int> Q(Vector256<float> v) => Vector256.ConvertToInt32(Vector256.Round(v));

    private static unsafe void Q4_0(ReadOnlySpan<float> src, Span<BlockQ4_0> blocks)
    {
        var half = Vector256.Create(8.5f);
        var fifteen = Vector256.Create(15);
        for (int i = 0; i < blocks.Length; i++)
        {
            var x = src.Slice(32 * i, 32);
            var x0 = Vector256.Create(x); var x1 = Vector256.Create(x[8..]);
            var x2 = Vector256.Create(x[16..]); var x3 = Vector256.Create(x[24..]);
            float max = Vector256.Max(Vector256.Max(x0, x1), Vector256.Max(x2, x3)).HMax();
            float min = Vector256.Min(Vector256.Min(x0, x1), Vector256.Min(x2, x3)).HMin();
            float m = max >= -min ? max : min;   // the value of largest magnitude maps to level 0
            float d = m / -8;
            var id = Vector256.Create(d != 0 ? 1 / d : 0);
            ref BlockQ4_0 b = ref blocks[i];
            b.D = Fp16.ToHalf(d);
            // As the reference: min(15, trunc(x/d + 8.5)); x/d ∈ [−8, 8] so the value is never negative.
            var q0 = Vector256.Min(fifteen, Vector256.ConvertToInt32(x0 * id + half));
            var q1 = Vector256.Min(fifteen, Vector256.ConvertToInt32(x1 * id + half));
            var q2 = Vector256.Min(fifteen, Vector256.ConvertToInt32(x2 * id + half));
            var q3 = Vector256.Min(fifteen, Vector256.ConvertToInt32(x3 * id + half));
            var low = Vector128.Narrow(Vector256.Narrow(q0, q1).AsUInt16().GetLower(), Vector256.Narrow(q0, q1).AsUInt16().GetUpper());
            var high = Vector128.Narrow(Vector256.Narrow(q2, q3).AsUInt16().GetLower(), Vector256.Narrow(q2, q3).AsUInt16().GetUpper());
            (low | (high << 4)).CopyTo(MemoryMarshal.CreateSpan(ref b.Qs[0], 16));
        }
    }

    /// <summary>Asymmetric sub-blocks of 32 with levels 0..nmax: scale (max − min)/nmax and min min(x, 0)
    /// per sub-block (make_qkx2_quants' starting point, without its search), then as the reference: 6-bit
    /// scales and mins against the largest of each, every weight re-levelled against the rounded values.</summary>
    private static void KSuperBlock(ReadOnlySpan<float> x, int nmax, Span<byte> levels, Span<byte> packedScales, out Half d, out Half dmin)
    {
        Span<float> scales = stackalloc float[8];
        Span<float> mins = stackalloc float[8];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            var xs = x.Slice(32 * j, 32);
            float mn = xs[0], mx = xs[0];
            for (int l = 1; l < 32; l++) { mn = MathF.Min(mn, xs[l]); mx = MathF.Max(mx, xs[l]); }
            mn = MathF.Min(mn, 0);
            scales[j] = (mx - mn) / nmax;
            mins[j] = -mn;
            maxScale = MathF.Max(maxScale, scales[j]);
            maxMin = MathF.Max(maxMin, mins[j]);
        }
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        Span<byte> ls = stackalloc byte[8];
        Span<byte> lm = stackalloc byte[8];
        for (int j = 0; j < 8; j++)
        {
            ls[j] = (byte)Math.Clamp(QuantSearch.NearestInt(invScale * scales[j]), 0, 63);
            lm[j] = (byte)Math.Clamp(QuantSearch.NearestInt(invMin * mins[j]), 0, 63);
        }
        packedScales.Clear();
        QuantSearch.PackScaleMinK4(ls, lm, packedScales);
        ushort dBits = Fp16.FromFloat(maxScale / 63f), dminBits = Fp16.FromFloat(maxMin / 63f);
        d = BitConverter.UInt16BitsToHalf(dBits);
        dmin = BitConverter.UInt16BitsToHalf(dminBits);
        float df = Fp16.ToFloat(dBits), dminf = Fp16.ToFloat(dminBits);
        for (int j = 0; j < 8; j++)
        {
            float dj = df * ls[j], dm = dminf * lm[j];
            float inv = dj != 0 ? 1 / dj : 0;
            for (int l = 0; l < 32; l++)
                levels[32 * j + l] = (byte)Math.Clamp(QuantSearch.NearestInt((x[32 * j + l] + dm) * inv), 0, nmax);
        }
    }

    private static unsafe void Q4_K(ReadOnlySpan<float> src, Span<BlockQ4_K> blocks)
    {
        Span<byte> levels = stackalloc byte[256];
        for (int i = 0; i < blocks.Length; i++)
        {
            ref BlockQ4_K b = ref blocks[i];
            KSuperBlock(src.Slice(256 * i, 256), 15, levels, MemoryMarshal.CreateSpan(ref b.Scales[0], 12), out b.D, out b.DMin);
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    b.Qs[32 * k + l] = (byte)(levels[64 * k + l] | (levels[64 * k + 32 + l] << 4));
        }
    }

    private static unsafe void Q5_K(ReadOnlySpan<float> src, Span<BlockQ5_K> blocks)
    {
        Span<byte> levels = stackalloc byte[256];
        for (int i = 0; i < blocks.Length; i++)
        {
            ref BlockQ5_K b = ref blocks[i];
            KSuperBlock(src.Slice(256 * i, 256), 31, levels, MemoryMarshal.CreateSpan(ref b.Scales[0], 12), out b.D, out b.DMin);
            for (int l = 0; l < 32; l++) b.Qh[l] = 0;
            for (int k = 0; k < 4; k++)
            {
                for (int l = 0; l < 32; l++)
                {
                    int l1 = levels[64 * k + l], l2 = levels[64 * k + 32 + l];
                    b.Qh[l] |= (byte)(((l1 >> 4) << (2 * k)) | ((l2 >> 4) << (2 * k + 1)));
                    b.Qs[32 * k + l] = (byte)((l1 & 0xF) | ((l2 & 0xF) << 4));
                }
            }
        }
    }

    /// <summary>Symmetric sub-blocks of 16, levels −32..31: scale −max/32 with max the value of largest
    /// magnitude (make_qx_quants' starting point, without its search), then as the reference: int8 scales
    /// against the largest, every weight re-levelled against the rounded scale.</summary>
    private static unsafe void Q6_K(ReadOnlySpan<float> src, Span<BlockQ6_K> blocks)
    {
        Span<float> scales = stackalloc float[16];
        Span<int> levels = stackalloc int[256];
        for (int i = 0; i < blocks.Length; i++)
        {
            ref BlockQ6_K b = ref blocks[i];
            var x = src.Slice(256 * i, 256);
            float maxScale = 0;
            for (int s = 0; s < 16; s++)
            {
                float mx = 0;
                for (int l = 0; l < 16; l++) if (MathF.Abs(x[16 * s + l]) > MathF.Abs(mx)) mx = x[16 * s + l];
                scales[s] = -mx / 32;
                if (MathF.Abs(scales[s]) > MathF.Abs(maxScale)) maxScale = scales[s];
            }
            if (MathF.Abs(maxScale) < QuantSearch.GroupMaxEps)
            {
                MemoryMarshal.AsBytes(blocks.Slice(i, 1)).Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            b.D = Fp16.ToHalf(1 / iscale);
            float dBlock = (float)b.D;
            for (int s = 0; s < 16; s++)
            {
                b.Scales[s] = (sbyte)Math.Clamp(QuantSearch.NearestInt(iscale * scales[s]), -128, 127);
                float d = dBlock * b.Scales[s];
                float inv = d != 0 ? 1 / d : 0;
                for (int l = 0; l < 16; l++)
                    levels[16 * s + l] = Math.Clamp(QuantSearch.NearestInt(x[16 * s + l] * inv), -32, 31) + 32;
            }
            for (int n = 0; n < 2; n++)
            {
                for (int l = 0; l < 32; l++)
                {
                    int j = 128 * n + l;
                    int l1 = levels[j], l2 = levels[j + 32], l3 = levels[j + 64], l4 = levels[j + 96];
                    b.Ql[64 * n + l] = (byte)((l1 & 0xF) | ((l3 & 0xF) << 4));
                    b.Ql[64 * n + l + 32] = (byte)((l2 & 0xF) | ((l4 & 0xF) << 4));
                    b.Qh[32 * n + l] = (byte)((l1 >> 4) | ((l2 >> 4) << 2) | ((l3 >> 4) << 4) | ((l4 >> 4) << 6));
                }
            }
        }
    }
}

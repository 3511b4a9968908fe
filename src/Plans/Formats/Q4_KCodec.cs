using System.Runtime.InteropServices;
using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>Q4_K (ggml-quants.c quantize_row_q4_K_ref, dequantize_row_q4_K): a super-block of 256 weights in
/// 8 sub-blocks of 32; sub-block j has a 6-bit scale sc_j and min m_j (packed by get_scale_min_k4) and
/// weight = d·sc_j·q − dmin·m_j with q in 0..15. Bytes 32k..32k+31 of qs hold sub-block 2k in their low
/// nibbles and sub-block 2k+1 in their high nibbles.</summary>
public readonly unsafe struct Q4_KCodec : IBlockCodec
{
    public static GgmlType Type => GgmlType.Q4_K;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ4_K>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ4_K b = bs[i];
            var scales = new ReadOnlySpan<byte>(b.Scales, 12);
            float d = (float)b.D, dmin = (float)b.DMin;
            var y = dst.Slice(i * BlockQ4_K.Elements, BlockQ4_K.Elements);
            for (int k = 0; k < 4; k++)
            {
                QuantSearch.GetScaleMinK4(2 * k, scales, out byte sc1, out byte m1);
                QuantSearch.GetScaleMinK4(2 * k + 1, scales, out byte sc2, out byte m2);
                float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
                for (int l = 0; l < 32; l++)
                {
                    byte q = b.Qs[32 * k + l];
                    y[64 * k + l] = d1 * (q & 0xF) - min1;
                    y[64 * k + 32 + l] = d2 * (q >> 4) - min2;
                }
            }
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ4_K>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ4_K b = bs[i];
            var scales = new ReadOnlySpan<byte>(b.Scales, 12);
            double d = (double)b.D, dmin = (double)b.DMin;
            var y = dst.Slice(i * BlockQ4_K.Elements, BlockQ4_K.Elements);
            for (int k = 0; k < 4; k++)
            {
                QuantSearch.GetScaleMinK4(2 * k, scales, out byte sc1, out byte m1);
                QuantSearch.GetScaleMinK4(2 * k + 1, scales, out byte sc2, out byte m2);
                for (int l = 0; l < 32; l++)
                {
                    byte q = b.Qs[32 * k + l];
                    y[64 * k + l] = d * sc1 * (q & 0xF) - dmin * m1;
                    y[64 * k + 32 + l] = d * sc2 * (q >> 4) - dmin * m2;
                }
            }
        }
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ4_K>(blocks);
        Span<byte> levels = stackalloc byte[256];
        for (int i = 0; i < bs.Length; i++)
        {
            ref BlockQ4_K b = ref bs[i];
            var x = src.Slice(i * BlockQ4_K.Elements, BlockQ4_K.Elements);
            var packed = MemoryMarshal.CreateSpan(ref b.Scales[0], 12);
            KQuantScales.QuantizeSuperBlock(x, nmax: 15, rmin: -1f, rdelta: 0.1f, nstep: 20, levels, packed, out ushort d, out ushort dmin);
            b.D = BitConverter.UInt16BitsToHalf(d);
            b.DMin = BitConverter.UInt16BitsToHalf(dmin);
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    b.Qs[32 * k + l] = (byte)(levels[64 * k + l] | (levels[64 * k + 32 + l] << 4));
        }
    }
}

/// <summary>The part of quantize_row_q4_K_ref and quantize_row_q5_K_ref they share: per sub-block of 32 a
/// make_qkx2_quants search weighted by rms(x) + |x|, the scales and mins quantized to 6 bits against the
/// largest of each (super-block d = max_scale/63, dmin = max_min/63), then every weight re-levelled against
/// the rounded scale and min.</summary>
internal static class KQuantScales
{
    public static void QuantizeSuperBlock(ReadOnlySpan<float> x, int nmax, float rmin, float rdelta, int nstep,
        Span<byte> levels, Span<byte> packedScales, out ushort dBits, out ushort dminBits)
    {
        Span<float> scales = stackalloc float[8];
        Span<float> mins = stackalloc float[8];
        Span<float> weights = stackalloc float[32];
        Span<byte> scratch = stackalloc byte[32];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            var xs = x.Slice(32 * j, 32);
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += xs[l] * xs[l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xs[l]);
            scales[j] = QuantSearch.MakeQkx2Quants(nmax, xs, weights, levels.Slice(32 * j, 32), out mins[j], scratch, rmin, rdelta, nstep);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }

        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        Span<byte> ls = stackalloc byte[8];
        Span<byte> lm = stackalloc byte[8];
        for (int j = 0; j < 8; j++)
        {
            // ggml stores nearest_int into a uint8_t before clamping to 63: keep that truncation.
            ls[j] = Math.Min((byte)63, (byte)QuantSearch.NearestInt(invScale * scales[j]));
            lm[j] = Math.Min((byte)63, (byte)QuantSearch.NearestInt(invMin * mins[j]));
        }
        packedScales.Clear();
        QuantSearch.PackScaleMinK4(ls, lm, packedScales);
        dBits = Fp16.FromFloat(maxScale / 63f);
        dminBits = Fp16.FromFloat(maxMin / 63f);

        float d = Fp16.ToFloat(dBits), dmin = Fp16.ToFloat(dminBits);
        for (int j = 0; j < 8; j++)
        {
            QuantSearch.GetScaleMinK4(j, packedScales, out byte sc, out byte m);
            float dj = d * sc;
            if (dj == 0) continue;
            float dm = dmin * m;
            for (int l = 0; l < 32; l++)
                levels[32 * j + l] = (byte)Math.Clamp(QuantSearch.NearestInt((x[32 * j + l] + dm) / dj), 0, nmax);
        }
    }
}

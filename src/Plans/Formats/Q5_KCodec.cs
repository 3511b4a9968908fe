using System.Runtime.InteropServices;
using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>Q5_K (ggml-quants.c quantize_row_q5_K_ref, dequantize_row_q5_K): as Q4_K with q in 0..31; the
/// fifth bit of weight 64k+l is bit 2k of qh[l], of weight 64k+32+l bit 2k+1.</summary>
public readonly unsafe struct Q5_KCodec : IBlockCodec
{
    public static GgmlType Type => GgmlType.Q5_K;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ5_K>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ5_K b = bs[i];
            var scales = new ReadOnlySpan<byte>(b.Scales, 12);
            float d = (float)b.D, dmin = (float)b.DMin;
            var y = dst.Slice(i * BlockQ5_K.Elements, BlockQ5_K.Elements);
            for (int k = 0; k < 4; k++)
            {
                QuantSearch.GetScaleMinK4(2 * k, scales, out byte sc1, out byte m1);
                QuantSearch.GetScaleMinK4(2 * k + 1, scales, out byte sc2, out byte m2);
                float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
                int u1 = 1 << (2 * k), u2 = 2 << (2 * k);
                for (int l = 0; l < 32; l++)
                {
                    byte q = b.Qs[32 * k + l], h = b.Qh[l];
                    y[64 * k + l] = d1 * ((q & 0xF) + ((h & u1) != 0 ? 16 : 0)) - min1;
                    y[64 * k + 32 + l] = d2 * ((q >> 4) + ((h & u2) != 0 ? 16 : 0)) - min2;
                }
            }
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ5_K>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ5_K b = bs[i];
            var scales = new ReadOnlySpan<byte>(b.Scales, 12);
            double d = (double)b.D, dmin = (double)b.DMin;
            var y = dst.Slice(i * BlockQ5_K.Elements, BlockQ5_K.Elements);
            for (int k = 0; k < 4; k++)
            {
                QuantSearch.GetScaleMinK4(2 * k, scales, out byte sc1, out byte m1);
                QuantSearch.GetScaleMinK4(2 * k + 1, scales, out byte sc2, out byte m2);
                int u1 = 1 << (2 * k), u2 = 2 << (2 * k);
                for (int l = 0; l < 32; l++)
                {
                    byte q = b.Qs[32 * k + l], h = b.Qh[l];
                    y[64 * k + l] = d * sc1 * ((q & 0xF) + ((h & u1) != 0 ? 16 : 0)) - dmin * m1;
                    y[64 * k + 32 + l] = d * sc2 * ((q >> 4) + ((h & u2) != 0 ? 16 : 0)) - dmin * m2;
                }
            }
        }
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ5_K>(blocks);
        Span<byte> levels = stackalloc byte[256];
        for (int i = 0; i < bs.Length; i++)
        {
            ref BlockQ5_K b = ref bs[i];
            var x = src.Slice(i * BlockQ5_K.Elements, BlockQ5_K.Elements);
            var packed = MemoryMarshal.CreateSpan(ref b.Scales[0], 12);
            KQuantScales.QuantizeSuperBlock(x, nmax: 31, rmin: -0.5f, rdelta: 0.1f, nstep: 15, levels, packed, out ushort d, out ushort dmin);
            b.D = BitConverter.UInt16BitsToHalf(d);
            b.DMin = BitConverter.UInt16BitsToHalf(dmin);
            for (int l = 0; l < 32; l++) b.Qh[l] = 0;
            for (int k = 0; k < 4; k++)
            {
                byte m1 = (byte)(1 << (2 * k)), m2 = (byte)(2 << (2 * k));
                for (int l = 0; l < 32; l++)
                {
                    int l1 = levels[64 * k + l], l2 = levels[64 * k + 32 + l];
                    if (l1 > 15) { l1 -= 16; b.Qh[l] |= m1; }
                    if (l2 > 15) { l2 -= 16; b.Qh[l] |= m2; }
                    b.Qs[32 * k + l] = (byte)(l1 | (l2 << 4));
                }
            }
        }
    }
}

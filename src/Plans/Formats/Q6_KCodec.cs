using System.Runtime.InteropServices;
using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>Q6_K (ggml-quants.c quantize_row_q6_K_ref, dequantize_row_q6_K): 256 weights in 16 sub-blocks of
/// 16, weight = d·scale_s·(q − 32) with q 6 bits and scale_s an int8. Per half of 128 weights (n = 0, 1):
/// ql[64n+l] holds the low nibbles of weights 128n+l (low) and 128n+64+l (high), ql[64n+32+l] those of
/// 128n+32+l and 128n+96+l; qh[32n+l] holds the 2 high bits of the four, in that order.</summary>
public readonly unsafe struct Q6_KCodec : IBlockCodec
{
    public static GgmlType Type => GgmlType.Q6_K;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ6_K>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ6_K b = bs[i];
            float d = (float)b.D;
            var y = dst.Slice(i * BlockQ6_K.Elements, BlockQ6_K.Elements);
            for (int n = 0; n < 2; n++)
            {
                for (int l = 0; l < 32; l++)
                {
                    Unpack(ref b, n, l, out int q1, out int q2, out int q3, out int q4);
                    int s = 8 * n + l / 16;
                    y[128 * n + l] = d * b.Scales[s] * q1;
                    y[128 * n + l + 32] = d * b.Scales[s + 2] * q2;
                    y[128 * n + l + 64] = d * b.Scales[s + 4] * q3;
                    y[128 * n + l + 96] = d * b.Scales[s + 6] * q4;
                }
            }
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ6_K>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ6_K b = bs[i];
            double d = (double)b.D;
            var y = dst.Slice(i * BlockQ6_K.Elements, BlockQ6_K.Elements);
            for (int n = 0; n < 2; n++)
            {
                for (int l = 0; l < 32; l++)
                {
                    Unpack(ref b, n, l, out int q1, out int q2, out int q3, out int q4);
                    int s = 8 * n + l / 16;
                    y[128 * n + l] = d * b.Scales[s] * q1;
                    y[128 * n + l + 32] = d * b.Scales[s + 2] * q2;
                    y[128 * n + l + 64] = d * b.Scales[s + 4] * q3;
                    y[128 * n + l + 96] = d * b.Scales[s + 6] * q4;
                }
            }
        }
    }

    private static void Unpack(ref BlockQ6_K b, int n, int l, out int q1, out int q2, out int q3, out int q4)
    {
        int lo = b.Ql[64 * n + l], hi = b.Ql[64 * n + l + 32], h = b.Qh[32 * n + l];
        q1 = ((lo & 0xF) | (((h >> 0) & 3) << 4)) - 32;
        q2 = ((hi & 0xF) | (((h >> 2) & 3) << 4)) - 32;
        q3 = ((lo >> 4) | (((h >> 4) & 3) << 4)) - 32;
        q4 = ((hi >> 4) | (((h >> 6) & 3) << 4)) - 32;
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ6_K>(blocks);
        Span<sbyte> levels = stackalloc sbyte[256];
        Span<float> scales = stackalloc float[16];
        for (int i = 0; i < bs.Length; i++)
        {
            ref BlockQ6_K b = ref bs[i];
            var x = src.Slice(i * BlockQ6_K.Elements, BlockQ6_K.Elements);
            float maxScale = 0, maxAbsScale = 0;
            for (int s = 0; s < 16; s++)
            {
                float scale = QuantSearch.MakeQxQuants(32, x.Slice(16 * s, 16), levels.Slice(16 * s, 16));
                scales[s] = scale;
                if (MathF.Abs(scale) > maxAbsScale) { maxAbsScale = MathF.Abs(scale); maxScale = scale; }
            }
            if (maxAbsScale < QuantSearch.GroupMaxEps)
            {
                blocks.Slice(i * BlockQ6_K.Size, BlockQ6_K.Size).Clear();
                continue;
            }

            float iscale = -128f / maxScale;
            b.D = Fp16.ToHalf(1 / iscale);
            for (int s = 0; s < 16; s++) b.Scales[s] = (sbyte)Math.Min(127, QuantSearch.NearestInt(iscale * scales[s]));

            float dBlock = (float)b.D;
            for (int s = 0; s < 16; s++)
            {
                float d = dBlock * b.Scales[s];
                if (d == 0) continue;
                for (int l = 0; l < 16; l++)
                    levels[16 * s + l] = (sbyte)(Math.Clamp(QuantSearch.NearestInt(x[16 * s + l] / d), -32, 31) + 32);
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

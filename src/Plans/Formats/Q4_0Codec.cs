using System.Runtime.InteropServices;
using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>Q4_0 (ggml-quants.c quantize_row_q4_0_ref, dequantize_row_q4_0): per 32 weights d = max/−8 where
/// max is the value of largest magnitude (so it maps to level 0 exactly), q = min(15, trunc(x/d + 8.5)),
/// weight = d·(q − 8). Byte j holds weight j (low nibble) and weight j+16 (high nibble).</summary>
public readonly unsafe struct Q4_0Codec : IBlockCodec
{
    public static GgmlType Type => GgmlType.Q4_0;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ4_0>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ4_0 b = bs[i];
            float d = (float)b.D;
            var y = dst.Slice(i * BlockQ4_0.Elements, BlockQ4_0.Elements);
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((b.Qs[j] & 0x0F) - 8) * d;
                y[j + 16] = ((b.Qs[j] >> 4) - 8) * d;
            }
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ4_0>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ4_0 b = bs[i];
            double d = (double)b.D;
            var y = dst.Slice(i * BlockQ4_0.Elements, BlockQ4_0.Elements);
            for (int j = 0; j < 16; j++)
            {
                y[j] = ((b.Qs[j] & 0x0F) - 8) * d;
                y[j + 16] = ((b.Qs[j] >> 4) - 8) * d;
            }
        }
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ4_0>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            var x = src.Slice(i * BlockQ4_0.Elements, BlockQ4_0.Elements);
            float amax = 0, max = 0;
            foreach (float v in x)
            {
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            }
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            ref BlockQ4_0 b = ref bs[i];
            b.D = Fp16.ToHalf(d);
            for (int j = 0; j < 16; j++)
            {
                // x·id lies in [−8, 8]; +8.5 then truncation rounds half up into 0..16, clamped to 15.
                int q0 = Math.Min(15, (int)(x[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(x[j + 16] * id + 8.5f));
                b.Qs[j] = (byte)(q0 | (q1 << 4));
            }
        }
    }
}

using System.Runtime.InteropServices;
using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>Q8_0 (ggml-quants.c quantize_row_q8_0_ref, dequantize_row_q8_0): per 32 weights d = amax/127,
/// q = round(x/d) (half away from zero), weight = d·q.</summary>
public readonly unsafe struct Q8_0Codec : IBlockCodec
{
    public static GgmlType Type => GgmlType.Q8_0;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ8_0>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ8_0 b = bs[i];
            float d = (float)b.D;
            var y = dst.Slice(i * BlockQ8_0.Elements, BlockQ8_0.Elements);
            for (int j = 0; j < BlockQ8_0.Elements; j++) y[j] = b.Qs[j] * d;
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ8_0>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            BlockQ8_0 b = bs[i];
            double d = (double)b.D;
            var y = dst.Slice(i * BlockQ8_0.Elements, BlockQ8_0.Elements);
            for (int j = 0; j < BlockQ8_0.Elements; j++) y[j] = b.Qs[j] * d;
        }
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var bs = MemoryMarshal.Cast<byte, BlockQ8_0>(blocks);
        for (int i = 0; i < bs.Length; i++)
        {
            var x = src.Slice(i * BlockQ8_0.Elements, BlockQ8_0.Elements);
            float amax = 0;
            foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            ref BlockQ8_0 b = ref bs[i];
            b.D = Fp16.ToHalf(d);
            for (int j = 0; j < BlockQ8_0.Elements; j++)
                b.Qs[j] = (sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
        }
    }
}

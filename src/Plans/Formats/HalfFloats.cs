namespace Engine.Plans.Formats;

/// <summary>IEEE binary16 as ggml converts it (ggml-impl.h ggml_compute_fp32_to_fp16 / fp16_to_fp32): round to
/// nearest even, overflow to infinity, every NaN to the quiet NaN 0x7E00 with its sign. Bits, not
/// <see cref="Half"/>, so a block written here is byte-identical to one ggml writes.</summary>
public static class Fp16
{
    public static ushort FromFloat(float f)
    {
        // ggml's branch-free version: scaling by 2^112 then 2^-110 lets the FPU do the rounding (and the
        // subnormal/overflow cases); adding a power of two aligned to the target exponent leaves the half's
        // mantissa in the low bits of the sum.
        const float scaleToInf = 5.192296858534828e+33f;   // 0x1.0p+112f
        const float scaleToZero = 7.703719777548943e-34f;  // 0x1.0p-110f
        float b = MathF.Abs(f) * scaleToInf * scaleToZero;

        uint w = BitConverter.SingleToUInt32Bits(f);
        uint shl1W = w + w;
        uint sign = w & 0x80000000u;
        uint bias = shl1W & 0xFF000000u;
        if (bias < 0x71000000u) bias = 0x71000000u;

        b = BitConverter.UInt32BitsToSingle((bias >> 1) + 0x07800000u) + b;
        uint bits = BitConverter.SingleToUInt32Bits(b);
        uint expBits = (bits >> 13) & 0x00007C00u;
        uint mantissaBits = bits & 0x00000FFFu;
        uint nonSign = expBits + mantissaBits;
        return (ushort)((sign >> 16) | (shl1W > 0xFF000000u ? 0x7E00u : nonSign));
    }

    /// <summary>Exact (every binary16 value is a binary32 value).</summary>
    public static float ToFloat(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);

    public static Half ToHalf(float f) => BitConverter.UInt16BitsToHalf(FromFloat(f));
}

/// <summary>bfloat16 as ggml converts it (ggml-impl.h ggml_compute_fp32_to_bf16): the top 16 bits of the
/// float rounded to nearest even; NaN kept NaN and forced quiet; subnormals not flushed.</summary>
public static class Bf16
{
    public static ushort FromFloat(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7FFFu + ((u >> 16) & 1))) >> 16);
    }

    public static float ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);
}

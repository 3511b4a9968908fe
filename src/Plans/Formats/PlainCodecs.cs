using System.Runtime.InteropServices;
using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>F32: little-endian IEEE binary32, copied.</summary>
public readonly struct F32Codec : IBlockCodec
{
    public static GgmlType Type => GgmlType.F32;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst) =>
        MemoryMarshal.Cast<byte, float>(blocks).CopyTo(dst);

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var src = MemoryMarshal.Cast<byte, float>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = src[i];
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks) =>
        MemoryMarshal.AsBytes(src).CopyTo(blocks);
}

/// <summary>F16: IEEE binary16, converted as ggml does (<see cref="Fp16"/>).</summary>
public readonly struct F16Codec : IBlockCodec
{
    public static GgmlType Type => GgmlType.F16;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var src = MemoryMarshal.Cast<byte, ushort>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = Fp16.ToFloat(src[i]);
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var src = MemoryMarshal.Cast<byte, ushort>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = Fp16.ToFloat(src[i]);
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var dst = MemoryMarshal.Cast<byte, ushort>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = Fp16.FromFloat(src[i]);
    }
}

/// <summary>BF16: the top half of a binary32, converted as ggml does (<see cref="Bf16"/>).</summary>
public readonly struct BF16Codec : IBlockCodec
{
    public static GgmlType Type => GgmlType.BF16;

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst)
    {
        var src = MemoryMarshal.Cast<byte, ushort>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = Bf16.ToFloat(src[i]);
    }

    public static void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst)
    {
        var src = MemoryMarshal.Cast<byte, ushort>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = Bf16.ToFloat(src[i]);
    }

    public static void Quantize(ReadOnlySpan<float> src, Span<byte> blocks)
    {
        var dst = MemoryMarshal.Cast<byte, ushort>(blocks);
        for (int i = 0; i < src.Length; i++) dst[i] = Bf16.FromFloat(src[i]);
    }
}

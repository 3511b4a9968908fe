using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>The engine's one entry point to the scalar reference formats: a row of a tensor of any supported
/// <see cref="GgmlType"/> to floats or doubles, and floats to that type exactly as llama.cpp's reference
/// quantizers write it. The CPU backend has its own SIMD kernels; these are what they are tested against and
/// what the planner and <c>ntc synth</c> use.</summary>
public static class WeightFormat
{
    public static readonly GgmlType[] Supported =
        [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

    /// <summary>Dequantizes <paramref name="dst"/>.Length elements from <paramref name="src"/>, which must hold
    /// exactly their bytes (a whole number of blocks).</summary>
    public static void DequantizeRow(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        CheckRow(type, src.Length, dst.Length);
        switch (type)
        {
            case GgmlType.F32: F32Codec.Dequantize(src, dst); break;
            case GgmlType.F16: F16Codec.Dequantize(src, dst); break;
            case GgmlType.BF16: BF16Codec.Dequantize(src, dst); break;
            case GgmlType.Q8_0: Q8_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q4_0: Q4_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q4_K: Q4_KCodec.Dequantize(src, dst); break;
            case GgmlType.Q5_K: Q5_KCodec.Dequantize(src, dst); break;
            case GgmlType.Q6_K: Q6_KCodec.Dequantize(src, dst); break;
            default: throw Unsupported(type);
        }
    }

    /// <summary>Float64 reference: the block's scales and levels combined in double precision.</summary>
    public static void DequantizeRow(GgmlType type, ReadOnlySpan<byte> src, Span<double> dst)
    {
        CheckRow(type, src.Length, dst.Length);
        switch (type)
        {
            case GgmlType.F32: F32Codec.Dequantize(src, dst); break;
            case GgmlType.F16: F16Codec.Dequantize(src, dst); break;
            case GgmlType.BF16: BF16Codec.Dequantize(src, dst); break;
            case GgmlType.Q8_0: Q8_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q4_0: Q4_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q4_K: Q4_KCodec.Dequantize(src, dst); break;
            case GgmlType.Q5_K: Q5_KCodec.Dequantize(src, dst); break;
            case GgmlType.Q6_K: Q6_KCodec.Dequantize(src, dst); break;
            default: throw Unsupported(type);
        }
    }

    /// <summary>Quantizes <paramref name="src"/> (a whole number of blocks) into exactly
    /// <see cref="GgmlTypeInfo.RowBytes"/> bytes of <paramref name="dst"/>, byte-identical to ggml's
    /// quantize_row_*_ref (F16 and BF16: ggml's fp32 conversions).</summary>
    public static void QuantizeRow(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        CheckRow(type, dst.Length, src.Length);
        switch (type)
        {
            case GgmlType.F32: F32Codec.Quantize(src, dst); break;
            case GgmlType.F16: F16Codec.Quantize(src, dst); break;
            case GgmlType.BF16: BF16Codec.Quantize(src, dst); break;
            case GgmlType.Q8_0: Q8_0Codec.Quantize(src, dst); break;
            case GgmlType.Q4_0: Q4_0Codec.Quantize(src, dst); break;
            case GgmlType.Q4_K: Q4_KCodec.Quantize(src, dst); break;
            case GgmlType.Q5_K: Q5_KCodec.Quantize(src, dst); break;
            case GgmlType.Q6_K: Q6_KCodec.Quantize(src, dst); break;
            default: throw Unsupported(type);
        }
    }

    /// <summary>Dequantizes a whole tensor (rows of <paramref name="rowLength"/>), for tests and tools.</summary>
    public static float[] DequantizeTensor(GgmlType type, ReadOnlySpan<byte> data, long rowLength, long rows)
    {
        var result = new float[checked(rowLength * rows)];
        int rowBytes = checked((int)GgmlTypeInfo.RowBytes(type, rowLength));
        for (long r = 0; r < rows; r++)
            DequantizeRow(type, data.Slice(checked((int)(r * rowBytes)), rowBytes), result.AsSpan(checked((int)(r * rowLength)), (int)rowLength));
        return result;
    }

    /// <summary>Quantizes a whole tensor row by row (rows of <paramref name="rowLength"/>).</summary>
    public static byte[] QuantizeTensor(GgmlType type, ReadOnlySpan<float> data, long rowLength)
    {
        long rows = data.Length / rowLength;
        int rowBytes = checked((int)GgmlTypeInfo.RowBytes(type, rowLength));
        var result = new byte[checked(rows * rowBytes)];
        for (long r = 0; r < rows; r++)
            QuantizeRow(type, data.Slice(checked((int)(r * rowLength)), (int)rowLength), result.AsSpan(checked((int)(r * rowBytes)), rowBytes));
        return result;
    }

    private static void CheckRow(GgmlType type, int bytes, int elements)
    {
        int blockElements = GgmlTypeInfo.BlockElements(type);
        if (elements % blockElements != 0)
            throw new ArgumentException($"{type}: row of {elements} elements is not a multiple of the {blockElements}-element block");
        long expected = GgmlTypeInfo.RowBytes(type, elements);
        if (bytes != expected)
            throw new ArgumentException($"{type}: {bytes} bytes given for {elements} elements, {expected} expected");
    }

    private static NotSupportedException Unsupported(GgmlType type) => new($"no reference codec for ggml type {type}");
}

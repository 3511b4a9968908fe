using Engine.Plans.Gguf;

namespace Engine.Plans.Formats;

/// <summary>Scalar reference conversion of one weight format: a row of blocks to floats (and to doubles, the
/// float64 reference tests score kernels against), and floats to blocks as ggml's quantize_row_*_ref does.
/// Row lengths are whole blocks; <see cref="WeightFormat"/> checks them before calling in.</summary>
public interface IBlockCodec
{
    static abstract GgmlType Type { get; }

    static abstract void Dequantize(ReadOnlySpan<byte> blocks, Span<float> dst);

    static abstract void Dequantize(ReadOnlySpan<byte> blocks, Span<double> dst);

    static abstract void Quantize(ReadOnlySpan<float> src, Span<byte> blocks);
}

using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Format <typeparamref name="T"/> with f32 activations: every member is T's, except that
/// <see cref="Int8Activations"/> is false, so the GEMV families multiply T's dequantized weights with the f32 x through
/// T's <see cref="IWeightFormat.LaneX"/>/<see cref="IWeightFormat.LaneDot"/> (or <see cref="IWeightFormat.DotUnit"/>)
/// instead of its dp4a path over the 8-bit xq. This is the plan's f32 activation mode (<c>ntc plan --activations
/// f32</c>, docs/cuda-backend.md "Activation precision"): the int8 path quantizes x per block of 32, and an f32 value
/// that differs between backends in its last bit (different summation orders) can land one quantization step apart,
/// which is what kept CUDA against the CPU backend at NMSE 3e-5..9e-5 on the quantized models. The spec's
/// <c>f32act=</c> attribute generates the entry points (<c>Gemv_Q8_0_F32Act</c> …); nothing else names this type.</summary>
public struct F32Act<T> : IWeightFormat where T : struct, IWeightFormat
{
    public readonly int BlockElements => default(T).BlockElements;
    public readonly int BlockBytes => default(T).BlockBytes;
    public readonly int UnitsPerBlock => default(T).UnitsPerBlock;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) => default(T).Dequantize(data, block, index);

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock) =>
        default(T).DotUnit(data, block, unit, x, xBlock);

    public readonly int LaneElements => default(T).LaneElements;
    public readonly int LaneAlignment => default(T).LaneAlignment;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c) =>
        default(T).LaneX(x, xRow, g, out a, out c);

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c) =>
        default(T).LaneDot(data, row, g, a, c);

    /// <summary>The one difference from <typeparamref name="T"/>.</summary>
    public readonly bool Int8Activations => false;

    // The int8 members: compiled by the generic GEMV body, never reached (Int8Activations is false).
    public readonly int QLaneElements => default(T).QLaneElements;
    public readonly int QLaneLeadAlignment => default(T).QLaneLeadAlignment;
    public readonly bool QLaneOneView => default(T).QLaneOneView;
    public readonly bool QLanePairs => default(T).QLanePairs;
    public readonly bool QLaneTogether => default(T).QLaneTogether;
    public readonly bool QLaneSplit => default(T).QLaneSplit;
    public readonly bool QLaneEarly => default(T).QLaneEarly;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x) => default(T).QLaneX(xq, pairs, g, out x);

    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x) => default(T).QLaneDot(row, lead, g, x);

    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw) => default(T).QLaneLoad(row, lead, g, out raw);

    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x) => default(T).QLaneMath(row, lead, g, raw, x);
}

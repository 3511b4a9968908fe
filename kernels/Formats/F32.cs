using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>F32: one weight per "block" of 4 bytes.</summary>
public struct F32 : IWeightFormat
{
    public readonly int BlockElements => 1;
    public readonly int BlockBytes => 4;
    public readonly int UnitsPerBlock => 1;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) => Bytes.F32(data, block);

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock) =>
        Bytes.F32(data, block) * x[xBlock];

    public readonly int LaneElements => 4;
    public readonly int LaneAlignment => 16;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c)
    {
        Ld.F4(x, xRow + 4L * g, out a.A, out a.B, out a.C, out a.D);
        c = default;
    }

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c)
    {
        Ld.U4(data, row + 16L * g, out uint w0, out uint w1, out uint w2, out uint w3);
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D;
        return Interop.IntAsFloat(w0) * a0 + Interop.IntAsFloat(w1) * a1 + Interop.IntAsFloat(w2) * a2 + Interop.IntAsFloat(w3) * a3;
    }

    public readonly bool Int8Activations => false;
    public readonly int QLaneElements => 1;

    public readonly int QLaneLeadAlignment => 0;

    public readonly bool QLaneOneView => false;

    public readonly bool QLanePairs => false;

    public readonly bool QLaneTogether => false;

    public readonly bool QLaneSplit => false;

    public readonly bool QLaneEarly => false;

    /// <summary>Not reached: a float format takes the f32 lane path (<see cref="IWeightFormat.Int8Activations"/>).</summary>
    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x) => x = default;

    /// <summary>Not reached: a float format takes the f32 lane path (<see cref="IWeightFormat.Int8Activations"/>).</summary>
    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x) => 0f;

    /// <summary>Not reached: a float format takes the f32 lane path (<see cref="IWeightFormat.Int8Activations"/>).</summary>
    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw) => raw = default;

    /// <summary>Not reached: a float format takes the f32 lane path (<see cref="IWeightFormat.Int8Activations"/>).</summary>
    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x) => 0f;
}

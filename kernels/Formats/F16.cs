using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>F16 (IEEE half): one weight per 2 bytes.</summary>
public struct F16 : IWeightFormat
{
    public readonly int BlockElements => 1;
    public readonly int BlockBytes => 2;
    public readonly int UnitsPerBlock => 1;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) => Bytes.F16(data, block);

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock) =>
        Bytes.F16(data, block) * x[xBlock];

    public readonly int LaneElements => 8;
    public readonly int LaneAlignment => 16;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c)
    {
        Ld.F4(x, xRow + 8L * g, out a.A, out a.B, out a.C, out a.D);
        Ld.F4(x, xRow + 8L * g + 4, out c.A, out c.B, out c.C, out c.D);
    }

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c)
    {
        // 16 bytes = 8 weights; x in a (weights 0-3) and c (4-7).
        Ld.U4(data, row + 16L * g, out uint w0, out uint w1, out uint w2, out uint w3);
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D, b0 = c.A, b1 = c.B, b2 = c.C, b3 = c.D;
        return Ld.Half(w0 & 0xFFFF) * a0 + Ld.Half(w0 >> 16) * a1
            + Ld.Half(w1 & 0xFFFF) * a2 + Ld.Half(w1 >> 16) * a3
            + Ld.Half(w2 & 0xFFFF) * b0 + Ld.Half(w2 >> 16) * b1
            + Ld.Half(w3 & 0xFFFF) * b2 + Ld.Half(w3 >> 16) * b3;
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

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
    public readonly int Unroll => 4;

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, ArrayView<float> x, long xRow)
    {
        // 16 bytes = 8 weights; x as two 16-byte loads.
        Ld.U4(data, row + 16L * g, out uint w0, out uint w1, out uint w2, out uint w3);
        Ld.F4(x, xRow + 8L * g, out float a0, out float a1, out float a2, out float a3);
        Ld.F4(x, xRow + 8L * g + 4, out float b0, out float b1, out float b2, out float b3);
        return Ld.Half(w0 & 0xFFFF) * a0 + Ld.Half(w0 >> 16) * a1
            + Ld.Half(w1 & 0xFFFF) * a2 + Ld.Half(w1 >> 16) * a3
            + Ld.Half(w2 & 0xFFFF) * b0 + Ld.Half(w2 >> 16) * b1
            + Ld.Half(w3 & 0xFFFF) * b2 + Ld.Half(w3 >> 16) * b3;
    }
}

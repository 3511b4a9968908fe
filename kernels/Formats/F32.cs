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
}

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
}

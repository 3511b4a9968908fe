using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>BF16 (bfloat16, the upper 16 bits of an f32): one weight per 2 bytes.</summary>
public struct BF16 : IWeightFormat
{
    public readonly int BlockElements => 1;
    public readonly int BlockBytes => 2;
    public readonly int UnitsPerBlock => 1;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) => Bytes.BF16(data, block);

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock) =>
        Bytes.BF16(data, block) * x[xBlock];
}

using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Q8_0 (ggml-common.h block_q8_0, 34 bytes): f16 d, int8 qs[32]; w = d·q. A unit is 8 weights.</summary>
public struct Q8_0 : IWeightFormat
{
    public readonly int BlockElements => 32;
    public readonly int BlockBytes => 34;
    public readonly int UnitsPerBlock => 4;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) =>
        Bytes.F16(data, block) * (sbyte)data[block + 2 + index];

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        long q = block + 2 + unit * 8;
        long xi = xBlock + unit * 8;
        float sum = 0;
        for (int i = 0; i < 8; i++) sum += (sbyte)data[q + i] * x[xi + i];
        return Bytes.F16(data, block) * sum;
    }
}

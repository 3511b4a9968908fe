using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Q8_0 (ggml-common.h block_q8_0, 34 bytes): f16 d, int8 qs[32]; w = d·q. A unit is 8 weights, read as four 16-bit loads.</summary>
public struct Q8_0 : IWeightFormat
{
    public readonly int BlockElements => 32;
    public readonly int BlockBytes => 34;
    public readonly int UnitsPerBlock => 4;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) =>
        Bytes.F16(data, block) * (sbyte)data[block + 2 + index];

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        // 16-bit loads (blocks are 34 bytes: only 2-byte aligned): 5 loads instead of 10.
        long q = block + 2 + unit * 8;
        long xi = xBlock + unit * 8;
        float sum = 0;
        for (int i = 0; i < 4; i++)
        {
            int pair = Bytes.U16Aligned(data, q + 2 * i);
            sum += (sbyte)(byte)pair * x[xi + 2 * i] + (sbyte)(byte)(pair >> 8) * x[xi + 2 * i + 1];
        }
        return Bytes.F16Bits((uint)Bytes.U16Aligned(data, block)) * sum;
    }
}

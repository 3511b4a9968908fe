using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Q4_K (block_q4_K, 144 bytes): f16 d, f16 dmin, scales[12] (8 × 6-bit scale/min), qs[128]. Weights come
/// in 4 chunks of 64: chunk j uses qs[32j..32j+31], low nibbles are weights 64j+l (sub-block 2j), high nibbles
/// 64j+32+l (sub-block 2j+1); w = d·sc·q − dmin·m (dequantize_row_q4_K). A unit is 8 bytes of qs (16 weights).</summary>
public struct Q4_K : IWeightFormat
{
    public readonly int BlockElements => 256;
    public readonly int BlockBytes => 144;
    public readonly int UnitsPerBlock => 16;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index)
    {
        int j = index >> 6, l = index & 31, high = (index >> 5) & 1;
        int b = data[block + 16 + 32 * j + l];
        int q = high != 0 ? b >> 4 : b & 0xF;
        KQuants.ScaleMin(data, block + 4, 2 * j + high, out int sc, out int m);
        return Bytes.F16(data, block) * sc * q - Bytes.F16(data, block + 2) * m;
    }

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        // 32-bit loads: the block is 144 = 9·16 bytes, so with a 16-byte-aligned tensor every field below is
        // 4-aligned. 6 loads (d+dmin, 3 scale words, 2 quant words) instead of 24 byte loads.
        int j = unit >> 2, l0 = (unit & 3) * 8;
        uint dm = Bytes.U32Aligned(data, block);
        uint s0 = Bytes.U32Aligned(data, block + 4), s1 = Bytes.U32Aligned(data, block + 8), s2 = Bytes.U32Aligned(data, block + 12);
        KQuants.ScaleMin(s0, s1, s2, 2 * j, out int sc0, out int m0);
        KQuants.ScaleMin(s0, s1, s2, 2 * j + 1, out int sc1, out int m1);
        long q = block + 16 + 32 * j + l0;
        uint q0 = Bytes.U32Aligned(data, q), q1 = Bytes.U32Aligned(data, q + 4);
        long xLow = xBlock + 64 * j + l0, xHigh = xLow + 32;
        float dotLow = 0, dotHigh = 0, sumLow = 0, sumHigh = 0;
        for (int i = 0; i < 8; i++)
        {
            int b = (int)(((i < 4 ? q0 : q1) >> (8 * (i & 3))) & 0xFF);
            float a = x[xLow + i], c = x[xHigh + i];
            dotLow += (b & 0xF) * a;
            dotHigh += (b >> 4) * c;
            sumLow += a;
            sumHigh += c;
        }
        float d = Bytes.F16Bits(dm), dmin = Bytes.F16Bits(dm >> 16);
        return d * (sc0 * dotLow + sc1 * dotHigh) - dmin * (m0 * sumLow + m1 * sumHigh);
    }
}

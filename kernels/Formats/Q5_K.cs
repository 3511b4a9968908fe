using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Q5_K (block_q5_K, 176 bytes): as Q4_K (d, dmin, scales[12]) with qh[32] at 16 and qs[128] at 48; the
/// fifth bit of weight 64j+l is bit 2j of qh[l], of 64j+32+l bit 2j+1 (dequantize_row_q5_K). Unit: 16 weights.</summary>
public struct Q5_K : IWeightFormat
{
    public readonly int BlockElements => 256;
    public readonly int BlockBytes => 176;
    public readonly int UnitsPerBlock => 16;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index)
    {
        int j = index >> 6, l = index & 31, high = (index >> 5) & 1;
        int b = data[block + 48 + 32 * j + l];
        int q = (high != 0 ? b >> 4 : b & 0xF) | (((data[block + 16 + l] >> (2 * j + high)) & 1) << 4);
        KQuants.ScaleMin(data, block + 4, 2 * j + high, out int sc, out int m);
        return Bytes.F16(data, block) * sc * q - Bytes.F16(data, block + 2) * m;
    }

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        // 32-bit loads: the block is 176 = 11·16 bytes, so fields below are 4-aligned in a 16-byte-aligned tensor.
        int j = unit >> 2, l0 = (unit & 3) * 8;
        uint dm = Bytes.U32Aligned(data, block);
        uint s0 = Bytes.U32Aligned(data, block + 4), s1 = Bytes.U32Aligned(data, block + 8), s2 = Bytes.U32Aligned(data, block + 12);
        KQuants.ScaleMin(s0, s1, s2, 2 * j, out int sc0, out int m0);
        KQuants.ScaleMin(s0, s1, s2, 2 * j + 1, out int sc1, out int m1);
        long q = block + 48 + 32 * j + l0, qh = block + 16 + l0;
        uint q0 = Bytes.U32Aligned(data, q), q1 = Bytes.U32Aligned(data, q + 4);
        uint h0 = Bytes.U32Aligned(data, qh), h1 = Bytes.U32Aligned(data, qh + 4);
        long xLow = xBlock + 64 * j + l0, xHigh = xLow + 32;
        float dotLow = 0, dotHigh = 0, sumLow = 0, sumHigh = 0;
        for (int i = 0; i < 8; i++)
        {
            int shift = 8 * (i & 3);
            int b = (int)(((i < 4 ? q0 : q1) >> shift) & 0xFF);
            int h = (int)(((i < 4 ? h0 : h1) >> shift) & 0xFF) >> (2 * j);
            float a = x[xLow + i], c = x[xHigh + i];
            dotLow += ((b & 0xF) | ((h & 1) << 4)) * a;
            dotHigh += ((b >> 4) | ((h & 2) << 3)) * c;
            sumLow += a;
            sumHigh += c;
        }
        float d = Bytes.F16Bits(dm), dmin = Bytes.F16Bits(dm >> 16);
        return d * (sc0 * dotLow + sc1 * dotHigh) - dmin * (m0 * sumLow + m1 * sumHigh);
    }
}

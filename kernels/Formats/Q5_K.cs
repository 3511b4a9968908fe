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
        int j = unit >> 2, l0 = (unit & 3) * 8;
        KQuants.ScaleMin(data, block + 4, 2 * j, out int sc0, out int m0);
        KQuants.ScaleMin(data, block + 4, 2 * j + 1, out int sc1, out int m1);
        long q = block + 48 + 32 * j + l0, qh = block + 16 + l0;
        long xLow = xBlock + 64 * j + l0, xHigh = xLow + 32;
        float dotLow = 0, dotHigh = 0, sumLow = 0, sumHigh = 0;
        for (int i = 0; i < 8; i++)
        {
            int b = data[q + i], h = data[qh + i] >> (2 * j);
            float a = x[xLow + i], c = x[xHigh + i];
            dotLow += ((b & 0xF) | ((h & 1) << 4)) * a;
            dotHigh += ((b >> 4) | ((h & 2) << 3)) * c;
            sumLow += a;
            sumHigh += c;
        }
        float d = Bytes.F16(data, block), dmin = Bytes.F16(data, block + 2);
        return d * (sc0 * dotLow + sc1 * dotHigh) - dmin * (m0 * sumLow + m1 * sumHigh);
    }
}

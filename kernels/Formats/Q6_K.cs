using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Q6_K (block_q6_K, 210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d at 208.
/// Two halves of 128 weights; in half n, for l in 0..31 (is = l/16): weights 128n+l, +32, +64, +96 take low/high
/// nibbles of ql[64n+l] and ql[64n+l+32] and bit pairs 0,2,4,6 of qh[32n+l], scales 8n+is+0,2,4,6;
/// w = d·sc·(q − 32) (dequantize_row_q6_K). A unit is 4 values of l (16 weights).</summary>
public struct Q6_K : IWeightFormat
{
    public readonly int BlockElements => 256;
    public readonly int BlockBytes => 210;
    public readonly int UnitsPerBlock => 16;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index)
    {
        int n = index >> 7, quarter = (index >> 5) & 3, l = index & 31;
        int low = data[block + 64 * n + l + 32 * (quarter & 1)];
        low = quarter >= 2 ? low >> 4 : low & 0xF;
        int high = (data[block + 128 + 32 * n + l] >> (2 * quarter)) & 3;
        int sc = (sbyte)data[block + 192 + 8 * n + (l >> 4) + 2 * quarter];
        return Bytes.F16(data, block + 208) * sc * ((low | (high << 4)) - 32);
    }

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        int n = unit >> 3, l0 = (unit & 7) * 4, s = 8 * n + (l0 >> 4);
        long ql = block + 64 * n + l0, qh = block + 128 + 32 * n + l0, xi = xBlock + 128 * n + l0;
        float d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        for (int i = 0; i < 4; i++)
        {
            int a = data[ql + i], b = data[ql + 32 + i], h = data[qh + i];
            d0 += (((a & 0xF) | ((h & 3) << 4)) - 32) * x[xi + i];
            d1 += (((b & 0xF) | (((h >> 2) & 3) << 4)) - 32) * x[xi + 32 + i];
            d2 += (((a >> 4) | (((h >> 4) & 3) << 4)) - 32) * x[xi + 64 + i];
            d3 += (((b >> 4) | (((h >> 6) & 3) << 4)) - 32) * x[xi + 96 + i];
        }
        long sc = block + 192 + s;
        return Bytes.F16(data, block + 208) *
            ((sbyte)data[sc] * d0 + (sbyte)data[sc + 2] * d1 + (sbyte)data[sc + 4] * d2 + (sbyte)data[sc + 6] * d3);
    }
}

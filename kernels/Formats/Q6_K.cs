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

    public readonly int LaneElements => 8;
    public readonly int LaneAlignment => 2;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c)
    {
        Ld.F4(x, xRow + 256L * (g >> 5) + 4 * (g & 31), out a.A, out a.B, out a.C, out a.D);
        Ld.F4(x, xRow + 256L * (g >> 5) + 4 * (g & 31) + 128, out c.A, out c.B, out c.C, out c.D);
    }

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c)
    {
        // Lane unit g: block g / 32, l = g % 32, weights 4l..4l+3 of each half n (128n + 4l…): quarter q = l/8,
        // position p = 4(l%8): ql bytes 64n + p + 32(q&1) (high nibbles when q ≥ 2), qh bytes 128 + 32n + p (bits
        // 2q, 2q+1), scale 192 + 8n + p/16 + 2q. 210-byte blocks are 2-aligned: 16-bit loads.
        long block = row + (long)(g >> 5) * 210;
        int l = g & 31, qq = l >> 3, p = 4 * (l & 7);
        int lowShift = 4 * (qq >> 1), highShift = 2 * qq;
        long ql = block + p + 32 * (qq & 1), qh = block + 128 + p, sc = block + 192 + (p >> 4) + 2 * qq;
        uint l0 = Ld.U16x2(data, ql) >> lowShift, l1 = Ld.U16x2(data, ql + 64) >> lowShift;
        uint g0 = Ld.U16x2(data, qh) >> highShift, g1 = Ld.U16x2(data, qh + 32) >> highShift;
        int sc0 = Ld.SignExtend8(Ld.U16(data, sc & ~1L) >> (8 * (int)(sc & 1)));
        int sc1 = Ld.SignExtend8(Ld.U16(data, (sc + 8) & ~1L) >> (8 * (int)(sc & 1)));
        float d = Ld.Half((uint)Ld.U16(data, block + 208));
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D, c0 = c.A, c1 = c.B, c2 = c.C, c3 = c.D;
        float dot0 = Ld.Small(Q6(l0, g0, 0), 32) * a0 + Ld.Small(Q6(l0, g0, 1), 32) * a1
            + Ld.Small(Q6(l0, g0, 2), 32) * a2 + Ld.Small(Q6(l0, g0, 3), 32) * a3;
        float dot1 = Ld.Small(Q6(l1, g1, 0), 32) * c0 + Ld.Small(Q6(l1, g1, 1), 32) * c1
            + Ld.Small(Q6(l1, g1, 2), 32) * c2 + Ld.Small(Q6(l1, g1, 3), 32) * c3;
        return d * (sc0 * dot0 + sc1 * dot1);
    }

    /// <summary>6-bit quant i of a lane: low nibble of byte i of <paramref name="low"/>, two bits of byte i of
    /// <paramref name="high"/> (both already shifted into place).</summary>
    private static int Q6(uint low, uint high, int i) => (int)(((low >> (8 * i)) & 0xF) | (((high >> (8 * i)) & 3) << 4));
}

using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Formats;

/// <summary>Q6_K (block_q6_K, 210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d at 208.
/// Two halves of 128 weights; in half n, for l in 0..31 (is = l/16): weights 128n+l, +32, +64, +96 take low/high
/// nibbles of ql[64n+l] and ql[64n+l+32] and bit pairs 0,2,4,6 of qh[32n+l], scales 8n+is+0,2,4,6;
/// w = d·sc·(q − 32) (dequantize_row_q6_K). A unit is 4 values of l (16 weights).</summary>
public partial struct Q6_K : IWeightFormat
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

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c) =>
        KQuants.LaneX(x, xRow, g, out a, out c);

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

    public readonly bool Int8Activations => true;

    /// <summary>32 weights: unit g of block g / 8 is half n = i / 4 and l = 8(i % 4)..+7 (i = g % 8), the weights
    /// 128n + 32k + l for k = 0..3 (scale 8n + 2k + l/16 each).</summary>
    public readonly int QLaneElements => 32;

    /// <summary>8: rows come as 8-aligned views with their lead, so the 210-byte blocks (2-aligned) are read by aligned
    /// 32-bit words and funnel shifts (<see cref="QLaneDot"/>) instead of 16-bit loads.</summary>
    public readonly int QLaneLeadAlignment => 8;

    public readonly bool QLaneOneView => true;

    public readonly bool QLanePairs => false;

    public readonly bool QLaneTogether => false;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x)
    {
        int b = g >> 3, i = g & 7, n = i >> 2;
        // Two 64-bit bases (the unit's bytes, its four blocks' pairs), the loads at constant offsets from them.
        var q = xq.SubView(256 * b + 128 * n + 8 * (i & 3), 104).AsAligned(8);
        Ld.U2(q, 0, out x.Q0, out x.Q1);
        Ld.U2(q, 32, out x.Q2, out x.Q3);
        Ld.U2(q, 64, out x.Q4, out x.Q5);
        Ld.U2(q, 96, out x.Q6, out x.Q7);
        var p = xq.SubView(pairs + 8 * (8 * b + 4 * n), 32).AsAligned(8);
        Ld.ScaleSum(p, 0, out x.D0, out _);
        Ld.ScaleSum(p, 8, out x.D1, out _);
        Ld.ScaleSum(p, 16, out x.D2, out _);
        Ld.ScaleSum(p, 24, out x.D3, out _);
        // w = q − 32: 32·Σx over each group of 8, subtracted from its integer dot.
        const uint Ones = 0x01010101;
        x.S0 = 32 * Ld.Dp4a(Ones, x.Q0, Ld.Dp4a(Ones, x.Q1, 0));
        x.S1 = 32 * Ld.Dp4a(Ones, x.Q2, Ld.Dp4a(Ones, x.Q3, 0));
        x.S2 = 32 * Ld.Dp4a(Ones, x.Q4, Ld.Dp4a(Ones, x.Q5, 0));
        x.S3 = 32 * Ld.Dp4a(Ones, x.Q6, Ld.Dp4a(Ones, x.Q7, 0));
    }

    public readonly bool QLaneSplit => false;

    /// <summary>Not early: QLaneLoad leaves <paramref name="raw"/> empty and QLaneMath loads (with the unit's nine
    /// words held across the PDL wait the entries spilled 184–192 bytes at the 64-register cap; docs/benchmarks.md).</summary>
    public readonly bool QLaneEarly => false;

    /// <summary>Loads in <see cref="QLaneMath"/> (its unit is not split).</summary>
    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw) => raw = default;

    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x) => QLaneDot(row, lead, g, x);

    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x)
    {
        // The block starts at an even byte s of the 8-aligned view; every piece of the unit (ql, ql + 32, qh, the
        // scales) sits at a multiple of 4 from it, so all are read by aligned words from b = s rounded down to 4 and
        // joined by one funnel shift of 8·(s & 2) bits. The words come from three 64-bit bases at constant offsets
        // (one address computation a base, where a word each took its own), the third word of each ql/qh piece always
        // at +8 (inside the block; unneeded when s is 4-aligned); the scales' third word repeats the second when s is
        // 4-aligned, so no load passes the block's 210 bytes, and d is one 16-bit load.
        int s = lead + (g >> 3) * 210, i = g & 7, n = i >> 2, l = 8 * (i & 3);
        int odd = s & 2, shift = 8 * odd, b = s - odd;
        var q = row.SubView(b + 64 * n + l, 48);
        var h = row.SubView(b + 128 + 32 * n + l, 16);
        var sc = row.SubView(b + 192 + 8 * n, 8 + 2 * odd);
        uint qa0 = Ld.U32(q, 0), qa1 = Ld.U32(q, 4), qa2 = Ld.U32(q, 8);
        uint qb0 = Ld.U32(q, 32), qb1 = Ld.U32(q, 36), qb2 = Ld.U32(q, 40);
        uint qh0 = Ld.U32(h, 0), qh1 = Ld.U32(h, 4), qh2 = Ld.U32(h, 8);
        uint qs0 = Ld.U32(sc, 0), qs1 = Ld.U32(sc, 4), qs2 = Ld.U32(sc, 4 + 2 * odd);
        uint a0 = Ld.Funnel(qa0, qa1, shift), a1 = Ld.Funnel(qa1, qa2, shift);
        uint b0 = Ld.Funnel(qb0, qb1, shift), b1 = Ld.Funnel(qb1, qb2, shift);
        uint h0 = Ld.Funnel(qh0, qh1, shift), h1 = Ld.Funnel(qh1, qh2, shift);
        uint s0 = Ld.Funnel(qs0, qs1, shift), s1 = Ld.Funnel(qs1, qs2, shift);
        // Bit pair k of each qh byte moved to bits 4–5 by one shift and a mask: k = 0 (h << 4), 1 (h << 2), 2 (h),
        // 3 (h >> 2).
        const uint Low = 0x0F0F0F0F, High = 0x30303030;
        int d0 = Ld.Dp4a((a0 & Low) | ((h0 << 4) & High), x.Q0, Ld.Dp4a((a1 & Low) | ((h1 << 4) & High), x.Q1, -x.S0));
        int d1 = Ld.Dp4a((b0 & Low) | ((h0 << 2) & High), x.Q2, Ld.Dp4a((b1 & Low) | ((h1 << 2) & High), x.Q3, -x.S1));
        int d2 = Ld.Dp4a(((a0 >> 4) & Low) | (h0 & High), x.Q4, Ld.Dp4a(((a1 >> 4) & Low) | (h1 & High), x.Q5, -x.S2));
        int d3 = Ld.Dp4a(((b0 >> 4) & Low) | ((h0 >> 2) & High), x.Q6, Ld.Dp4a(((b1 >> 4) & Low) | ((h1 >> 2) & High), x.Q7, -x.S3));
        // Scales 8n + 2k + l/16 (k = 0..3): byte 2k + l/16 of the eight scale bytes of half n.
        int k = l >> 4;
        int c0 = Ld.SignedByteInt(s0, k), c1 = Ld.SignedByteInt(s0, k + 2);
        int c2 = Ld.SignedByteInt(s1, k), c3 = Ld.SignedByteInt(s1, k + 2);
        // c·d is exact as an integer (|d| ≤ 8·32·127, |c| ≤ 128: below 2^24), so one conversion a group of 8 weights.
        return Ld.Half((uint)Ld.U16(row, s + 208)) * (x.D0 * (c0 * d0) + x.D1 * (c1 * d1) + x.D2 * (c2 * d2) + x.D3 * (c3 * d3));
    }
}

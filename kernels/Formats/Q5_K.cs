using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Q5_K (block_q5_K, 176 bytes): as Q4_K (d, dmin, scales[12]) with qh[32] at 16 and qs[128] at 48; the
/// fifth bit of weight 64j+l is bit 2j of qh[l], of 64j+32+l bit 2j+1 (dequantize_row_q5_K). Unit: 16 weights.</summary>
public partial struct Q5_K : IWeightFormat
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
        KQuants.ScaleMinPair(s0, s1, s2, j, out int sc0, out int m0, out int sc1, out int m1);
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

    public readonly int LaneElements => 8;
    public readonly int LaneAlignment => 16;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c) =>
        KQuants.LaneX(x, xRow, g, out a, out c);

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c)
    {
        // Lane unit g: block b = g / 32, l = g % 32, weights 4l..4l+3 of each half h (128h + 4l…): chunk
        // j = 2h + l/16, low nibbles when l % 16 < 8, so sub-block s = 4h + l/8 and qs bytes 64h + 32(l/16) + 4(l%8).
        long block = row + (long)(g >> 5) * 176;
        int l = g & 31, k = l >> 3, shift = 4 * (k & 1);
        Ld.U4(data, block, out uint dm, out uint s0, out uint s1, out uint s2); // d, dmin, scales[12]
        long qs = block + 48 + 32 * (l >> 4) + 4 * (l & 7);
        uint q0 = Ld.U32(data, qs) >> shift, q1 = Ld.U32(data, qs + 64) >> shift;
        // Fifth bits: qh[4(l%8) + i] bit s, s = 4h + k.
        uint hq = Ld.U32(data, block + 16 + 4 * (l & 7)) >> k, h0 = hq, h1 = hq >> 4;
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D, c0 = c.A, c1 = c.B, c2 = c.C, c3 = c.D;
        KQuants.ScaleMinHalves(s0, s1, s2, k, out int sc0, out int m0, out int sc1, out int m1);
        float dot0 = Ld.Small((int)(((q0 >> 0) & 0xF) | (((h0 >> 0) & 1) << 4)), 0) * a0 + Ld.Small((int)(((q0 >> 8) & 0xF) | (((h0 >> 8) & 1) << 4)), 0) * a1 + Ld.Small((int)(((q0 >> 16) & 0xF) | (((h0 >> 16) & 1) << 4)), 0) * a2 + Ld.Small((int)(((q0 >> 24) & 0xF) | (((h0 >> 24) & 1) << 4)), 0) * a3;
        float dot1 = Ld.Small((int)(((q1 >> 0) & 0xF) | (((h1 >> 0) & 1) << 4)), 0) * c0 + Ld.Small((int)(((q1 >> 8) & 0xF) | (((h1 >> 8) & 1) << 4)), 0) * c1 + Ld.Small((int)(((q1 >> 16) & 0xF) | (((h1 >> 16) & 1) << 4)), 0) * c2 + Ld.Small((int)(((q1 >> 24) & 0xF) | (((h1 >> 24) & 1) << 4)), 0) * c3;
        float sum0 = (a0 + a1) + (a2 + a3), sum1 = (c0 + c1) + (c2 + c3);
        return Ld.Half(dm) * (sc0 * dot0 + sc1 * dot1) - Ld.Half(dm >> 16) * (m0 * sum0 + m1 * sum1);
    }

    public readonly bool Int8Activations => true;

    /// <summary>32 weights, as <see cref="Q4_K.QLaneElements"/>: qs bytes 16i..16i+15 (i = g % 8), fifth bits from
    /// qh bytes 16(i % 2)..+15, bit 2j (low nibbles) and 2j + 1 (high nibbles), j = i / 2.</summary>
    public readonly int QLaneElements => 32;

    public readonly int QLaneLeadAlignment => 0;

    public readonly bool QLaneOneView => false;

    public readonly bool QLanePairs => false;

    public readonly bool QLaneTogether => true;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x) =>
        Q4_K.UnitX(xq, pairs, g, bases: true, out x);

    /// <summary>Not split: <see cref="QLaneMath"/> gathers the header and the fifth bits by shuffles (as Q4_K's), and the
    /// lane loop's last iteration may leave lanes of a warp idle.</summary>
    public readonly bool QLaneSplit => false;

    /// <summary>Early since session 21: its unit is six words (one header word, one word of fifth bits, 16 bytes of
    /// nibbles) where the whole header and 16 bytes of fifth bits a lane made twelve, with which the q/k/v entries of the
    /// format pairs spilled 80 bytes at 64 registers (docs/benchmarks.md "Session 15"; now 8–20 bytes). 8B Q5_K_M tg128
    /// on an H200: +0.9 % early, +2.1 % with gate/up's rows together (<see cref="QLaneTogether"/>; "Session 21").</summary>
    public readonly bool QLaneEarly => true;

    /// <summary>One word of the block header in A (word g % 4, as <see cref="Q4_K.QLaneLoad"/>), one word of the 32 bytes
    /// of fifth bits in B (word g % 8: the block's eight units hold all eight) and the unit's 16 bytes of nibbles (E–H).
    /// <see cref="QLaneMath"/> gathers the header and the unit's four words of fifth bits by shuffles, so the unit's eight
    /// lanes must take consecutive units together (the one-unit-a-lane paths).</summary>
    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw)
    {
        raw = default;
        int block = (g >> 3) * 176, i = g & 7;
        raw.A = Ld.U32(row, block + 4 * (i & 3));
        raw.B = Ld.U32(row, block + 16 + 4 * i);
        Ld.U4(row, block + 48 + 16 * i, out raw.E, out raw.F, out raw.G, out raw.H);
    }

    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x)
    {
        // Lane b + k of the unit's eight holds fifth-bit word k (k < 8); unit i reads words 4(i % 2) … 4(i % 2) + 3.
        int b = Warp.LaneIdx & ~7, h = b + 4 * (g & 1);
        KQuants.GatherHeader(raw.A, b, out uint dm, out uint s0, out uint s1, out uint s2);
        uint h0 = Warp.Shuffle(raw.B, h), h1 = Warp.Shuffle(raw.B, h + 1);
        uint h2 = Warp.Shuffle(raw.B, h + 2), h3 = Warp.Shuffle(raw.B, h + 3);
        return UnitDot((g & 7) >> 1, dm, s0, s1, s2, raw.E, raw.F, raw.G, raw.H, h0, h1, h2, h3, x);
    }

    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x)
    {
        int block = (g >> 3) * 176, i = g & 7;
        Ld.U4(row, block, out uint dm, out uint s0, out uint s1, out uint s2);
        Ld.U4(row, block + 48 + 16 * i, out uint w0, out uint w1, out uint w2, out uint w3);
        Ld.U4(row, block + 16 + 16 * (i & 1), out uint h0, out uint h1, out uint h2, out uint h3);
        return UnitDot(i >> 1, dm, s0, s1, s2, w0, w1, w2, w3, h0, h1, h2, h3, x);
    }

    /// <summary>A unit's dot from its words: header dm, s0–s2, nibbles w0–w3 of chunk j and fifth bits h0–h3.</summary>
    private static float UnitDot(int j, uint dm, uint s0, uint s1, uint s2, uint w0, uint w1, uint w2, uint w3,
        uint h0, uint h1, uint h2, uint h3, XLane x)
    {
        const uint Low = 0x0F0F0F0F, Bit = 0x01010101;
        int sl = 2 * j, sh = 2 * j + 1;
        int lo = Ld.Dp4a((w0 & Low) | (((h0 >> sl) & Bit) << 4), x.Q0, Ld.Dp4a((w1 & Low) | (((h1 >> sl) & Bit) << 4), x.Q1,
            Ld.Dp4a((w2 & Low) | (((h2 >> sl) & Bit) << 4), x.Q2, Ld.Dp4a((w3 & Low) | (((h3 >> sl) & Bit) << 4), x.Q3, 0))));
        int hi = Ld.Dp4a(((w0 >> 4) & Low) | (((h0 >> sh) & Bit) << 4), x.Q4, Ld.Dp4a(((w1 >> 4) & Low) | (((h1 >> sh) & Bit) << 4), x.Q5,
            Ld.Dp4a(((w2 >> 4) & Low) | (((h2 >> sh) & Bit) << 4), x.Q6, Ld.Dp4a(((w3 >> 4) & Low) | (((h3 >> sh) & Bit) << 4), x.Q7, 0))));
        return KQuants.SubBlockPair(dm, s0, s1, s2, j, lo, hi, x);
    }
}

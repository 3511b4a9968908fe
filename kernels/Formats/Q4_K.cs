using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Formats;

/// <summary>Q4_K (block_q4_K, 144 bytes): f16 d, f16 dmin, scales[12] (8 × 6-bit scale/min), qs[128]. Weights come
/// in 4 chunks of 64: chunk j uses qs[32j..32j+31], low nibbles are weights 64j+l (sub-block 2j), high nibbles
/// 64j+32+l (sub-block 2j+1); w = d·sc·q − dmin·m (dequantize_row_q4_K). A unit is 8 bytes of qs (16 weights).</summary>
public partial struct Q4_K : IWeightFormat
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
        KQuants.ScaleMinPair(s0, s1, s2, j, out int sc0, out int m0, out int sc1, out int m1);
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

    public readonly int LaneElements => 8;
    public readonly int LaneAlignment => 16;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c) =>
        KQuants.LaneX(x, xRow, g, out a, out c);

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c)
    {
        // Lane unit g: block b = g / 32, l = g % 32, weights 4l..4l+3 of each half h (128h + 4l…): chunk
        // j = 2h + l/16, low nibbles when l % 16 < 8, so sub-block s = 4h + l/8 and qs bytes 64h + 32(l/16) + 4(l%8).
        long block = row + (long)(g >> 5) * 144;
        int l = g & 31, k = l >> 3, shift = 4 * (k & 1);
        Ld.U4(data, block, out uint dm, out uint s0, out uint s1, out uint s2); // d, dmin, scales[12]
        long qs = block + 16 + 32 * (l >> 4) + 4 * (l & 7);
        uint q0 = Ld.U32(data, qs) >> shift, q1 = Ld.U32(data, qs + 64) >> shift;
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D, c0 = c.A, c1 = c.B, c2 = c.C, c3 = c.D;
        KQuants.ScaleMinHalves(s0, s1, s2, k, out int sc0, out int m0, out int sc1, out int m1);
        float dot0 = Ld.Small((int)((q0 >> 0) & 0xF), 0) * a0 + Ld.Small((int)((q0 >> 8) & 0xF), 0) * a1 + Ld.Small((int)((q0 >> 16) & 0xF), 0) * a2 + Ld.Small((int)((q0 >> 24) & 0xF), 0) * a3;
        float dot1 = Ld.Small((int)((q1 >> 0) & 0xF), 0) * c0 + Ld.Small((int)((q1 >> 8) & 0xF), 0) * c1 + Ld.Small((int)((q1 >> 16) & 0xF), 0) * c2 + Ld.Small((int)((q1 >> 24) & 0xF), 0) * c3;
        float sum0 = (a0 + a1) + (a2 + a3), sum1 = (c0 + c1) + (c2 + c3);
        return Ld.Half(dm) * (sc0 * dot0 + sc1 * dot1) - Ld.Half(dm >> 16) * (m0 * sum0 + m1 * sum1);
    }

    public readonly bool Int8Activations => true;

    /// <summary>32 weights: unit g is qs bytes 16i..16i+15 (i = g % 8) of block g / 8, that is chunk j = i / 2, l from
    /// 16(i % 2): low nibbles are 16 weights of sub-block 2j, high nibbles 16 of sub-block 2j + 1.</summary>
    public readonly int QLaneElements => 32;

    public readonly int QLaneLeadAlignment => 0;

    public readonly bool QLaneOneView => false;

    public readonly bool QLanePairs => false;

    public readonly bool QLaneTogether => true;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x) => UnitX(xq, pairs, g, bases: false, out x);

    /// <summary>The activations of unit g (Q4_K's and Q5_K's units take the same ones). <paramref name="bases"/>: the
    /// bytes and the pairs from one subview each at constant offsets (one address a base), else each load at its own
    /// offset. Measured per format (8B tg128, H200, docs/benchmarks.md "Session 26", every format's activations on bases
    /// against none): Q5_K_M +1.7 %, Q4_K_M −0.6 %; Q4_K_M with Q6_K's on bases and Q4_K's not is as fast as before.</summary>
    public static void UnitX(ArrayView<byte> xq, int pairs, int g, bool bases, out XLane x)
    {
        int b = g >> 3, i = g & 7, j = i >> 1;
        int xb = 256 * b + 64 * j + 16 * (i & 1);
        int s0, s1;
        if (bases)
        {
            var q = xq.SubView(xb, 48).AsAligned(16);
            Ld.U4(q, 0, out x.Q0, out x.Q1, out x.Q2, out x.Q3);
            Ld.U4(q, 32, out x.Q4, out x.Q5, out x.Q6, out x.Q7);
            var ps = xq.SubView(pairs + 8 * (8 * b + 2 * j), 16).AsAligned(8);
            Ld.ScaleSum(ps, 0, out x.D0, out s0);
            Ld.ScaleSum(ps, 8, out x.D1, out s1);
        }
        else
        {
            Ld.U4(xq, xb, out x.Q0, out x.Q1, out x.Q2, out x.Q3);
            Ld.U4(xq, xb + 32, out x.Q4, out x.Q5, out x.Q6, out x.Q7);
            Ld.ScaleSum(xq, pairs + 8 * (8 * b + 2 * j), out x.D0, out s0);
            Ld.ScaleSum(xq, pairs + 8 * (8 * b + 2 * j + 1), out x.D1, out s1);
        }
        // The −dmin·m·Σx term of each sub-block, taken by the unit holding its first half.
        bool first = (i & 1) == 0;
        x.D2 = first ? x.D0 * s0 : 0f;
        x.D3 = first ? x.D1 * s1 : 0f;
        x.S0 = 0; x.S1 = 0; x.S2 = 0; x.S3 = 0;
    }

    /// <summary>Not split: split (header and nibbles loaded for the four rows first) it was 5.5 → 5.7 µs at 4096 × 4096
    /// and 25.5 → 25.2 µs for gate/up (docs/benchmarks.md), no gain over a layer; split with the shuffled header below
    /// (8B tg128, H200, session 21) it lost 0.7 %. It must not split as it is: <see cref="QLaneMath"/> gathers the header
    /// by shuffles, and the lane loop's last iteration may leave lanes of a warp idle.</summary>
    public readonly bool QLaneSplit => false;

    public readonly bool QLaneEarly => true;

    /// <summary>One word of the block header in A (word g % 4: d and dmin, or one of the three scale words; the block's
    /// eight units hold all four, each twice) and the unit's 16 bytes of nibbles (E–H): five words held where the whole
    /// header was eight, so gate/up can hold gate's and up's four rows at once (<see cref="QLaneTogether"/>; with the
    /// whole header a lane it spilled 32 bytes at its cap of 72 and lost 0.3 %, docs/benchmarks.md "Session 21").
    /// <see cref="QLaneMath"/> gathers the header by shuffles, so the unit's eight lanes must take consecutive units
    /// together (the one-unit-a-lane paths, where g is the thread's index in its group).</summary>
    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw)
    {
        raw = default;
        int block = (g >> 3) * 144, i = g & 7;
        raw.A = Ld.U32(row, block + 4 * (i & 3));
        Ld.U4(row, block + 16 + 16 * i, out raw.E, out raw.F, out raw.G, out raw.H);
    }

    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x)
    {
        KQuants.GatherHeader(raw.A, Warp.LaneIdx & ~7, out uint dm, out uint s0, out uint s1, out uint s2);
        return UnitDot((g & 7) >> 1, dm, s0, s1, s2, raw.E, raw.F, raw.G, raw.H, x);
    }

    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x)
    {
        int block = (g >> 3) * 144, i = g & 7, j = i >> 1;
        Ld.U4(row, block, out uint dm, out uint s0, out uint s1, out uint s2);
        Ld.U4(row, block + 16 + 16 * i, out uint w0, out uint w1, out uint w2, out uint w3);
        return UnitDot(j, dm, s0, s1, s2, w0, w1, w2, w3, x);
    }

    /// <summary>A unit's dot from its words: header dm, s0–s2 and nibbles w0–w3 of chunk j.</summary>
    private static float UnitDot(int j, uint dm, uint s0, uint s1, uint s2, uint w0, uint w1, uint w2, uint w3, XLane x)
    {
        const uint Low = 0x0F0F0F0F;
        int lo = Ld.Dp4a(w0 & Low, x.Q0, Ld.Dp4a(w1 & Low, x.Q1, Ld.Dp4a(w2 & Low, x.Q2, Ld.Dp4a(w3 & Low, x.Q3, 0))));
        int hi = Ld.Dp4a((w0 >> 4) & Low, x.Q4, Ld.Dp4a((w1 >> 4) & Low, x.Q5, Ld.Dp4a((w2 >> 4) & Low, x.Q6, Ld.Dp4a((w3 >> 4) & Low, x.Q7, 0))));
        return KQuants.SubBlockPair(dm, s0, s1, s2, j, lo, hi, x);
    }
}

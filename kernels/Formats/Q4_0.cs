using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Formats;

/// <summary>Q4_0 (block_q4_0, 18 bytes): f16 d, qs[16]; weight j (low nibble of qs[j]) and j+16 (high nibble);
/// w = d·(q − 8). A unit is 4 bytes of qs: weights 4u..4u+3 and 4u+16..4u+19.</summary>
public partial struct Q4_0 : IWeightFormat
{
    public readonly int BlockElements => 32;
    public readonly int BlockBytes => 18;
    public readonly int UnitsPerBlock => 4;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index)
    {
        int b = data[block + 2 + (index & 15)];
        int q = index < 16 ? b & 0xF : b >> 4;
        return Bytes.F16(data, block) * (q - 8);
    }

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        long q = block + 2 + unit * 4;
        long xi = xBlock + unit * 4;
        float sum = 0;
        for (int i = 0; i < 4; i++)
        {
            int b = data[q + i];
            sum += ((b & 0xF) - 8) * x[xi + i] + ((b >> 4) - 8) * x[xi + 16 + i];
        }
        return Bytes.F16(data, block) * sum;
    }

    public readonly int LaneElements => 4;
    public readonly int LaneAlignment => 2;

    public readonly void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c)
    {
        Ld.F4(x, xRow + 4L * g, out a.A, out a.B, out a.C, out a.D);
        c = default;
    }

    public readonly float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c)
    {
        // Lane unit g: weights 4p..4p+3 (p = g % 8) of block g / 8: low nibbles of qs[4p..] for p < 4, high nibbles
        // of qs[4(p-4)..] for p ≥ 4.
        long block = row + (long)(g >> 3) * 18;
        int p = g & 7;
        uint q = Ld.U16x2(data, block + 2 + 4 * (p & 3)) >> (4 * (p >> 2));
        float d = Ld.Half((uint)Ld.U16(data, block));
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D;
        return d * (Ld.Small((int)(q & 0xF), 8) * a0 + Ld.Small((int)((q >> 8) & 0xF), 8) * a1
            + Ld.Small((int)((q >> 16) & 0xF), 8) * a2 + Ld.Small((int)((q >> 24) & 0xF), 8) * a3);
    }

    public readonly bool Int8Activations => true;

    /// <summary>A whole block: unit g is block g (32 weights); qs word i holds weights 4i..4i+3 (low nibbles) and
    /// 16+4i..16+4i+3 (high nibbles).</summary>
    public readonly int QLaneElements => 32;

    public readonly int QLaneLeadAlignment => 4;

    public readonly bool QLaneOneView => true;

    public readonly bool QLanePairs => true;

    public readonly bool QLaneTogether => true;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x)
    {
        x = default;
        var q = xq.SubView(32 * g, 32).AsAligned(16);
        Ld.U4(q, 0, out x.Q0, out x.Q1, out x.Q2, out x.Q3);
        Ld.U4(q, 16, out x.Q4, out x.Q5, out x.Q6, out x.Q7);
        Ld.ScaleSum(xq, pairs + 8 * g, out x.D0, out int sum);
        x.S0 = 8 * sum;   // w = q − 8: the block's −8·Σq_x
    }

    /// <summary>Not split (it takes two units an iteration, <see cref="QLanePairs"/>).</summary>
    public readonly bool QLaneSplit => false;

    public readonly bool QLaneEarly => true;

    /// <summary>d (A) and the 16 bytes of nibbles (B–E), loaded as <see cref="QLaneDot"/> does.</summary>
    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw)
    {
        raw = default;
        Ld.Block2Aligned4(row, lead + 18 * g, out raw.A, out raw.B, out raw.C, out raw.D, out raw.E);
    }

    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x) =>
        UnitDot(raw.A, raw.B, raw.C, raw.D, raw.E, x);

    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x)
    {
        // As Q8_0: four aligned 32-bit loads and one 16-bit load per 18-byte block (Ld.Block2Aligned4).
        Ld.Block2Aligned4(row, lead + 18 * g, out uint d, out uint q0, out uint q1, out uint q2, out uint q3);
        return UnitDot(d, q0, q1, q2, q3, x);
    }

    /// <summary>A unit's dot from its words: d and the nibbles q0–q3.</summary>
    private static float UnitDot(uint d, uint q0, uint q1, uint q2, uint q3, XLane x)
    {
        const uint Low = 0x0F0F0F0F;
        int dot = Ld.Dp4a(q0 & Low, x.Q0, Ld.Dp4a(q1 & Low, x.Q1, Ld.Dp4a(q2 & Low, x.Q2, Ld.Dp4a(q3 & Low, x.Q3,
            Ld.Dp4a((q0 >> 4) & Low, x.Q4, Ld.Dp4a((q1 >> 4) & Low, x.Q5, Ld.Dp4a((q2 >> 4) & Low, x.Q6,
            Ld.Dp4a((q3 >> 4) & Low, x.Q7, -x.S0))))))));
        return Ld.Half(d) * x.D0 * dot;
    }
}

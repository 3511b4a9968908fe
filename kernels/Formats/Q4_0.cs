using ILGPU;

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

    /// <summary>8 weights: unit g is qs word i = g % 4 of block g / 4, its low nibbles weights 4i..4i+3 and its high
    /// nibbles 16+4i..16+4i+3.</summary>
    public readonly int QLaneElements => 8;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x)
    {
        x = default;
        int xb = 32 * (g >> 2) + 4 * (g & 3);
        x.Q0 = Ld.U32(xq, xb);
        x.Q1 = Ld.U32(xq, xb + 16);
        Ld.ScaleSum(xq, pairs + 8 * (g >> 2), out x.D0, out int sum);
        x.S0 = (g & 3) == 0 ? 8 * sum : 0;   // w = q − 8: the block's −8·Σq_x, taken once per block
    }

    public readonly float QLaneDot(ArrayView<byte> row, int g, XLane x)
    {
        int block = (g >> 2) * 18;
        uint q = Ld.U16x2(row, block + 2 + 4 * (g & 3));
        int dot = Ld.Dp4a(q & 0x0F0F0F0F, x.Q0, Ld.Dp4a((q >> 4) & 0x0F0F0F0F, x.Q1, -x.S0));
        return Ld.Half((uint)Ld.U16(row, block)) * x.D0 * dot;
    }
}

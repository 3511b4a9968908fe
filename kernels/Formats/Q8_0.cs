using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Formats;

/// <summary>Q8_0 (ggml-common.h block_q8_0, 34 bytes): f16 d, int8 qs[32]; w = d·q. A unit is 8 weights, read as four 16-bit loads.</summary>
public partial struct Q8_0 : IWeightFormat
{
    public readonly int BlockElements => 32;
    public readonly int BlockBytes => 34;
    public readonly int UnitsPerBlock => 4;

    public readonly float Dequantize(ArrayView<byte> data, long block, int index) =>
        Bytes.F16(data, block) * (sbyte)data[block + 2 + index];

    public readonly float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock)
    {
        // 16-bit loads (blocks are 34 bytes: only 2-byte aligned): 5 loads instead of 10.
        long q = block + 2 + unit * 8;
        long xi = xBlock + unit * 8;
        float sum = 0;
        for (int i = 0; i < 4; i++)
        {
            // Sign extension by shifts: ILGPU 1.5.3 folds (sbyte)(byte)pair into an unsigned conversion on the
            // PTX backend (cvt.rn.f32.u8), which made every negative weight +256 on the GPU.
            int pair = Bytes.U16Aligned(data, q + 2 * i);
            sum += Ld.SignExtend8(pair) * x[xi + 2 * i] + Ld.SignExtend8(pair >> 8) * x[xi + 2 * i + 1];
        }
        return Bytes.F16Bits((uint)Bytes.U16Aligned(data, block)) * sum;
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
        // Lane unit g: weights 4p..4p+3 (p = g % 8) of block g / 8; 8 lanes share a block's scale.
        long block = row + (long)(g >> 3) * 34;
        uint q = Ld.U16x2(data, block + 2 + 4 * (g & 7));
        float d = Ld.Half((uint)Ld.U16(data, block));
        float a0 = a.A, a1 = a.B, a2 = a.C, a3 = a.D;
        return d * (Ld.SignedByte(q, 0) * a0 + Ld.SignedByte(q, 1) * a1 + Ld.SignedByte(q, 2) * a2 + Ld.SignedByte(q, 3) * a3);
    }

    public readonly bool Int8Activations => true;

    /// <summary>A whole block: unit g is block g (32 weights), multiplied with its activation block.</summary>
    public readonly int QLaneElements => 32;

    public readonly int QLaneLeadAlignment => 4;

    public readonly bool QLaneOneView => false;

    public readonly bool QLanePairs => false;

    public readonly bool QLaneTogether => false;

    public readonly void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x)
    {
        x = default;
        var q = xq.SubView(32 * g, 32).AsAligned(16);
        Ld.U4(q, 0, out x.Q0, out x.Q1, out x.Q2, out x.Q3);
        Ld.U4(q, 16, out x.Q4, out x.Q5, out x.Q6, out x.Q7);
        Ld.ScaleSum(xq, pairs + 8 * g, out x.D0, out _);
    }

    /// <summary>Split: d and the 32 bytes of block g loaded for the four rows before their dp4a (Gemv_Q8_0 4096 × 14336
    /// 24.1 → 23.6 µs, gate/up 43.0 → 42.3 µs; docs/benchmarks.md).</summary>
    public readonly bool QLaneSplit => true;

    public readonly bool QLaneEarly => true;

    /// <summary>d (A) and the 32 bytes of block g (B–I).</summary>
    public readonly void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw) =>
        // Block g starts at a 4-aligned byte (its qs two bytes off) or 2 past one (d in the aligned word's high half,
        // qs aligned): eight aligned 32-bit loads and one 16-bit load cover it either way (Ld.Block2Aligned), instead
        // of the seventeen 16-bit loads the 2-byte alignment of 34-byte blocks would take.
        Ld.Block2Aligned8(row, lead + 34 * g, out raw.A, out raw.B, out raw.C, out raw.D, out raw.E,
            out raw.F, out raw.G, out raw.H, out raw.I);

    public readonly float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x)
    {
        int dot = Ld.Dp4a(raw.B, x.Q0, Ld.Dp4a(raw.C, x.Q1, Ld.Dp4a(raw.D, x.Q2, Ld.Dp4a(raw.E, x.Q3,
            Ld.Dp4a(raw.F, x.Q4, Ld.Dp4a(raw.G, x.Q5, Ld.Dp4a(raw.H, x.Q6, Ld.Dp4a(raw.I, x.Q7, 0))))))));
        return Ld.Half(raw.A) * x.D0 * dot;
    }

    public readonly float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x)
    {
        QLaneLoad(row, lead, g, out var raw);
        return QLaneMath(row, lead, g, raw, x);
    }
}

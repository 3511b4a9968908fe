using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>A quantized weight format as the tiled GEMM (<see cref="Gemm"/>) sees it: a row is a sequence of
/// 32-weight groups (one per block of the quantized activations, <see cref="Quantize"/>); each group unpacks to 32
/// signed int8 weights q and a float scale (two for <see cref="SplitScales"/>: one per 16 weights) and a float min,
/// with w = scale·q − min. Then Σ w·x over the group, x = dx·qx, is dx·(scale·Σ q·qx) − min·(dx·Σ qx): the first
/// product is the tensor-core mma, the second uses the activation block's Σq (docs/kernels.md "Tiled GEMM").
/// <paramref name="row"/> arguments are subviews of one weight row (16-byte aligned for Q4_K/Q5_K, 2 for the
/// others: GGUF blocks are only 2-byte aligned).</summary>
public interface IInt8Tiles
{
    /// <summary>True for Q6_K, whose scales cover 16 weights: the GEMM multiplies each half of a group separately
    /// (mma m16n8k16) and scales each by its own scale.</summary>
    bool SplitScales { get; }

    /// <summary>True for the formats with a min term (Q4_K, Q5_K: w = d·sc·q − dmin·m); the others skip it.</summary>
    bool HasMin { get; }

    /// <summary>Which fragments the GEMM reads from its shared tiles by ldmatrix (1: the weights' A, 2: the
    /// activations' B, 3: both) instead of 32-bit shared loads (<see cref="Gemm"/>'s Products): 3 for Q5_K, 1 for the
    /// others. Measured (8B pp512, H200, two rounds, tokens equal): session 22 read both for Q8_0 and Q4_0 (+2.8 % and
    /// +4.5–5.9 %; uncapped, ptxas gave Q8_0 139 registers and it lost 16 %), and the K-quant entries, which spilled
    /// at the 128-register cap, lost with it (Q4_K_M and Q5_K_M −68 to −71 % with both). Session 23
    /// (docs/benchmarks.md "Session 23"): with their scales loaded late (<see cref="LateScales"/>) the K-quants fit and
    /// gain, Q4_K_M +4.4 % with A alone (+4.3 % both, +2.6 % B alone), Q5_K_M +3.1 % with both (+2.8 % A, +2.5 % B), an
    /// all-Q6_K file +2.3 % with A alone (+1.6 % both without late scales, −9 % both with them: 620 bytes of spills in
    /// the q/k/v entry); and A alone took Q8_0's and Q4_0's last spills (8–32 bytes) away: +0.65 % and +0.9 % against
    /// both (B alone −1.8 % and +0.3 %).</summary>
    int MatrixLoads { get; }

    /// <summary>True where the GEMM loads a stage's weight scales (and mins) just before it stores them to shared
    /// memory, after the previous stage's products, instead of with the weights a stage ahead (<see cref="Gemm"/>'s
    /// Accumulate), so they are not held across the products: the K-quants. Measured (8B pp512, H200, two rounds,
    /// tokens and logits equal; docs/benchmarks.md "Session 23"): Q4_K's and Q5_K's entries no longer spill at the
    /// 128-register cap (60–76 and 68–128 bytes before), Q4_K_M +1.9 %, Q5_K_M +3.2 %, and they could take ldmatrix
    /// (<see cref="MatrixLoads"/>); Q6_K's alone lost 0.8 % (28 → 16 bytes of spills), with ldmatrix for A it gains.</summary>
    bool LateScales { get; }

    /// <summary>Weights 8·<paramref name="part"/> … 8·part + 7 (part 0..3) of 32-group <paramref name="group"/> of
    /// the row as 8 signed bytes, little-endian: <paramref name="lo"/> weights 0..3 of the part, <paramref name="hi"/> 4..7.</summary>
    void Weights8(ArrayView<byte> row, int group, int part, out uint lo, out uint hi);

    /// <summary>The scale(s) and min of 32-group <paramref name="group"/> of the row (<paramref name="scaleHi"/> =
    /// <paramref name="scale"/> unless <see cref="SplitScales"/>; <paramref name="min"/> 0 unless <see cref="HasMin"/>).</summary>
    void Scales(ArrayView<byte> row, int group, out float scale, out float scaleHi, out float min);
}

/// <summary>Byte-parallel helpers for the unpackers.</summary>
public static class Int8Bytes
{
    /// <summary>Four 4-bit values (one in each byte's low nibble) minus 8, as signed bytes: v = n ^ 8 is n − 8 in 4-bit
    /// two's complement; its sign bit (8) times 0x1E is 0xF0, the sign extension (no carry between bytes).</summary>
    public static uint Nibbles8(uint n)
    {
        uint v = (n ^ 0x08080808u) & 0x0F0F0F0Fu;
        return v | ((v & 0x08080808u) * 0x1Eu);
    }

    /// <summary>Four 6-bit values (one a byte) minus 32, as signed bytes (the same trick: sign bit 0x20 times 6 = 0xC0).</summary>
    public static uint Sixes32(uint n)
    {
        uint v = (n ^ 0x20202020u) & 0x3F3F3F3Fu;
        return v | ((v & 0x20202020u) * 0x06u);
    }
}

public partial struct Q8_0 : IInt8Tiles
{
    public readonly bool LateScales => false;
    public readonly int MatrixLoads => 1;
    public readonly bool SplitScales => false;
    public readonly bool HasMin => false;

    public readonly void Weights8(ArrayView<byte> row, int group, int part, out uint lo, out uint hi)
    {
        int q = group * 34 + 2 + 8 * part;
        lo = Ld.U16x2(row, q);
        hi = Ld.U16x2(row, q + 4);
    }

    public readonly void Scales(ArrayView<byte> row, int group, out float scale, out float scaleHi, out float min)
    {
        scale = Ld.Half((uint)Ld.U16(row, group * 34));
        scaleHi = scale;
        min = 0;
    }
}

public partial struct Q4_0 : IInt8Tiles
{
    public readonly bool LateScales => false;
    public readonly int MatrixLoads => 1;
    public readonly bool SplitScales => false;
    public readonly bool HasMin => false;

    /// <summary>Parts 0, 1: low nibbles of qs[8p..8p+7]; parts 2, 3: high nibbles of qs[8(p−2)..]; w = d·(n − 8).</summary>
    public readonly void Weights8(ArrayView<byte> row, int group, int part, out uint lo, out uint hi)
    {
        int q = group * 18 + 2 + 8 * (part & 1), shift = 4 * (part >> 1);
        lo = Int8Bytes.Nibbles8(Ld.U16x2(row, q) >> shift);
        hi = Int8Bytes.Nibbles8(Ld.U16x2(row, q + 4) >> shift);
    }

    public readonly void Scales(ArrayView<byte> row, int group, out float scale, out float scaleHi, out float min)
    {
        scale = Ld.Half((uint)Ld.U16(row, group * 18));
        scaleHi = scale;
        min = 0;
    }
}

public partial struct Q4_K : IInt8Tiles
{
    public readonly bool LateScales => true;
    public readonly int MatrixLoads => 1;
    public readonly bool SplitScales => false;
    public readonly bool HasMin => true;

    /// <summary>Group s of block b (s = group % 8) is sub-block s: qs[32(s/2) + l], low nibbles for even s, high for
    /// odd; a part is 8 bytes at an 8-aligned offset (144-byte blocks of a 16-byte aligned row).</summary>
    public readonly void Weights8(ArrayView<byte> row, int group, int part, out uint lo, out uint hi)
    {
        int s = group & 7;
        Ld.U2(row, (group >> 3) * 144 + 16 + 32 * (s >> 1) + 8 * part, out uint a, out uint b);
        int shift = 4 * (s & 1);
        lo = (a >> shift) & 0x0F0F0F0Fu;
        hi = (b >> shift) & 0x0F0F0F0Fu;
    }

    public readonly void Scales(ArrayView<byte> row, int group, out float scale, out float scaleHi, out float min)
    {
        KQuants.GroupScaleMin(row, (group >> 3) * 144, group & 7, out scale, out min);
        scaleHi = scale;
    }
}

public partial struct Q5_K : IInt8Tiles
{
    public readonly bool LateScales => true;
    public readonly int MatrixLoads => 3;
    public readonly bool SplitScales => false;
    public readonly bool HasMin => true;

    /// <summary>As Q4_K (qs at 48) with the fifth bit of weight l of sub-block s from bit s of qh[l] (qh at 16).</summary>
    public readonly void Weights8(ArrayView<byte> row, int group, int part, out uint lo, out uint hi)
    {
        int s = group & 7, block = (group >> 3) * 176;
        Ld.U2(row, block + 48 + 32 * (s >> 1) + 8 * part, out uint a, out uint b);
        Ld.U2(row, block + 16 + 8 * part, out uint ha, out uint hb);
        int shift = 4 * (s & 1);
        lo = ((a >> shift) & 0x0F0F0F0Fu) | (((ha >> s) & 0x01010101u) << 4);
        hi = ((b >> shift) & 0x0F0F0F0Fu) | (((hb >> s) & 0x01010101u) << 4);
    }

    public readonly void Scales(ArrayView<byte> row, int group, out float scale, out float scaleHi, out float min)
    {
        KQuants.GroupScaleMin(row, (group >> 3) * 176, group & 7, out scale, out min);
        scaleHi = scale;
    }
}

public partial struct Q6_K : IInt8Tiles
{
    public readonly bool LateScales => true;
    public readonly int MatrixLoads => 1;
    public readonly bool SplitScales => true;
    public readonly bool HasMin => false;

    /// <summary>Group s = 4n + k of a block (half n, quarter k) is weights 128n + 32k + l: low 4 bits from
    /// ql[64n + 32(k&amp;1) + l] (high nibble when k ≥ 2), high 2 bits from qh[32n + l] bits 2k, 2k+1; w = d·sc·(q − 32).
    /// 210-byte blocks are 2-aligned: 16-bit loads.</summary>
    public readonly void Weights8(ArrayView<byte> row, int group, int part, out uint lo, out uint hi)
    {
        int s = group & 7, n = s >> 2, k = s & 3, block = (group >> 3) * 210;
        int ql = block + 64 * n + 32 * (k & 1) + 8 * part, qh = block + 128 + 32 * n + 8 * part;
        int lowShift = 4 * (k >> 1), highShift = 2 * k;
        uint l0 = (Ld.U16x2(row, ql) >> lowShift) & 0x0F0F0F0Fu, l1 = (Ld.U16x2(row, ql + 4) >> lowShift) & 0x0F0F0F0Fu;
        uint h0 = (Ld.U16x2(row, qh) >> highShift) & 0x03030303u, h1 = (Ld.U16x2(row, qh + 4) >> highShift) & 0x03030303u;
        lo = Int8Bytes.Sixes32(l0 | (h0 << 4));
        hi = Int8Bytes.Sixes32(l1 | (h1 << 4));
    }

    /// <summary>Scales 8n + 2k (weights l &lt; 16) and 8n + 2k + 1 (l ≥ 16): one 16-bit load at an even offset.</summary>
    public readonly void Scales(ArrayView<byte> row, int group, out float scale, out float scaleHi, out float min)
    {
        int s = group & 7, block = (group >> 3) * 210;
        int pair = Ld.U16(row, block + 192 + 8 * (s >> 2) + 2 * (s & 3));
        float d = Ld.Half((uint)Ld.U16(row, block + 208));
        scale = d * Ld.SignExtend8(pair);
        scaleHi = d * Ld.SignExtend8(pair >> 8);
        min = 0;
    }
}

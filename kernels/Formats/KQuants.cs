using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Helpers shared by the K-quant formats (ggml-quants.c).</summary>
public static class KQuants
{
    /// <summary>get_scale_min_k4: 6-bit scale and min of sub-block <paramref name="j"/> (0..7) packed in the 12
    /// bytes at <paramref name="scales"/>.</summary>
    public static void ScaleMin(ArrayView<byte> data, long scales, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = data[scales + j] & 63;
            min = data[scales + j + 4] & 63;
        }
        else
        {
            scale = (data[scales + j + 4] & 0xF) | ((data[scales + j - 4] >> 6) << 4);
            min = (data[scales + j + 4] >> 4) | ((data[scales + j] >> 6) << 4);
        }
    }

    /// <summary>Sub-block <paramref name="j"/>'s scale d·sc and min dmin·m as floats, from the header (f16 d, f16 dmin,
    /// 12 scale bytes) of the Q4_K/Q5_K block at byte <paramref name="block"/> of a 16-byte aligned row.</summary>
    public static void GroupScaleMin(ArrayView<byte> row, int block, int j, out float scale, out float min)
    {
        Ld.U4(row, block, out uint dm, out uint s0, out uint s1, out uint s2);
        ScaleMin(s0, s1, s2, j, out int sc, out int m);
        scale = Ld.Half(dm) * sc;
        min = Ld.Half(dm >> 16) * m;
    }

    /// <summary>get_scale_min_k4 on the 12 scale bytes already loaded as three little-endian words.</summary>
    public static void ScaleMin(uint s0, uint s1, uint s2, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = Byte(s0, s1, s2, j) & 63;
            min = Byte(s0, s1, s2, j + 4) & 63;
        }
        else
        {
            int high = Byte(s0, s1, s2, j + 4);
            scale = (high & 0xF) | ((Byte(s0, s1, s2, j - 4) >> 6) << 4);
            min = (high >> 4) | ((Byte(s0, s1, s2, j) >> 6) << 4);
        }
    }

    private static int Byte(uint s0, uint s1, uint s2, int k)
    {
        uint word = k < 4 ? s0 : k < 8 ? s1 : s2;
        return (int)((word >> (8 * (k & 3))) & 0xFF);
    }

    /// <summary>get_scale_min_k4 for the sub-block pair 2j, 2j + 1 (j = 0..3) from the three scale words, without
    /// branches and two bytes at a time: the pair's bytes are the low (j even) or high (j odd) halves of the words, so
    /// after one shift a word holds both; sub-blocks below 4 are bytes s, s + 4 masked to six bits, the others take
    /// the nibbles of bytes s + 4 and the top two bits of bytes s − 4, s, moved to bits 4–5 of each byte. Sixteen
    /// integer instructions a unit where one byte at a time took about 27 (SASS of Q4_K's gate/up, session 25); the
    /// same integers.</summary>
    public static void ScaleMinPair(uint s0, uint s1, uint s2, int j, out int sc0, out int m0, out int sc1, out int m1)
    {
        int shift = 16 * (j & 1);
        uint a = s0 >> shift, b = s1 >> shift, c = s2 >> shift;
        uint sc = j >= 2 ? (c & 0x0F0F) | ((a >> 2) & 0x3030) : a & 0x3F3F;
        uint m = j >= 2 ? ((c >> 4) & 0x0F0F) | ((b >> 2) & 0x3030) : b & 0x3F3F;
        sc0 = (int)(sc & 0xFF); sc1 = (int)(sc >> 8);
        m0 = (int)(m & 0xFF); m1 = (int)(m >> 8);
    }

    /// <summary>get_scale_min_k4 for sub-blocks k (&lt; 4) and 4 + k from the three scale words: bytes k, k + 4 give the
    /// first's scale and min, byte k + 8's nibbles and the top bits of bytes k, k + 4 the second's (the f32 lane dots of
    /// Q4_K and Q5_K, whose lane unit covers weights 4l… of both halves of a block).</summary>
    public static void ScaleMinHalves(uint s0, uint s1, uint s2, int k, out int sc0, out int m0, out int sc1, out int m1)
    {
        int b0 = (int)((s0 >> (8 * k)) & 0xFF), b1 = (int)((s1 >> (8 * k)) & 0xFF), b2 = (int)((s2 >> (8 * k)) & 0xFF);
        sc0 = b0 & 63; m0 = b1 & 63;
        sc1 = (b2 & 0xF) | ((b0 >> 6) << 4); m1 = (b2 >> 4) | ((b1 >> 6) << 4);
    }

    /// <summary>The f32 activations of lane unit <paramref name="g"/> of a 256-weight-block format (Q4_K, Q5_K, Q6_K):
    /// weights 4l … 4l + 3 of each half of block g / 32 (l = g % 32), 16-byte loads.</summary>
    public static void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c)
    {
        Ld.F4(x, xRow + 256L * (g >> 5) + 4 * (g & 31), out a.A, out a.B, out a.C, out a.D);
        Ld.F4(x, xRow + 256L * (g >> 5) + 4 * (g & 31) + 128, out c.A, out c.B, out c.C, out c.D);
    }

    /// <summary>The int8 GEMV's value of a Q4_K/Q5_K unit: its integer dots <paramref name="lo"/> (sub-block 2j) and
    /// <paramref name="hi"/> (2j + 1) scaled by d·sc and the activation scales, minus dmin·m times the activations'
    /// sums (<see cref="XLane"/>: D0, D1 the scales, D2, D3 the d·Σq terms); <paramref name="dm"/> holds f16 d and
    /// dmin, s0..s2 the 12 scale bytes.</summary>
    public static float SubBlockPair(uint dm, uint s0, uint s1, uint s2, int j, int lo, int hi, XLane x)
    {
        ScaleMinPair(s0, s1, s2, j, out int sc0, out int m0, out int sc1, out int m1);
        // sc·lo is exact as an integer (|lo| ≤ 16·15·127 for Q4_K, 16·31·127 for Q5_K; times 63 below 2^24), so one
        // conversion a sub-block instead of two and a multiply.
        return Ld.Half(dm) * (x.D0 * (sc0 * lo) + x.D1 * (sc1 * hi)) - Ld.Half(dm >> 16) * (m0 * x.D2 + m1 * x.D3);
    }

    /// <summary>The 16-byte header (f16 d and dmin, the 12 scale bytes) of the Q4_K/Q5_K block of this lane's unit, where
    /// each of the block's eight units holds one of its words (word g % 4: <see cref="Q4_K.QLaneLoad"/>,
    /// <see cref="Q5_K.QLaneLoad"/>): lane <paramref name="b"/> + k holds word k, b the first of the unit's eight lanes
    /// (the lane index with its low three bits cleared). By shuffles, so every lane of the warp must call it together.</summary>
    public static void GatherHeader(uint word, int b, out uint dm, out uint s0, out uint s1, out uint s2)
    {
        dm = Warp.Shuffle(word, b); s0 = Warp.Shuffle(word, b + 1);
        s1 = Warp.Shuffle(word, b + 2); s2 = Warp.Shuffle(word, b + 3);
    }
}

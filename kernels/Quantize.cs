using ILGPU;

namespace Engine.Kernels;

/// <summary>Quantizes matmul inputs to 8 bits for the int8 GEMV of the quantized weight formats (llama.cpp's CUDA
/// backend does the same with quantize_q8_1 before mmvq). Per block of 32 activations: d = max|x| / 127 rounded to
/// f16, q = round-to-nearest-even(x · 127 / max|x|), and the block's Σq, exactly as the CPU backend's
/// QuantizedDot.QuantizeRow, so both backends multiply the same integers. Layout of a token's row
/// (<see cref="RowBytes"/>, docs/kernels.md "Quantized activations"): the int8 values of every block (padded with zero
/// blocks to an even count, so the row is a multiple of 16 bytes), then one (f32 d, i32 Σq) pair per block.
/// A thread quantizes four consecutive elements (<see cref="QuadElements"/>), so a block is eight lanes of a warp:
/// the block's maximum and sum are three shuffles, and each thread stores its four bytes as one word.</summary>
public static class Quantize
{
    public const int BlockElements = 32;

    /// <summary>Elements one thread quantizes.</summary>
    public const int QuadElements = 4;

    /// <summary>Blocks of a row, padded to an even count.</summary>
    public static int Blocks(int cols) => (cols + 63) / 64 * 2;

    /// <summary>Bytes of one token's quantized row: 32 int8 and 8 bytes of (d, Σq) per (padded) block.</summary>
    public static long RowBytes(int cols) => (long)Blocks(cols) * 40;

    /// <summary>Offset of the (d, Σq) pairs within a row.</summary>
    public static long PairsOffset(int cols) => (long)Blocks(cols) * 32;

    /// <summary>Elements of a padded row (a multiple of 64).</summary>
    public static int PaddedElements(int cols) => Blocks(cols) * BlockElements;

    public static void Run(ArrayView<float> x, ArrayView<byte> y, int cols, int nTokens)
    {
        Pdl.Wait();
        int t = Grid.IdxY;
        int quad = Grid.IdxX * Group.DimX + Group.IdxX;
        // Whole warps past the padded row leave (the shuffles below take the full warp).
        if (QuadElements * (quad - Warp.LaneIdx) >= PaddedElements(cols)) return;
        Load4(x, (long)t * cols, cols, QuadElements * quad, out float a, out float b, out float c, out float d);
        Store4(a, b, c, d, y, t, cols, QuadElements * quad);
    }

    /// <summary>x[row + e .. row + e + 3] of a row of <paramref name="cols"/> elements, 0 past its end: one 16-byte
    /// load when the row allows it (cols a multiple of 4: rows 16-byte aligned, docs/kernels.md "Invariant").</summary>
    public static void Load4(ArrayView<float> x, long row, int cols, int e, out float a, out float b, out float c, out float d)
    {
        if ((cols & 3) == 0 && e + 3 < cols)
        {
            Formats.Ld.F4(x, row + e, out a, out b, out c, out d);
            return;
        }
        a = e < cols ? x[row + e] : 0f;
        b = e + 1 < cols ? x[row + e + 1] : 0f;
        c = e + 2 < cols ? x[row + e + 2] : 0f;
        d = e + 3 < cols ? x[row + e + 3] : 0f;
    }

    /// <summary>Quantizes elements e .. e + 3 (e a multiple of 4; values 0 past cols) of token row
    /// <paramref name="t"/>: the eight lanes 8k .. 8k + 7 of a warp hold one block and write its int8 values and, the
    /// first of them, its (d, Σq). All lanes of the warp must call it (shuffles); lanes past the padded row store
    /// nothing.</summary>
    public static void Store4(float a, float b, float c, float d, ArrayView<byte> y, int t, int cols, int e)
    {
        float amax = IntrinsicMath.Max(IntrinsicMath.Max(IntrinsicMath.Abs(a), IntrinsicMath.Abs(b)),
            IntrinsicMath.Max(IntrinsicMath.Abs(c), IntrinsicMath.Abs(d)));
        amax = IntrinsicMath.Max(amax, Warp.ShuffleXor(amax, 4));
        amax = IntrinsicMath.Max(amax, Warp.ShuffleXor(amax, 2));
        amax = IntrinsicMath.Max(amax, Warp.ShuffleXor(amax, 1));
        float id = amax != 0 ? 127f / amax : 0f;
        int qa = Round(a, id), qb = Round(b, id), qc = Round(c, id), qd = Round(d, id);
        int sum = (qa + qb) + (qc + qd);
        sum += Warp.ShuffleXor(sum, 4);
        sum += Warp.ShuffleXor(sum, 2);
        sum += Warp.ShuffleXor(sum, 1);
        if (e >= PaddedElements(cols)) return;
        long row = t * RowBytes(cols);
        var words = y.Cast<int>();
        words[(row + e) >> 2] = (qa & 0xFF) | ((qb & 0xFF) << 8) | ((qc & 0xFF) << 16) | (qd << 24);
        if ((e & (BlockElements - 1)) == 0)
        {
            long pair = row + PairsOffset(cols) + 8L * (e / BlockElements);
            words[pair >> 2] = (int)Interop.FloatAsInt(Formats.Ld.RoundToHalf(amax / 127f));
            words[(pair >> 2) + 1] = sum;
        }
    }

    /// <summary>Quantizes one element per lane: the 32 lanes of a warp hold block e / 32 of token row
    /// <paramref name="t"/> (e = column, the lane's block-aligned position) and write its int8 values and, lane 0, its
    /// (d, Σq): the same bytes as <see cref="Store4"/> (max and Σq are exact, so the grouping does not matter). All
    /// 32 lanes must call it with the same block.</summary>
    public static void Store1(float v, ArrayView<byte> y, int t, int cols, int e)
    {
        float amax = Reduce.WarpMax(IntrinsicMath.Abs(v));
        float id = amax != 0 ? 127f / amax : 0f;
        int qv = Round(v, id);
        int sum = Reduce.WarpSum(qv);
        long row = t * RowBytes(cols);
        y[row + e] = (byte)(qv & 0xFF);
        if ((e & (BlockElements - 1)) == 0)
        {
            var words = y.Cast<int>();
            long pair = row + PairsOffset(cols) + 8L * (e / BlockElements);
            words[pair >> 2] = (int)Interop.FloatAsInt(Formats.Ld.RoundToHalf(amax / 127f));
            words[(pair >> 2) + 1] = sum;
        }
    }

    /// <summary>round-to-nearest-even(v · id) for |v · id| ≤ 127: v·id + 1.5·2^23 lands in [2^23, 2^24), where the
    /// float spacing is 1, so the add rounds to nearest even and the low bits are the integer. MulRn keeps ptxas from
    /// fusing the two into one rounding.</summary>
    private static int Round(float v, float id) =>
        (int)Interop.FloatAsInt(Formats.Ld.MulRn(v, id) + 12582912f) - 0x4B400000;
}

using ILGPU;

namespace Engine.Kernels;

/// <summary>Quantizes matmul inputs to 8 bits for the int8 GEMV of the quantized weight formats (llama.cpp's CUDA
/// backend does the same with quantize_q8_1 before mmvq). Per block of 32 activations: d = max|x| / 127 rounded to
/// f16, q = round-to-nearest-even(x · 127 / max|x|), and the block's Σq, exactly as the CPU backend's
/// QuantizedDot.QuantizeRow, so both backends multiply the same integers. Layout of a token's row
/// (<see cref="RowBytes"/>, docs/kernels.md "Quantized activations"): the int8 values of every block (padded with zero
/// blocks to an even count, so the row is a multiple of 16 bytes), then one (f32 d, i32 Σq) pair per block.
/// One warp per block: lane i quantizes element i; the maximum and the sum are warp reductions.</summary>
public static class Quantize
{
    public const int BlockElements = 32;

    /// <summary>Blocks of a row, padded to an even count.</summary>
    public static int Blocks(int cols) => (cols + 63) / 64 * 2;

    /// <summary>Bytes of one token's quantized row: 32 int8 and 8 bytes of (d, Σq) per (padded) block.</summary>
    public static long RowBytes(int cols) => (long)Blocks(cols) * 40;

    /// <summary>Offset of the (d, Σq) pairs within a row.</summary>
    public static long PairsOffset(int cols) => (long)Blocks(cols) * 32;

    public static void Run(ArrayView<float> x, ArrayView<byte> y, int cols, int nTokens)
    {
        int t = Grid.IdxY;
        int e = Grid.IdxX * Group.DimX + Group.IdxX;
        if (Grid.IdxX * Group.DimX + Warp.WarpIdx * Warp.WarpSize >= Blocks(cols) * BlockElements) return;   // whole warps past the row
        float v = e < cols ? x[(long)t * cols + e] : 0f;
        Store(v, y, t, cols, e);
    }

    /// <summary>Quantizes one block: the 32 lanes of a warp hold elements e = 32k + lane of token row
    /// <paramref name="t"/> (0 past cols) and write the block's int8 values and, lane 0, its (d, Σq). All lanes of
    /// the warp must call it (warp reductions).</summary>
    public static void Store(float v, ArrayView<byte> y, int t, int cols, int e)
    {
        float amax = Reduce.WarpMax(IntrinsicMath.Abs(v));
        float id = amax != 0 ? 127f / amax : 0f;
        // v·id + 1.5·2^23 lands in [2^23, 2^24), where the float spacing is 1: the add rounds to nearest even, and
        // the low bits are the integer (|v·id| ≤ 127). MulRn keeps ptxas from fusing the two into one rounding.
        int q = (int)Interop.FloatAsInt(Formats.Ld.MulRn(v, id) + 12582912f) - 0x4B400000;
        int sum = Reduce.WarpSum(q);
        long row = t * RowBytes(cols);
        y[row + e] = (byte)q;
        if (Warp.LaneIdx == 0)
        {
            long pair = row + PairsOffset(cols) + 8L * (e >> 5);
            var words = y.Cast<int>();
            words[pair >> 2] = (int)Interop.FloatAsInt(Formats.Ld.RoundToHalf(amax / 127f));
            words[(pair >> 2) + 1] = sum;
        }
    }
}

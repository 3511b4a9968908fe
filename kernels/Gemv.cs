using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>y[t, r] = Σ_c W[r, c]·x[t, c] for a weight matrix in any format: one warp per row, lanes over consecutive
/// block units (coalesced), shuffle reduction (the layout of ggml-cuda mmvq: a warp per row). Explicitly grouped:
/// block = WarpsPerGroup warps = that many rows; grid.y tiles the tokens, TokensPerGroup per group, so a prompt
/// reads each weight row once per tile from DRAM (later tokens hit L1/L2) instead of once per token.</summary>
public static class Gemv
{
    public const int TokensPerGroup = 4;

    /// <param name="w">weights [rows, cols] in format T, rows contiguous</param>
    /// <param name="x">activations [n_tokens, cols]</param>
    /// <param name="y">output [n_tokens, rows]</param>
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        int row = Grid.IdxX * (Group.DimX / Warp.WarpSize) + Warp.WarpIdx;
        if (row >= rows) return; // whole warp leaves together
        long rowBytes = RowBytes<T>(cols);
        int first = Grid.IdxY * TokensPerGroup;
        int last = IntrinsicMath.Min(first + TokensPerGroup, nTokens);
        for (int t = first; t < last; t++)
        {
            float dot = RowDot<T>(w, row * rowBytes, cols, x, (long)t * cols);
            if (Warp.LaneIdx == 0) y[(long)t * rows + row] = dot;
        }
    }

    public static long RowBytes<T>(int cols) where T : struct, IWeightFormat =>
        (long)(cols / default(T).BlockElements) * default(T).BlockBytes;

    /// <summary>Dot of one weight row with x, summed over the warp; every lane gets the result.</summary>
    public static float RowDot<T>(ArrayView<byte> w, long rowOffset, int cols, ArrayView<float> x, long xOffset)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int unitsPerBlock = format.UnitsPerBlock;
        int units = cols / format.BlockElements * unitsPerBlock;
        float sum = 0;
        for (int u = Warp.LaneIdx; u < units; u += Warp.WarpSize)
        {
            int block = u / unitsPerBlock;
            sum += format.DotUnit(w, rowOffset + (long)block * format.BlockBytes, u - block * unitsPerBlock,
                x, xOffset + (long)block * format.BlockElements);
        }
        return Reduce.WarpSum(sum);
    }
}

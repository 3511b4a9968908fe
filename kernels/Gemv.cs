using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>y[t, r] = Σ_c W[r, c]·x[t, c] for a weight matrix in any format (the layout of ggml-cuda mmvq: warps
/// per row, lanes over consecutive pieces, shuffle reduction). Explicitly grouped: a group covers
/// <see cref="RowsPerGroup"/> rows with Group.DimX / 32 / RowsPerGroup warps each (block 128: one warp per row;
/// 256: two, …); grid.y tiles the tokens, <see cref="TokensPerGroup"/> per group, so a prompt reads each weight row
/// once per tile from DRAM (later tokens hit L1/L2) instead of once per token.
/// Fast path (<see cref="IWeightFormat.LaneDot"/>): each lane takes lane units g, g + lanes, …, Unroll of them per
/// iteration, all loads issued before use (bytes in flight, not instructions, bound a GEMV on the H100); x and the
/// aligned formats are read with 16-byte loads. Rows whose alignment does not allow it take the per-unit path.</summary>
public static class Gemv
{
    public const int TokensPerGroup = 4;

    public const int RowsPerGroup = 4;

    /// <param name="w">weights [rows, cols] in format T, rows contiguous</param>
    /// <param name="x">activations [n_tokens, cols]</param>
    /// <param name="y">output [n_tokens, rows]</param>
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        var partials = SharedMemory.Allocate<float>(MaxWarps);
        int warpsPerRow = WarpsPerRow();
        int row = Grid.IdxX * RowsPerGroup + Warp.WarpIdx / warpsPerRow;
        int part = Warp.WarpIdx - (Warp.WarpIdx / warpsPerRow) * warpsPerRow;
        if (warpsPerRow == 1 && row >= rows) return; // whole warp leaves together (no barrier below)
        bool valid = row < rows;
        long rowOffset = valid ? row * RowBytes<T>(cols) : 0;
        int lane = part * Warp.WarpSize + Warp.LaneIdx, lanes = warpsPerRow * Warp.WarpSize;
        int first = Grid.IdxY * TokensPerGroup;
        int last = IntrinsicMath.Min(first + TokensPerGroup, nTokens);
        for (int t = first; t < last; t++)
        {
            float dot = valid ? LanePartial<T>(w, rowOffset, cols, x, (long)t * cols, lane, lanes) : 0;
            dot = RowSum(dot, warpsPerRow, part, partials);
            if (valid && lane == 0) y[(long)t * rows + row] = dot;
        }
    }

    /// <summary>Most warps a group can have (1024 threads).</summary>
    public const int MaxWarps = 32;

    /// <summary>Warps that share a row: Group.DimX / 32 / RowsPerGroup, at least 1.</summary>
    public static int WarpsPerRow() => IntrinsicMath.Max(Group.DimX / (Warp.WarpSize * RowsPerGroup), 1);

    /// <summary>Sums one row's per-lane partials over its warps; lane 0 of the row's first warp gets the total (with
    /// one warp per row every lane does). With several warps per row every thread of the group must call it.</summary>
    public static float RowSum(float partial, int warpsPerRow, int part, ArrayView<float> partials)
    {
        float sum = Reduce.WarpSum(partial);
        if (warpsPerRow == 1) return sum;
        if (Warp.LaneIdx == 0) partials[Warp.WarpIdx] = sum;
        Group.Barrier();
        if (part == 0)
            for (int i = 1; i < warpsPerRow; i++) sum += partials[Warp.WarpIdx + i];
        Group.Barrier();
        return sum;
    }

    public static long RowBytes<T>(int cols) where T : struct, IWeightFormat =>
        (long)(cols / default(T).BlockElements) * default(T).BlockBytes;

    /// <summary>Dot of one weight row with x, summed over the warp; every lane gets the result.</summary>
    public static float RowDot<T>(ArrayView<byte> w, long rowOffset, int cols, ArrayView<float> x, long xOffset)
        where T : struct, IWeightFormat =>
        Reduce.WarpSum(LanePartial<T>(w, rowOffset, cols, x, xOffset, Warp.LaneIdx, Warp.WarpSize));

    /// <summary>This lane's share (lane of lanes) of the dot of one weight row with x.</summary>
    public static float LanePartial<T>(ArrayView<byte> w, long rowOffset, int cols, ArrayView<float> x, long xOffset,
        int lane, int lanes)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        // Alignment from offsets: views are 16-byte aligned (weights: GGUF 32-byte tensor alignment; activations:
        // arena offsets; docs/kernels.md "Invariant").
        if (cols % format.LaneElements == 0 && (xOffset & 3) == 0 && (rowOffset & (format.LaneAlignment - 1)) == 0)
        {
            int units = cols / format.LaneElements;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int g = lane;
            if (format.Unroll == 8)
            {
                for (; g + 7 * lanes < units; g += 8 * lanes)
                {
                    s0 += format.LaneDot(w, rowOffset, g, x, xOffset) + format.LaneDot(w, rowOffset, g + 4 * lanes, x, xOffset);
                    s1 += format.LaneDot(w, rowOffset, g + lanes, x, xOffset) + format.LaneDot(w, rowOffset, g + 5 * lanes, x, xOffset);
                    s2 += format.LaneDot(w, rowOffset, g + 2 * lanes, x, xOffset) + format.LaneDot(w, rowOffset, g + 6 * lanes, x, xOffset);
                    s3 += format.LaneDot(w, rowOffset, g + 3 * lanes, x, xOffset) + format.LaneDot(w, rowOffset, g + 7 * lanes, x, xOffset);
                }
            }
            for (; g + 3 * lanes < units; g += 4 * lanes)
            {
                s0 += format.LaneDot(w, rowOffset, g, x, xOffset);
                s1 += format.LaneDot(w, rowOffset, g + lanes, x, xOffset);
                s2 += format.LaneDot(w, rowOffset, g + 2 * lanes, x, xOffset);
                s3 += format.LaneDot(w, rowOffset, g + 3 * lanes, x, xOffset);
            }
            for (; g < units; g += lanes) s0 += format.LaneDot(w, rowOffset, g, x, xOffset);
            return (s0 + s1) + (s2 + s3);
        }

        int unitsPerBlock = format.UnitsPerBlock;
        int blockUnits = cols / format.BlockElements * unitsPerBlock;
        float sum = 0;
        for (int u = lane; u < blockUnits; u += lanes)
        {
            int block = u / unitsPerBlock;
            sum += format.DotUnit(w, rowOffset + (long)block * format.BlockBytes, u - block * unitsPerBlock,
                x, xOffset + (long)block * format.BlockElements);
        }
        return sum;
    }
}

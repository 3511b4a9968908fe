using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>Fused FFN input: y[t, r] = silu(gate[r]·x[t])·(up[r]·x[t]). One pass over x for both matrices and no
/// gate/up round trip through memory (declared fused=matmul+matmul+swiglu in llama.graph). Same geometry and lane
/// loops as <see cref="Gemv"/>.</summary>
public static class GemvSwiGlu
{
    public static void Run<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        var partials = SharedMemory.Allocate<float>(Gemv.MaxWarps);
        int warpsPerRow = Gemv.WarpsPerRow();
        int row = Grid.IdxX * Gemv.RowsPerGroup + Warp.WarpIdx / warpsPerRow;
        int part = Warp.WarpIdx - (Warp.WarpIdx / warpsPerRow) * warpsPerRow;
        if (warpsPerRow == 1 && row >= rows) return;
        bool valid = row < rows;
        long rowOffset = valid ? row * Gemv.RowBytes<T>(cols) : 0;
        int lane = part * Warp.WarpSize + Warp.LaneIdx, lanes = warpsPerRow * Warp.WarpSize;
        int first = Grid.IdxY * Gemv.TokensPerGroup;
        int last = IntrinsicMath.Min(first + Gemv.TokensPerGroup, nTokens);
        for (int t = first; t < last; t++)
        {
            float g = valid ? Gemv.LanePartial<T>(gate, rowOffset, cols, x, (long)t * cols, lane, lanes) : 0;
            g = Gemv.RowSum(g, warpsPerRow, part, partials);
            float u = valid ? Gemv.LanePartial<T>(up, rowOffset, cols, x, (long)t * cols, lane, lanes) : 0;
            u = Gemv.RowSum(u, warpsPerRow, part, partials);
            if (valid && lane == 0) y[(long)t * rows + row] = SwiGlu.Silu(g) * u;
        }
    }
}

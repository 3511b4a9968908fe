using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>Fused FFN input: y[t, r] = silu(gate[r]·x[t])·(up[r]·x[t]). One pass over x for both matrices and no
/// gate/up round trip through memory (declared fused=matmul+matmul+swiglu in llama.graph). Same geometry as
/// <see cref="Gemv"/>.</summary>
public static class GemvSwiGlu
{
    public static void Run<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        int row = Grid.IdxX * (Group.DimX / Warp.WarpSize) + Warp.WarpIdx;
        if (row >= rows) return;
        long rowOffset = row * Gemv.RowBytes<T>(cols);
        int first = Grid.IdxY * Gemv.TokensPerGroup;
        int last = IntrinsicMath.Min(first + Gemv.TokensPerGroup, nTokens);
        for (int t = first; t < last; t++)
        {
            float g = Gemv.RowDot<T>(gate, rowOffset, cols, x, (long)t * cols);
            float u = Gemv.RowDot<T>(up, rowOffset, cols, x, (long)t * cols);
            if (Warp.LaneIdx == 0) y[(long)t * rows + row] = SwiGlu.Silu(g) * u;
        }
    }
}

using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>Fused FFN input: y[t, r] = silu(gate[r]·x[t])·(up[r]·x[t]). One pass over x for both matrices and no
/// gate/up round trip through memory (declared fused=matmul+matmul+swiglu in llama.graph). Same geometry and lane
/// loops as <see cref="Gemv"/>.</summary>
public static class GemvSwiGlu
{
    public static void Run<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        var partials = SharedMemory.Allocate<float>(2 * Gemv.PartialsPerBuffer);
        int row0 = Grid.IdxX * Gemv.RowsPerGroup;
        long rowBytes = Gemv.RowBytes<T>(cols);
        long o0 = IntrinsicMath.Min(row0, rows - 1) * rowBytes, o1 = IntrinsicMath.Min(row0 + 1, rows - 1) * rowBytes;
        long o2 = IntrinsicMath.Min(row0 + 2, rows - 1) * rowBytes, o3 = IntrinsicMath.Min(row0 + 3, rows - 1) * rowBytes;
        int first = Grid.IdxY * Gemv.TokensPerGroup;
        int last = IntrinsicMath.Min(first + Gemv.TokensPerGroup, nTokens);
        Pdl.Wait();
        if (default(T).QLaneTogether && Gemv.OneUnitALane<T>(cols) && last - first == 1)
        {
            // A decode step where a thread's share of a row is one lane unit (an 8B's 4096 columns at 128 threads), for the
            // formats whose unit is at most six words (QLaneTogether: Q4_0, Q4_K, Q5_K): the words of gate's four rows
            // and up's are loaded together, eight rows' loads in flight at once, where the loop below waits for gate's
            // before it loads up's. Measured (8B tg128, H200, two rounds, tokens equal; docs/benchmarks.md "Session 20"
            // and "Session 21"): Q4_0 +3.8 %, Q4_K +2.8 % (72 registers, no spill), Q5_K +1.3 %; Q8_0's nine-word units
            // lost 3–4 %.
            Gemv.LoadUnits<T>(gate, o0, o1, o2, o3, cols, out var gw);
            Gemv.LoadUnits<T>(up, o0, o1, o2, o3, cols, out var uw);
            Gemv.UnitPartials<T>(gw, cols, xq, first, out float g0, out float g1, out float g2, out float g3);
            float g = Gemv.GroupSums(g0, g1, g2, g3, partials, 0);
            Gemv.UnitPartials<T>(uw, cols, xq, first, out float u0, out float u1, out float u2, out float u3);
            float u = Gemv.GroupSums(u0, u1, u2, u3, partials, 1);
            int r = Group.IdxX;
            if (r < Gemv.RowsPerGroup && row0 + r < rows) y[(long)first * rows + row0 + r] = SwiGlu.Silu(g) * u;
            return;
        }
        for (int t = first; t < last; t++)
        {
            // Gate's sums in buffer 0, up's in buffer 1: one barrier each (Gemv.GroupSums).
            Gemv.Partials<T>(gate, o0, o1, o2, o3, cols, x, xq, t, out float g0, out float g1, out float g2, out float g3);
            float g = Gemv.GroupSums(g0, g1, g2, g3, partials, 0);
            Gemv.Partials<T>(up, o0, o1, o2, o3, cols, x, xq, t, out float u0, out float u1, out float u2, out float u3);
            float u = Gemv.GroupSums(u0, u1, u2, u3, partials, 1);
            int r = Group.IdxX;
            if (r < Gemv.RowsPerGroup && row0 + r < rows) y[(long)t * rows + row0 + r] = SwiGlu.Silu(g) * u;
        }
    }
}

using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>y[t, r] += Σ_c W[r, c]·a[t, c]: a projection whose output is added to the residual stream in the same
/// launch (declared fused=matmul+add in llama.graph: the attention output and FFN down projections), so neither the
/// projection's buffer nor the add kernel exist. Same geometry and lane loops as <see cref="Gemv"/>; rows of one
/// lane unit a thread (the attention output projection of an 8B) load their weights before the PDL wait
/// (<see cref="Gemv.Rows{T}"/>).</summary>
public static class GemvAdd
{
    /// <param name="a">activations [n_tokens, cols] (read by the float formats)</param>
    /// <param name="aq">the same activations quantized (read by the int8 formats)</param>
    /// <param name="y">the residual stream [n_tokens, rows], updated in place</param>
    /// <param name="mmPart">the split-k GEMM's partial tiles (<see cref="Gemm.RunAdd{T}"/>; not read here: the batch
    /// kernel takes this kernel's arguments)</param>
    /// <param name="mmSync">the split-k GEMM's tile tickets (likewise)</param>
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> a, ArrayView<byte> aq, ArrayView<float> y, ArrayView<float> mmPart,
        ArrayView<int> mmSync, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat => Gemv.Rows<T>(w, a, aq, y, rows, cols, nTokens, Grid.IdxX, accumulate: true, early: true);
}

using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>The q, k and v projections in one launch (declared fused=matmul+matmul+matmul in llama.graph): groups
/// 0 … ceil(rows/4) − 1 compute q = Wq·x, the next ceil(kv_dim/4) k = Wk·x, the last ceil(kv_dim/4) v = Wv·x, each
/// exactly as <see cref="Gemv"/> computes its rows (same lane loops and sums: the bytes of three gemv launches). A
/// decode step's k and v are small matrices (an 8B's 4096 × 1024 is 256 groups for 132 SMs, ~1 µs of weights) whose
/// launches cost more in ramp-up, tail and gap than their reads; in one launch with q they fill the machine. The three
/// weights must share a format (the planner launches three gemvs in a layer where they do not). Rows of one lane unit
/// a thread (an 8B's) load their weights before the PDL wait (<see cref="Gemv.Rows{T}"/>).</summary>
public static class GemvQkv
{
    /// <param name="rows">q's rows (n_head·head_dim)</param>
    /// <param name="kvDim">k's and v's rows (n_head_kv·head_dim)</param>
    /// <param name="mmPart">the split-k GEMM's partial tiles and <paramref name="mmSync"/> its tile tickets
    /// (<see cref="Gemm.RunQkv{T}"/>; not read here: the batch kernel takes this kernel's arguments)</param>
    public static void Run<T>(ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv, ArrayView<float> x, ArrayView<byte> xq,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mmPart, ArrayView<int> mmSync,
        int rows, int kvDim, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        Select(Grid.IdxX, Gemv.RowsPerGroup, wq, wk, wv, q, k, v, rows, kvDim, out var w, out var y, out int n, out int local);
        Gemv.Rows<T>(w, x, xq, y, n, cols, nTokens, local, accumulate: false, early: true);
    }

    /// <summary>q and k in format <typeparamref name="TQk"/>, v in <typeparamref name="TV"/> (spec format pair
    /// TQk/TV): llama.cpp's Q4_K_M and Q5_K_M files keep attn_v in Q6_K in half the layers, where one launch over the
    /// three matrices saves two launches' ramp, tail and gap. v's groups run the TV lane loop, the others TQk's; the
    /// group's rows and sums are <see cref="Gemv.Rows{T}"/>'s either way.</summary>
    public static void Run<TQk, TV>(ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv, ArrayView<float> x, ArrayView<byte> xq,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mmPart, ArrayView<int> mmSync,
        int rows, int kvDim, int cols, int nTokens)
        where TQk : struct, IWeightFormat
        where TV : struct, IWeightFormat
    {
        Select(Grid.IdxX, Gemv.RowsPerGroup, wq, wk, wv, q, k, v, rows, kvDim, out var w, out var y, out int n, out int local);
        if (IsV(Grid.IdxX, Gemv.RowsPerGroup, rows, kvDim))
            Gemv.Rows<TV>(w, x, xq, y, n, cols, nTokens, local, accumulate: false, early: true);
        else Gemv.Rows<TQk>(w, x, xq, y, n, cols, nTokens, local, accumulate: false, early: true);
    }

    /// <summary>Whether group <paramref name="group"/> of a q/k/v launch computes v's rows (<see cref="Select"/>'s order).</summary>
    public static bool IsV(int group, int groupRows, int rows, int kvDim) =>
        group >= (rows + groupRows - 1) / groupRows + (kvDim + groupRows - 1) / groupRows;

    /// <summary>Which matrix group <paramref name="group"/> of a q/k/v launch computes, for groups of
    /// <paramref name="groupRows"/> rows (4 for the GEMV, 128 for the GEMM's row tiles): q's groups first, then k's,
    /// then v's; its weights, output, row count and index within that matrix. One body for the three matrices: the
    /// views are selected, not the code (one copy of the lane loops).</summary>
    public static void Select(int group, int groupRows, ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, int rows, int kvDim,
        out ArrayView<byte> w, out ArrayView<float> y, out int n, out int local)
    {
        int qGroups = (rows + groupRows - 1) / groupRows, kvGroups = (kvDim + groupRows - 1) / groupRows;
        bool isQ = group < qGroups, isK = !isQ && group < qGroups + kvGroups;
        w = isQ ? wq : isK ? wk : wv;
        y = isQ ? q : isK ? k : v;
        n = isQ ? rows : kvDim;
        local = isQ ? group : isK ? group - qGroups : group - qGroups - kvGroups;
    }
}

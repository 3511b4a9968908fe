using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Causal GQA attention of one query head of one token over the f16 cache: out = softmax(q·Kᵀ·scale)·V over
/// positions 0..pos (query head h reads kv head h / (n_head / n_head_kv)). One group per (head, token); its warps
/// split the positions and keep an online softmax (Milakov &amp; Gimelshein 2018; flash-decoding), then merge through
/// shared memory. A lane holds head dims lane + WarpSize·j, j &lt; 4: head_dim ≤ min(4·WarpSize, MaxHeadDim).</summary>
public static class Attention
{
    public const int MaxHeadDim = 128;
    public const int MaxWarps = 8;

    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, int nHead, int nHeadKv, int headDim, int nTokens, float scale)
    {
        var warpMax = SharedMemory.Allocate<float>(MaxWarps);
        var warpSum = SharedMemory.Allocate<float>(MaxWarps);
        var warpAcc = SharedMemory.Allocate<float>(MaxWarps * MaxHeadDim);

        int head = Grid.IdxX, t = Grid.IdxY;
        int kvHead = head / (nHead / nHeadKv);
        int kvDim = nHeadKv * headDim;
        int lane = Warp.LaneIdx, ws = Warp.WarpSize;
        int warp = Warp.WarpIdx, warps = Group.DimX / ws;
        long qRow = ((long)t * nHead + head) * headDim;
        int d0 = lane, d1 = lane + ws, d2 = lane + 2 * ws, d3 = lane + 3 * ws;
        float q0 = d0 < headDim ? q[qRow + d0] : 0, q1 = d1 < headDim ? q[qRow + d1] : 0;
        float q2 = d2 < headDim ? q[qRow + d2] : 0, q3 = d3 < headDim ? q[qRow + d3] : 0;

        float max = -1e30f, sum = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int count = positions[t] + 1;
        for (int p = warp; p < count; p += warps)
        {
            long kv = (long)p * kvDim + (long)kvHead * headDim;
            float s = 0;
            if (d0 < headDim) s += q0 * (float)kCache[kv + d0];
            if (d1 < headDim) s += q1 * (float)kCache[kv + d1];
            if (d2 < headDim) s += q2 * (float)kCache[kv + d2];
            if (d3 < headDim) s += q3 * (float)kCache[kv + d3];
            s = Reduce.WarpSum(s) * scale;
            float newMax = IntrinsicMath.Max(max, s);
            float correction = MathF.Exp(max - newMax), weight = MathF.Exp(s - newMax);
            sum = sum * correction + weight;
            a0 = a0 * correction + (d0 < headDim ? weight * (float)vCache[kv + d0] : 0);
            a1 = a1 * correction + (d1 < headDim ? weight * (float)vCache[kv + d1] : 0);
            a2 = a2 * correction + (d2 < headDim ? weight * (float)vCache[kv + d2] : 0);
            a3 = a3 * correction + (d3 < headDim ? weight * (float)vCache[kv + d3] : 0);
            max = newMax;
        }

        if (lane == 0) { warpMax[warp] = max; warpSum[warp] = sum; }
        if (d0 < headDim) warpAcc[warp * MaxHeadDim + d0] = a0;
        if (d1 < headDim) warpAcc[warp * MaxHeadDim + d1] = a1;
        if (d2 < headDim) warpAcc[warp * MaxHeadDim + d2] = a2;
        if (d3 < headDim) warpAcc[warp * MaxHeadDim + d3] = a3;
        Group.Barrier();

        float total = -1e30f;
        for (int w = 0; w < warps; w++) total = IntrinsicMath.Max(total, warpMax[w]);
        float norm = 0;
        for (int w = 0; w < warps; w++) norm += warpSum[w] * MathF.Exp(warpMax[w] - total);
        for (int d = Group.IdxX; d < headDim; d += Group.DimX)
        {
            float acc = 0;
            for (int w = 0; w < warps; w++) acc += warpAcc[w * MaxHeadDim + d] * MathF.Exp(warpMax[w] - total);
            y[qRow + d] = acc / norm;
        }
    }
}

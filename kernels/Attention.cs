using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Causal GQA attention of one query head of one token over the f16 cache: out = softmax(q·Kᵀ·scale)·V over
/// positions 0..pos (query head h reads kv head h / (n_head / n_head_kv)). One group per (head, token); its warps
/// split the positions and keep an online softmax (Milakov &amp; Gimelshein 2018; flash-decoding), then merge through
/// shared memory. A lane holds head dims lane + WarpSize·j, j &lt; 4: head_dim ≤ min(4·WarpSize, MaxHeadDim). A warp
/// takes four positions per step, their loads in flight together.</summary>
public static class Attention
{
    public const int MaxHeadDim = 128;
    public const int MaxWarps = 32;

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
        long kvBase = (long)kvHead * headDim;
        // Four positions per iteration (p, p + warps, p + 2·warps, p + 3·warps): their K and V loads are issued
        // together, so a warp waits for memory once per four positions instead of once per position.
        for (int p = warp; p < count; p += 4 * warps)
        {
            int pb = p + warps, pc = p + 2 * warps, pd = p + 3 * warps;
            long ka = (long)p * kvDim + kvBase;
            long kb = (long)IntrinsicMath.Min(pb, count - 1) * kvDim + kvBase;   // clamped: read, then weighted 0
            long kc = (long)IntrinsicMath.Min(pc, count - 1) * kvDim + kvBase;
            long kd = (long)IntrinsicMath.Min(pd, count - 1) * kvDim + kvBase;
            float sa = Score(kCache, ka, headDim, d0, d1, d2, d3, q0, q1, q2, q3);
            float sb = Score(kCache, kb, headDim, d0, d1, d2, d3, q0, q1, q2, q3);
            float sc = Score(kCache, kc, headDim, d0, d1, d2, d3, q0, q1, q2, q3);
            float sd = Score(kCache, kd, headDim, d0, d1, d2, d3, q0, q1, q2, q3);
            sa = Reduce.WarpSum(sa) * scale; sb = Reduce.WarpSum(sb) * scale;
            sc = Reduce.WarpSum(sc) * scale; sd = Reduce.WarpSum(sd) * scale;
            if (pb >= count) sb = -1e30f;
            if (pc >= count) sc = -1e30f;
            if (pd >= count) sd = -1e30f;
            float newMax = IntrinsicMath.Max(IntrinsicMath.Max(max, sa), IntrinsicMath.Max(IntrinsicMath.Max(sb, sc), sd));
            float correction = MathF.Exp(max - newMax);
            float wa = MathF.Exp(sa - newMax);
            float wb = pb < count ? MathF.Exp(sb - newMax) : 0f;
            float wc = pc < count ? MathF.Exp(sc - newMax) : 0f;
            float wd = pd < count ? MathF.Exp(sd - newMax) : 0f;
            sum = sum * correction + ((wa + wb) + (wc + wd));
            a0 = a0 * correction + Mix(vCache, d0, headDim, ka, kb, kc, kd, wa, wb, wc, wd);
            a1 = a1 * correction + Mix(vCache, d1, headDim, ka, kb, kc, kd, wa, wb, wc, wd);
            a2 = a2 * correction + Mix(vCache, d2, headDim, ka, kb, kc, kd, wa, wb, wc, wd);
            a3 = a3 * correction + Mix(vCache, d3, headDim, ka, kb, kc, kd, wa, wb, wc, wd);
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

    /// <summary>This lane's part of q·k for the cache row at <paramref name="kv"/> (dims d0..d3 past head_dim add 0).</summary>
    private static float Score(ArrayView<Half> kCache, long kv, int headDim, int d0, int d1, int d2, int d3,
        float q0, float q1, float q2, float q3)
    {
        float s = 0;
        if (d0 < headDim) s += q0 * (float)kCache[kv + d0];
        if (d1 < headDim) s += q1 * (float)kCache[kv + d1];
        if (d2 < headDim) s += q2 * (float)kCache[kv + d2];
        if (d3 < headDim) s += q3 * (float)kCache[kv + d3];
        return s;
    }

    /// <summary>Σ of the four rows' V at dim <paramref name="d"/> weighted by their softmax weights (0 past head_dim).</summary>
    private static float Mix(ArrayView<Half> vCache, int d, int headDim, long ka, long kb, long kc, long kd,
        float wa, float wb, float wc, float wd)
    {
        if (d >= headDim) return 0;
        return (wa * (float)vCache[ka + d] + wb * (float)vCache[kb + d]) + (wc * (float)vCache[kc + d] + wd * (float)vCache[kd + d]);
    }
}

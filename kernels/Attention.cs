using Engine.Kernels.Formats;
using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Causal GQA attention of one query head of one token over the f16 cache: out = softmax(q·Kᵀ·scale)·V over
/// positions 0..pos (query head h reads kv head h / (n_head / n_head_kv)). One group per (head, token); its warps
/// split the positions and keep an online softmax (Milakov &amp; Gimelshein 2018; flash-decoding), then merge through
/// shared memory. A lane holds four consecutive head dims 4·lane .. 4·lane + 3 (head_dim ≤ <see cref="MaxHeadDim"/>)
/// and reads them from the cache as one 8-byte load when head_dim and kv_dim are multiples of 4. A warp takes four
/// positions per step, their loads in flight together. The merge is a warp reduction of the per-warp maxima and
/// sums (one warp), then one weighted sum over warps per head dim.</summary>
public static class Attention
{
    public const int MaxHeadDim = 128;
    public const int MaxWarps = 32;

    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, int nHead, int nHeadKv, int headDim, int nTokens, float scale) =>
        Heads(q, kCache, vCache, positions, y, y.Cast<byte>(), nHead, nHeadKv, headDim, scale, quantize: false);

    /// <summary>The group's head; with <paramref name="quantize"/> the output is also written quantized into
    /// <paramref name="yq"/> (<see cref="AttentionQuant"/>).</summary>
    public static void Heads(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<byte> yq, int nHead, int nHeadKv, int headDim, float scale, bool quantize)
    {
        Pdl.Wait();
        var warpMax = SharedMemory.Allocate<float>(MaxWarps);
        var warpSum = SharedMemory.Allocate<float>(MaxWarps);
        var factor = SharedMemory.Allocate<float>(MaxWarps);
        var warpAcc = SharedMemory.Allocate<float>(MaxWarps * MaxHeadDim);

        int head = Grid.IdxX, t = Grid.IdxY;
        int kvHead = head / (nHead / nHeadKv);
        int kvDim = nHeadKv * headDim;
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = Group.DimX / Warp.WarpSize;
        long qRow = ((long)t * nHead + head) * headDim;
        int d = 4 * lane;
        bool wide = (headDim & 3) == 0 && (kvDim & 3) == 0;
        float q0 = d < headDim ? q[qRow + d] : 0, q1 = d + 1 < headDim ? q[qRow + d + 1] : 0;
        float q2 = d + 2 < headDim ? q[qRow + d + 2] : 0, q3 = d + 3 < headDim ? q[qRow + d + 3] : 0;

        float max = -1e30f, sum = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int count = positions[t] + 1;
        long kvBase = (long)kvHead * headDim + d;
        // Four positions per iteration (p, p + warps, p + 2·warps, p + 3·warps): their K and V loads are issued
        // together, so a warp waits for memory once per four positions instead of once per position.
        for (int p = warp; p < count; p += 4 * warps)
        {
            int pb = p + warps, pc = p + 2 * warps, pd = p + 3 * warps;
            long ka = (long)p * kvDim + kvBase;
            long kb = (long)IntrinsicMath.Min(pb, count - 1) * kvDim + kvBase;   // clamped: read, then weighted 0
            long kc = (long)IntrinsicMath.Min(pc, count - 1) * kvDim + kvBase;
            long kd = (long)IntrinsicMath.Min(pd, count - 1) * kvDim + kvBase;
            float sa = Score(kCache, ka, d, headDim, wide, q0, q1, q2, q3);
            float sb = Score(kCache, kb, d, headDim, wide, q0, q1, q2, q3);
            float sc = Score(kCache, kc, d, headDim, wide, q0, q1, q2, q3);
            float sd = Score(kCache, kd, d, headDim, wide, q0, q1, q2, q3);
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
            Load(vCache, ka, d, headDim, wide, out float va0, out float va1, out float va2, out float va3);
            Load(vCache, kb, d, headDim, wide, out float vb0, out float vb1, out float vb2, out float vb3);
            Load(vCache, kc, d, headDim, wide, out float vc0, out float vc1, out float vc2, out float vc3);
            Load(vCache, kd, d, headDim, wide, out float vd0, out float vd1, out float vd2, out float vd3);
            a0 = a0 * correction + ((wa * va0 + wb * vb0) + (wc * vc0 + wd * vd0));
            a1 = a1 * correction + ((wa * va1 + wb * vb1) + (wc * vc1 + wd * vd1));
            a2 = a2 * correction + ((wa * va2 + wb * vb2) + (wc * vc2 + wd * vd2));
            a3 = a3 * correction + ((wa * va3 + wb * vb3) + (wc * vc3 + wd * vd3));
            max = newMax;
        }

        if (lane == 0) { warpMax[warp] = max; warpSum[warp] = sum; }
        int acc = warp * MaxHeadDim + d;
        if (d < headDim) warpAcc[acc] = a0;
        if (d + 1 < headDim) warpAcc[acc + 1] = a1;
        if (d + 2 < headDim) warpAcc[acc + 2] = a2;
        if (d + 3 < headDim) warpAcc[acc + 3] = a3;
        Group.Barrier();
        // Warp 0: the overall maximum and the softmax denominator, then each warp's weight exp(max_w − max) / Σ.
        if (warp == 0)
        {
            float m = lane < warps ? warpMax[lane] : -1e30f;
            float total = Reduce.WarpMax(m);
            float f = lane < warps ? MathF.Exp(m - total) : 0f;
            float norm = Reduce.WarpSum(lane < warps ? warpSum[lane] * f : 0f);
            if (lane < warps) factor[lane] = f / norm;
        }
        Group.Barrier();
        for (int e = Group.IdxX; e < headDim; e += Group.DimX)
        {
            float o = 0;
            for (int w = 0; w < warps; w++) o += warpAcc[w * MaxHeadDim + e] * factor[w];
            y[qRow + e] = o;
            // head_dim a multiple of 32: a warp's 32 outputs are one quantization block of the token's row.
            if (quantize) Quantize.Store1(o, yq, t, nHead * headDim, head * headDim + e);
        }
    }

    /// <summary>Cache row dims d .. d + 3 at <paramref name="kv"/> (already offset by d) as floats, 0 past head_dim.</summary>
    private static void Load(ArrayView<Half> cache, long kv, int d, int headDim, bool wide,
        out float v0, out float v1, out float v2, out float v3)
    {
        if (wide)
        {
            if (d < headDim)
            {
                var pair = cache.Cast<Ld.Pair>()[kv >> 2];
                v0 = Ld.Half(pair.A); v1 = Ld.Half(pair.A >> 16); v2 = Ld.Half(pair.B); v3 = Ld.Half(pair.B >> 16);
                return;
            }
            v0 = 0; v1 = 0; v2 = 0; v3 = 0;
            return;
        }
        v0 = d < headDim ? (float)cache[kv] : 0f;
        v1 = d + 1 < headDim ? (float)cache[kv + 1] : 0f;
        v2 = d + 2 < headDim ? (float)cache[kv + 2] : 0f;
        v3 = d + 3 < headDim ? (float)cache[kv + 3] : 0f;
    }

    /// <summary>This lane's part of q·k for the cache row at <paramref name="kv"/> (dims past head_dim add 0).</summary>
    private static float Score(ArrayView<Half> kCache, long kv, int d, int headDim, bool wide, float q0, float q1, float q2, float q3)
    {
        Load(kCache, kv, d, headDim, wide, out float k0, out float k1, out float k2, out float k3);
        return (q0 * k0 + q1 * k1) + (q2 * k2 + q3 * k3);
    }
}

/// <summary>attention and the quantize of its output in one launch (op attention, fused=attention+quantize): the warp
/// that computes 32 consecutive outputs of a head also writes them as one 8-bit block of the o projection's input
/// (<see cref="Quantize.Store1"/>, the same bytes as the quantize kernel), so a decode step has one small launch fewer
/// a layer. Needs head_dim a multiple of 32 and n_head·head_dim of 64 (no padding block); the planner runs attention
/// and quantize otherwise, and attention alone where no matmul reads the 8-bit output.</summary>
public static class AttentionQuant
{
    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<byte> yq, int nHead, int nHeadKv, int headDim, int nTokens, float scale) =>
        Attention.Heads(q, kCache, vCache, positions, y, yq, nHead, nHeadKv, headDim, scale, quantize: true);
}

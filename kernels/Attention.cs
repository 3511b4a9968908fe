using Engine.Kernels.Formats;
using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Causal GQA attention of one query head of one token over the f16 cache: out = softmax(q·Kᵀ·scale)·V over
/// positions 0..pos (query head h reads kv head h / (n_head / n_head_kv)). One group per (head, token); its warps
/// split the positions and keep an online softmax (Milakov &amp; Gimelshein 2018; flash-decoding), then merge through
/// shared memory. A lane holds four consecutive head dims 4·lane .. 4·lane + 3 (head_dim ≤ <see cref="MaxHeadDim"/>)
/// and reads them from the cache as one 8-byte load when head_dim and kv_dim are multiples of 4. A warp takes four
/// positions per step, their loads in flight together; the first step's rows, where earlier steps wrote them, are
/// loaded before the PDL wait (<see cref="Pdl"/>). The merge is a warp reduction of the per-warp maxima and
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
        var warpMax = SharedMemory.Allocate<float>(MaxWarps);
        var warpSum = SharedMemory.Allocate<float>(MaxWarps);
        var factor = SharedMemory.Allocate<float>(MaxWarps);
        var warpAcc = SharedMemory.Allocate<float>(MaxWarps * MaxHeadDim);

        int head = Grid.IdxX, t = Grid.IdxY;
        int kvHead = head / (nHead / nHeadKv);
        int kvDim = nHeadKv * headDim;
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = Group.DimX / Reduce.WarpLanes;
        long qRow = ((long)t * nHead + head) * headDim;
        int d = 4 * lane;
        bool wide = (headDim & 3) == 0 && (kvDim & 3) == 0;
        int count = positions[t] + 1;
        long kvBase = (long)kvHead * headDim + d;

        // The K and V rows of this warp's first four positions, where an earlier step wrote them, are loaded before
        // the PDL wait, so their DRAM latency (the cache leaves L2 between tokens) overlaps the kernels before this
        // one. Both reads are safe there: positions is copied from the host before the step's first kernel (which
        // every later launch follows), and rows before the step's first position (positions[0]) are never written by
        // this step. The rest, this step's rows included, are loaded after the wait.
        int stepStart = positions[0];
        int pa = warp, pb = pa + warps, pc = pa + 2 * warps, pd = pa + 3 * warps;
        Ld.Pair ka = default, kb = default, kc = default, kd = default, va = default, vb = default, vc = default, vd = default;
        if (pa < stepStart) Fetch(kCache, vCache, Row(pa, count, kvDim, kvBase), d, headDim, wide, out ka, out va);
        if (pb < stepStart) Fetch(kCache, vCache, Row(pb, count, kvDim, kvBase), d, headDim, wide, out kb, out vb);
        if (pc < stepStart) Fetch(kCache, vCache, Row(pc, count, kvDim, kvBase), d, headDim, wide, out kc, out vc);
        if (pd < stepStart) Fetch(kCache, vCache, Row(pd, count, kvDim, kvBase), d, headDim, wide, out kd, out vd);

        Pdl.Wait();
        float q0 = d < headDim ? q[qRow + d] : 0, q1 = d + 1 < headDim ? q[qRow + d + 1] : 0;
        float q2 = d + 2 < headDim ? q[qRow + d + 2] : 0, q3 = d + 3 < headDim ? q[qRow + d + 3] : 0;

        float max = -1e30f, sum = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        // Four positions per iteration (p, p + warps, p + 2·warps, p + 3·warps): their K and V loads are issued
        // together, so a warp waits for memory once per four positions instead of once per position. Positions past
        // the end read the last row (clamped), weighted 0.
        for (int p = warp; p < count; p += 4 * warps)
        {
            pa = p; pb = p + warps; pc = p + 2 * warps; pd = p + 3 * warps;
            bool first = p == warp;   // the rows loaded before the wait are this iteration's
            if (!first || pa >= stepStart) Fetch(kCache, vCache, Row(pa, count, kvDim, kvBase), d, headDim, wide, out ka, out va);
            if (!first || pb >= stepStart) Fetch(kCache, vCache, Row(pb, count, kvDim, kvBase), d, headDim, wide, out kb, out vb);
            if (!first || pc >= stepStart) Fetch(kCache, vCache, Row(pc, count, kvDim, kvBase), d, headDim, wide, out kc, out vc);
            if (!first || pd >= stepStart) Fetch(kCache, vCache, Row(pd, count, kvDim, kvBase), d, headDim, wide, out kd, out vd);
            float sa = Reduce.WarpSum(Score(ka, q0, q1, q2, q3)) * scale, sb = Reduce.WarpSum(Score(kb, q0, q1, q2, q3)) * scale;
            float sc = Reduce.WarpSum(Score(kc, q0, q1, q2, q3)) * scale, sd = Reduce.WarpSum(Score(kd, q0, q1, q2, q3)) * scale;
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
            a0 = a0 * correction + ((wa * Ld.Half(va.A) + wb * Ld.Half(vb.A)) + (wc * Ld.Half(vc.A) + wd * Ld.Half(vd.A)));
            a1 = a1 * correction + ((wa * Ld.Half(va.A >> 16) + wb * Ld.Half(vb.A >> 16)) + (wc * Ld.Half(vc.A >> 16) + wd * Ld.Half(vd.A >> 16)));
            a2 = a2 * correction + ((wa * Ld.Half(va.B) + wb * Ld.Half(vb.B)) + (wc * Ld.Half(vc.B) + wd * Ld.Half(vd.B)));
            a3 = a3 * correction + ((wa * Ld.Half(va.B >> 16) + wb * Ld.Half(vb.B >> 16)) + (wc * Ld.Half(vc.B >> 16) + wd * Ld.Half(vd.B >> 16)));
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

    /// <summary>Offset of position <paramref name="p"/>'s row (dims from this lane's) in a layer's cache, the position
    /// clamped to the last one (<paramref name="count"/> − 1).</summary>
    private static long Row(int p, int count, int kvDim, long kvBase) => (long)IntrinsicMath.Min(p, count - 1) * kvDim + kvBase;

    /// <summary>The K and V cache row dims d .. d + 3 at <paramref name="kv"/> (already offset by d) as four f16 bit
    /// patterns (A = dims d, d + 1; B = d + 2, d + 3), 0 past head_dim: one 8-byte load each when head_dim and kv_dim
    /// are multiples of 4.</summary>
    private static void Fetch(ArrayView<Half> kCache, ArrayView<Half> vCache, long kv, int d, int headDim, bool wide,
        out Ld.Pair k, out Ld.Pair v)
    {
        k = default; v = default;
        if (d >= headDim) return;
        if (wide)
        {
            k = kCache.Cast<Ld.Pair>()[kv >> 2];
            v = vCache.Cast<Ld.Pair>()[kv >> 2];
            return;
        }
        var kBits = kCache.Cast<ushort>();
        var vBits = vCache.Cast<ushort>();
        k.A = kBits[kv] | (d + 1 < headDim ? (uint)kBits[kv + 1] << 16 : 0u);
        v.A = vBits[kv] | (d + 1 < headDim ? (uint)vBits[kv + 1] << 16 : 0u);
        k.B = d + 2 < headDim ? kBits[kv + 2] | (d + 3 < headDim ? (uint)kBits[kv + 3] << 16 : 0u) : 0u;
        v.B = d + 2 < headDim ? vBits[kv + 2] | (d + 3 < headDim ? (uint)vBits[kv + 3] << 16 : 0u) : 0u;
    }

    /// <summary>This lane's part of q·k for a K row's four dims (dims past head_dim are 0 in both).</summary>
    private static float Score(Ld.Pair k, float q0, float q1, float q2, float q3) =>
        (q0 * Ld.Half(k.A) + q1 * Ld.Half(k.A >> 16)) + (q2 * Ld.Half(k.B) + q3 * Ld.Half(k.B >> 16));
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

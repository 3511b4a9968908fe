using Engine.Kernels.Formats;
using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Causal GQA attention over the f16 cache: out = softmax(q·Kᵀ·scale)·V over positions 0..pos, query head h
/// reading kv head h / (n_head / n_head_kv). Split over the positions (flash-decoding: Dao et al. 2023): the grid is
/// n_head_kv × S groups of 256 threads per token (S = ceil(32 / n_tokens): 32 for a decode step, 1 from 32 tokens on).
/// From <see cref="SharedFromPositions"/> positions on (shared mode), group (kv head, s) takes the s-th of up to S
/// equal ranges of positions for every query head of its kv head, four heads a pass, so each K and V row is read
/// once for the four (the GQA heads share it); below (per-head mode) group s takes query head s % group over range
/// s / group, spreading a short context over more warps. Ranges hold at least <see cref="MinSplitPositions"/>
/// positions; groups past the ranges a context needs return at once. A lane holds four consecutive head dims 4·lane ..
/// 4·lane + 3 (head_dim ≤ <see cref="MaxHeadDim"/>), read from the cache as one 8-byte load when head_dim and kv_dim
/// are multiples of 4; a warp takes four positions per step, their loads in flight together, and keeps an online
/// softmax per head (Milakov &amp; Gimelshein 2018); the first step's rows, where earlier steps wrote them, are loaded
/// before the PDL wait (<see cref="Pdl"/>). The warps merge through shared memory. With one range the group writes the
/// output; otherwise each range's (max, sum, unnormalised output) goes to <c>attn_part</c>, and the last group of the
/// kv head to finish (a ticket from <c>attn_sync</c>, which it resets to 0 for the next launch) merges the ranges in
/// range order, so the result does not depend on which group is last. Measured (docs/benchmarks.md "Attention split
/// over the context"): 8B decode at 4096 positions 1.54×, at 8000 2.03× the one-group-a-head kernel before it, 3 %
/// slower in the first few hundred positions (the range merge, eight warps a group instead of 32).</summary>
public static class Attention
{
    public const int MaxHeadDim = 128;

    /// <summary>Warps a group may have (the spec's block is 256: 8).</summary>
    public const int MaxWarps = 32;

    /// <summary>Query heads a pass of a group covers (the GQA heads of a kv head, four at a time).</summary>
    public const int HeadsPerPass = 4;

    /// <summary>Fewest positions a range of a split takes: two steps of a group's eight warps.</summary>
    public const int MinSplitPositions = 64;

    /// <summary>Contexts from this many positions on share each K and V row among a kv head's query heads (shared
    /// mode); shorter ones spread the query heads over groups (per-head mode).</summary>
    public const int SharedFromPositions = 1024;

    /// <summary>Most ranges a kv head's positions are split into: the spec's grid has ceil(32 / n_tokens) groups a kv
    /// head and token (llama.graph), 32 for a decode step.</summary>
    public const int MaxRanges = 32;

    /// <summary>Floats of one range's partial result in <c>part</c>: max, sum, then head_dim unnormalised outputs.</summary>
    public static int PartStride(int headDim) => headDim + 2;

    /// <summary>Where range <paramref name="range"/>'s partial result for query head <paramref name="head"/> of token
    /// <paramref name="t"/> starts in <c>part</c> (<paramref name="splits"/> range slots a token, every head's in turn).</summary>
    internal static long PartAt(int t, int splits, int range, int nHead, int head, int headDim) =>
        ((long)(t * splits + range) * nHead + head) * PartStride(headDim);

    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim, int nTokens, float scale) =>
        Heads(q, kCache, vCache, positions, y, y.Cast<byte>(), part, sync, nHead, nHeadKv, headDim, scale, quantize: false);

    /// <summary>The group's ranges; with <paramref name="quantize"/> the output is also written quantized into
    /// <paramref name="yq"/> (<see cref="AttentionQuant"/>).</summary>
    public static void Heads(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<byte> yq, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim,
        float scale, bool quantize)
    {
        var warpMax = SharedMemory.Allocate<float>(MaxWarps * HeadsPerPass);
        var warpSum = SharedMemory.Allocate<float>(MaxWarps * HeadsPerPass);
        var factor = SharedMemory.Allocate<float>(MaxWarps * HeadsPerPass);
        var headSum = SharedMemory.Allocate<float>(HeadsPerPass);
        var headMax = SharedMemory.Allocate<float>(HeadsPerPass);
        var warpAcc = SharedMemory.Allocate<float>(MaxWarps * MaxHeadDim);   // one head's dims of every warp at a time
        var last = SharedMemory.Allocate<int>(1);

        int splits = Grid.DimX / nHeadKv;
        int kvHead = Grid.IdxX / splits, split = Grid.IdxX - kvHead * splits, t = Grid.IdxY;
        int group = nHead / nHeadKv;
        int kvDim = nHeadKv * headDim;
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = Group.DimX / Reduce.WarpLanes;
        int d = 4 * lane;
        bool wide = (headDim & 3) == 0 && (kvDim & 3) == 0;
        // positions and rows before the step's first position are written before this step's first kernel (by the
        // host's copy, or a greedy step's argmax in the step before): safe to read before the PDL wait.
        int count = positions[t] + 1;
        // Shared mode (deep contexts, or fewer groups than query heads): group s takes range s for every query head of
        // the kv head. Per-head mode (short contexts): group s takes query head s % group over range s / group, so the
        // few positions are spread over more warps; the K and V rows are read once a query head (mostly from L2).
        bool perHead = count < SharedFromPositions && splits >= group;
        int ranges = IntrinsicMath.Min(perHead ? splits / group : splits, (count + MinSplitPositions - 1) / MinSplitPositions);
        int range = perHead ? split / group : split;
        if (range >= ranges) return;   // nothing to write (range 0 always runs, and waits)
        int hStart = perHead ? split - range * group : 0, hEnd = perHead ? hStart + 1 : group;
        int participants = perHead ? ranges * group : ranges;
        int chunk = (count + ranges - 1) / ranges;
        int begin = range * chunk, end = IntrinsicMath.Min(begin + chunk, count);
        long kvBase = (long)kvHead * headDim + d;
        int stepStart = positions[0];

        // The K and V rows of this warp's first four positions, where an earlier step wrote them, before the wait (their
        // DRAM latency overlaps the kernels before this one; the cache leaves L2 between tokens).
        int pa = begin + warp, pb = pa + warps, pc = pa + 2 * warps, pd = pa + 3 * warps;
        Ld.Pair ka = default, kb = default, kc = default, kd = default, va = default, vb = default, vc = default, vd = default;
        if (pa < stepStart && pa < end) FetchRow(kCache, vCache, pa, end, kvDim, kvBase, d, headDim, wide, out ka, out va);
        if (pb < stepStart && pb < end) FetchRow(kCache, vCache, pb, end, kvDim, kvBase, d, headDim, wide, out kb, out vb);
        if (pc < stepStart && pc < end) FetchRow(kCache, vCache, pc, end, kvDim, kvBase, d, headDim, wide, out kc, out vc);
        if (pd < stepStart && pd < end) FetchRow(kCache, vCache, pd, end, kvDim, kvBase, d, headDim, wide, out kd, out vd);
        Pdl.Wait();

        for (int h0 = hStart; h0 < hEnd; h0 += HeadsPerPass)
        {
            // The pass's heads h0 .. h0 + 3 of the kv head, those before hEnd (the others are skipped, never stored).
            int head0 = kvHead * group + h0;
            bool v1 = h0 + 1 < hEnd, v2 = h0 + 2 < hEnd, v3 = h0 + 3 < hEnd;
            LoadQ(q, t, nHead, headDim, head0, true, d, out float q00, out float q01, out float q02, out float q03);
            LoadQ(q, t, nHead, headDim, head0 + 1, v1, d, out float q10, out float q11, out float q12, out float q13);
            LoadQ(q, t, nHead, headDim, head0 + 2, v2, d, out float q20, out float q21, out float q22, out float q23);
            LoadQ(q, t, nHead, headDim, head0 + 3, v3, d, out float q30, out float q31, out float q32, out float q33);
            var s0 = Softmax.Empty; var s1 = Softmax.Empty; var s2 = Softmax.Empty; var s3 = Softmax.Empty;
            for (int p = begin + warp; p < end; p += 4 * warps)
            {
                pa = p; pb = p + warps; pc = p + 2 * warps; pd = p + 3 * warps;
                bool preloaded = h0 == hStart && p == begin + warp;   // the rows loaded before the wait are this step's
                if (!preloaded || pa >= stepStart) FetchRow(kCache, vCache, pa, end, kvDim, kvBase, d, headDim, wide, out ka, out va);
                if (!preloaded || pb >= stepStart) FetchRow(kCache, vCache, pb, end, kvDim, kvBase, d, headDim, wide, out kb, out vb);
                if (!preloaded || pc >= stepStart) FetchRow(kCache, vCache, pc, end, kvDim, kvBase, d, headDim, wide, out kc, out vc);
                if (!preloaded || pd >= stepStart) FetchRow(kCache, vCache, pd, end, kvDim, kvBase, d, headDim, wide, out kd, out vd);
                bool hb = pb < end, hc = pc < end, hd = pd < end;
                s0.Step(ka, kb, kc, kd, va, vb, vc, vd, hb, hc, hd, q00, q01, q02, q03, scale);
                if (v1) s1.Step(ka, kb, kc, kd, va, vb, vc, vd, hb, hc, hd, q10, q11, q12, q13, scale);
                if (v2) s2.Step(ka, kb, kc, kd, va, vb, vc, vd, hb, hc, hd, q20, q21, q22, q23, scale);
                if (v3) s3.Step(ka, kb, kc, kd, va, vb, vc, vd, hb, hc, hd, q30, q31, q32, q33, scale);
            }

            // Warps → the group: per head, the maximum over warps, each warp's weight exp(max_w − max), the sum
            // (warp i of the first four reduces head i over the warps, lane w holding warp w's).
            if (lane == 0)
            {
                warpMax[warp * HeadsPerPass] = s0.Max; warpSum[warp * HeadsPerPass] = s0.Sum;
                warpMax[warp * HeadsPerPass + 1] = s1.Max; warpSum[warp * HeadsPerPass + 1] = s1.Sum;
                warpMax[warp * HeadsPerPass + 2] = s2.Max; warpSum[warp * HeadsPerPass + 2] = s2.Sum;
                warpMax[warp * HeadsPerPass + 3] = s3.Max; warpSum[warp * HeadsPerPass + 3] = s3.Sum;
            }
            Group.Barrier();
            if (warp < HeadsPerPass)
            {
                float m = lane < warps ? warpMax[lane * HeadsPerPass + warp] : -1e30f;
                float total = Reduce.WarpMax(m);
                float f = lane < warps ? MathF.Exp(m - total) : 0f;
                float sum = Reduce.WarpSum(lane < warps ? warpSum[lane * HeadsPerPass + warp] * f : 0f);
                if (lane < warps) factor[lane * HeadsPerPass + warp] = f;
                if (lane == 0) { headMax[warp] = total; headSum[warp] = sum; }
            }
            // Then head by head: the warps' dims into shared memory, one output per thread (a warp's 32 outputs are 32
            // consecutive dims of the head: one quantization block when head_dim is a multiple of 32).
            for (int i = 0; i < HeadsPerPass && h0 + i < hEnd; i++)
            {
                var si = i == 0 ? s0 : i == 1 ? s1 : i == 2 ? s2 : s3;
                si.ToShared(warpAcc, warp, d, headDim);
                Group.Barrier();
                int head = head0 + i;
                for (int e = Group.IdxX; e < headDim; e += Group.DimX)
                {
                    float o = 0;
                    for (int w = 0; w < warps; w++) o += warpAcc[w * MaxHeadDim + e] * factor[w * HeadsPerPass + i];
                    if (ranges == 1)
                    {
                        float v = o / headSum[i];
                        y[((long)t * nHead + head) * headDim + e] = v;
                        if (quantize) Quantize.Store1(v, yq, t, nHead * headDim, head * headDim + e);
                    }
                    else
                    {
                        long at = PartAt(t, splits, range, nHead, head, headDim);
                        if (e == 0) { part[at] = headMax[i]; part[at + 1] = headSum[i]; }
                        part[at + 2 + e] = o;
                    }
                }
                Group.Barrier();   // warpAcc is rewritten by the next head
            }
        }
        if (ranges == 1) return;
        MergeRanges(y, yq, part, sync, warpAcc, last, t, kvHead, nHead, nHeadKv, headDim, splits, ranges, participants, quantize,
            sixteenAtOnce: true);
    }

    /// <summary>After a group stored its ranges' partial results (every thread's stores before the call): the last of
    /// the kv head's <paramref name="participants"/> groups (a ticket from <c>sync</c>, which it resets to 0) merges the
    /// <paramref name="ranges"/> ranges of each query head of the kv head in range order and writes the output (and its
    /// 8-bit form). Every load of a step is in flight at once: a warp a head, its lane r reading range r's (max, sum) in
    /// one load (ranges ≤ <see cref="MaxRanges"/>); then each output over 16 ranges' partials at a time with
    /// <paramref name="sixteenAtOnce"/> (<see cref="Sum16"/>, the ranged kernel's 32 ranges in two steps), else 8
    /// (<see cref="Sum8"/>, the short kernel's, whose registers sixteen raised from 128 to 146). The four-at-a-time loop before was a chain of
    /// dependent trips to L2, eight for 32 ranges and twice a thread: 8B decode at 2000–4096 positions +3.4 to +3.9 %,
    /// the short kernel's +0.9 to +1 % (docs/benchmarks.md "Session 11"). <paramref name="weight"/> is shared memory of
    /// group × <see cref="MaxRanges"/> floats, <paramref name="last"/> one shared int. All threads of the group call
    /// it.</summary>
    internal static void MergeRanges(ArrayView<float> y, ArrayView<byte> yq, ArrayView<float> part, ArrayView<int> sync,
        ArrayView<float> weight, ArrayView<int> last, int t, int kvHead, int nHead, int nHeadKv, int headDim, int splits,
        int ranges, int participants, bool quantize, bool sixteenAtOnce)
    {
        int group = nHead / nHeadKv;
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = Group.DimX / Reduce.WarpLanes;
        MemoryFence.DeviceLevel();
        Group.Barrier();
        if (Group.IdxX == 0) last[0] = Atomic.Add(ref sync[t * nHeadKv + kvHead], 1) == participants - 1 ? 1 : 0;
        Group.Barrier();
        if (last[0] == 0) return;
        MemoryFence.DeviceLevel();
        long rangeStride = (long)nHead * PartStride(headDim);   // from one range's partial of a head to the next's
        // weight: [group × MaxRanges] range weights exp(max_r − max) / Σ
        var pairs = part.Cast<Ld.Pair>();
        for (int i = warp; i < group; i += warps)
        {
            long at = PartAt(t, splits, 0, nHead, kvHead * group + i, headDim) + lane * rangeStride;
            var ms = lane < ranges ? pairs[at >> 1] : new Ld.Pair { A = Interop.FloatAsInt(-1e30f) };
            float mr = Interop.IntAsFloat(ms.A);
            float m = Reduce.WarpMax(mr);
            float f = lane < ranges ? MathF.Exp(mr - m) : 0f;
            float sum = Reduce.WarpSum(lane < ranges ? Interop.IntAsFloat(ms.B) * f : 0f);
            if (lane < ranges) weight[i * MaxRanges + lane] = f / sum;
        }
        Group.Barrier();
        for (int j = Group.IdxX; j < group * headDim; j += Group.DimX)
        {
            int i = j / headDim, e = j - i * headDim, head = kvHead * group + i;
            long at = PartAt(t, splits, 0, nHead, head, headDim) + 2 + e;
            float v = 0;
            for (int r = 0; r < ranges; r += sixteenAtOnce ? 16 : 8)
                v += sixteenAtOnce ? Sum16(part, at, rangeStride, weight, i * MaxRanges, r, ranges)
                    : Sum8(part, at, rangeStride, weight, i * MaxRanges, r, ranges);
            y[((long)t * nHead + head) * headDim + e] = v;
            if (quantize) Quantize.Store1(v, yq, t, nHead * headDim, head * headDim + e);
        }
        if (Group.IdxX == 0) sync[t * nHeadKv + kvHead] = 0;
    }

    /// <summary>Σ over ranges r .. r + 15 (those below <paramref name="ranges"/>) of the range's partial output at
    /// <paramref name="at"/> + r·stride times its weight: the sixteen loads issued before any use.</summary>
    private static float Sum16(ArrayView<float> part, long at, long stride, ArrayView<float> weight, int w, int r, int ranges)
    {
        float x0 = Partial(part, at, stride, r, ranges), x1 = Partial(part, at, stride, r + 1, ranges);
        float x2 = Partial(part, at, stride, r + 2, ranges), x3 = Partial(part, at, stride, r + 3, ranges);
        float x4 = Partial(part, at, stride, r + 4, ranges), x5 = Partial(part, at, stride, r + 5, ranges);
        float x6 = Partial(part, at, stride, r + 6, ranges), x7 = Partial(part, at, stride, r + 7, ranges);
        float x8 = Partial(part, at, stride, r + 8, ranges), x9 = Partial(part, at, stride, r + 9, ranges);
        float x10 = Partial(part, at, stride, r + 10, ranges), x11 = Partial(part, at, stride, r + 11, ranges);
        float x12 = Partial(part, at, stride, r + 12, ranges), x13 = Partial(part, at, stride, r + 13, ranges);
        float x14 = Partial(part, at, stride, r + 14, ranges), x15 = Partial(part, at, stride, r + 15, ranges);
        return (((x0 * Weight(weight, w, r, ranges) + x1 * Weight(weight, w, r + 1, ranges))
                + (x2 * Weight(weight, w, r + 2, ranges) + x3 * Weight(weight, w, r + 3, ranges)))
            + ((x4 * Weight(weight, w, r + 4, ranges) + x5 * Weight(weight, w, r + 5, ranges))
                + (x6 * Weight(weight, w, r + 6, ranges) + x7 * Weight(weight, w, r + 7, ranges))))
            + (((x8 * Weight(weight, w, r + 8, ranges) + x9 * Weight(weight, w, r + 9, ranges))
                + (x10 * Weight(weight, w, r + 10, ranges) + x11 * Weight(weight, w, r + 11, ranges)))
            + ((x12 * Weight(weight, w, r + 12, ranges) + x13 * Weight(weight, w, r + 13, ranges))
                + (x14 * Weight(weight, w, r + 14, ranges) + x15 * Weight(weight, w, r + 15, ranges))));
    }

    /// <summary><see cref="Sum16"/> over ranges r .. r + 7.</summary>
    private static float Sum8(ArrayView<float> part, long at, long stride, ArrayView<float> weight, int w, int r, int ranges)
    {
        float x0 = Partial(part, at, stride, r, ranges), x1 = Partial(part, at, stride, r + 1, ranges);
        float x2 = Partial(part, at, stride, r + 2, ranges), x3 = Partial(part, at, stride, r + 3, ranges);
        float x4 = Partial(part, at, stride, r + 4, ranges), x5 = Partial(part, at, stride, r + 5, ranges);
        float x6 = Partial(part, at, stride, r + 6, ranges), x7 = Partial(part, at, stride, r + 7, ranges);
        return ((x0 * Weight(weight, w, r, ranges) + x1 * Weight(weight, w, r + 1, ranges))
                + (x2 * Weight(weight, w, r + 2, ranges) + x3 * Weight(weight, w, r + 3, ranges)))
            + ((x4 * Weight(weight, w, r + 4, ranges) + x5 * Weight(weight, w, r + 5, ranges))
                + (x6 * Weight(weight, w, r + 6, ranges) + x7 * Weight(weight, w, r + 7, ranges)));
    }

    /// <summary>Range r's partial output (0 past the ranges: the slot may hold anything).</summary>
    private static float Partial(ArrayView<float> part, long at, long stride, int r, int ranges) =>
        r < ranges ? part[at + r * stride] : 0f;

    private static float Weight(ArrayView<float> weight, int w, int r, int ranges) => r < ranges ? weight[w + r] : 0f;

    /// <summary>Head <paramref name="head"/>'s q dims d .. d + 3 of token t (0 past head_dim or for a head past the
    /// group).</summary>
    private static void LoadQ(ArrayView<float> q, int t, int nHead, int headDim, int head, bool valid, int d,
        out float q0, out float q1, out float q2, out float q3)
    {
        long row = ((long)t * nHead + head) * headDim;
        q0 = valid && d < headDim ? q[row + d] : 0; q1 = valid && d + 1 < headDim ? q[row + d + 1] : 0;
        q2 = valid && d + 2 < headDim ? q[row + d + 2] : 0; q3 = valid && d + 3 < headDim ? q[row + d + 3] : 0;
    }

    /// <summary>A warp's online softmax of one head: running maximum, sum of weights and the lane's four weighted dims.</summary>
    private struct Softmax
    {
        public float Max, Sum, A0, A1, A2, A3;

        public static Softmax Empty => new() { Max = -1e30f };

        /// <summary>Four positions (the first always valid, the others where <paramref name="hb"/>.. say so).</summary>
        public void Step(Ld.Pair ka, Ld.Pair kb, Ld.Pair kc, Ld.Pair kd, Ld.Pair va, Ld.Pair vb, Ld.Pair vc, Ld.Pair vd,
            bool hb, bool hc, bool hd, float q0, float q1, float q2, float q3, float scale)
        {
            float sa = Reduce.WarpSum(Score(ka, q0, q1, q2, q3)) * scale, sb = Reduce.WarpSum(Score(kb, q0, q1, q2, q3)) * scale;
            float sc = Reduce.WarpSum(Score(kc, q0, q1, q2, q3)) * scale, sd = Reduce.WarpSum(Score(kd, q0, q1, q2, q3)) * scale;
            if (!hb) sb = -1e30f;
            if (!hc) sc = -1e30f;
            if (!hd) sd = -1e30f;
            float newMax = IntrinsicMath.Max(IntrinsicMath.Max(Max, sa), IntrinsicMath.Max(IntrinsicMath.Max(sb, sc), sd));
            float correction = MathF.Exp(Max - newMax);
            float wa = MathF.Exp(sa - newMax);
            float wb = hb ? MathF.Exp(sb - newMax) : 0f;
            float wc = hc ? MathF.Exp(sc - newMax) : 0f;
            float wd = hd ? MathF.Exp(sd - newMax) : 0f;
            Sum = Sum * correction + ((wa + wb) + (wc + wd));
            A0 = A0 * correction + ((wa * Ld.Half(va.A) + wb * Ld.Half(vb.A)) + (wc * Ld.Half(vc.A) + wd * Ld.Half(vd.A)));
            A1 = A1 * correction + ((wa * Ld.Half(va.A >> 16) + wb * Ld.Half(vb.A >> 16)) + (wc * Ld.Half(vc.A >> 16) + wd * Ld.Half(vd.A >> 16)));
            A2 = A2 * correction + ((wa * Ld.Half(va.B) + wb * Ld.Half(vb.B)) + (wc * Ld.Half(vc.B) + wd * Ld.Half(vd.B)));
            A3 = A3 * correction + ((wa * Ld.Half(va.B >> 16) + wb * Ld.Half(vb.B >> 16)) + (wc * Ld.Half(vc.B >> 16) + wd * Ld.Half(vd.B >> 16)));
            Max = newMax;
        }

        /// <summary>This warp's dims into its row of <paramref name="warpAcc"/>.</summary>
        public readonly void ToShared(ArrayView<float> warpAcc, int warp, int d, int headDim)
        {
            int acc = warp * MaxHeadDim + d;
            if (d < headDim) warpAcc[acc] = A0;
            if (d + 1 < headDim) warpAcc[acc + 1] = A1;
            if (d + 2 < headDim) warpAcc[acc + 2] = A2;
            if (d + 3 < headDim) warpAcc[acc + 3] = A3;
        }
    }

    /// <summary>Offset of position <paramref name="p"/>'s row (dims from this lane's) in a layer's cache, the position
    /// clamped to the range's last one (<paramref name="end"/> − 1).</summary>
    internal static long Row(int p, int end, int kvDim, long kvBase) => (long)IntrinsicMath.Min(p, end - 1) * kvDim + kvBase;

    /// <summary><see cref="Row"/> in units of 2^<paramref name="shift"/> elements (4-element pairs, 8-element quads), in
    /// 32 bits: kv_dim and <paramref name="kvBase"/> must be multiples of the unit. A layer's cache has fewer than 2^31
    /// such units, and the 64-bit multiply and shifts of <see cref="Row"/> were most of the attention kernels' address
    /// arithmetic (docs/benchmarks.md "Session 13").</summary>
    internal static int RowUnits(int p, int end, int kvDim, long kvBase, int shift) =>
        IntrinsicMath.Min(p, end - 1) * (kvDim >> shift) + (int)(kvBase >> shift);

    /// <summary><see cref="Fetch"/> of position <paramref name="p"/>'s row (<see cref="Row"/>, clamped to the range).
    /// Where head_dim and kv_dim are multiples of 4 (<paramref name="wide"/>) the row's pair index is
    /// <see cref="RowUnits"/>'s 32-bit one.</summary>
    private static void FetchRow(ArrayView<Half> kCache, ArrayView<Half> vCache, int p, int end, int kvDim, long kvBase, int d,
        int headDim, bool wide, out Ld.Pair k, out Ld.Pair v)
    {
        if (!wide || d >= headDim)
        {
            Fetch(kCache, vCache, Row(p, end, kvDim, kvBase), d, headDim, wide, out k, out v);
            return;
        }
        int at = RowUnits(p, end, kvDim, kvBase, 2);
        k = kCache.Cast<Ld.Pair>()[at];
        v = vCache.Cast<Ld.Pair>()[at];
    }

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
    internal static float Score(Ld.Pair k, float q0, float q1, float q2, float q3) =>
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
        ArrayView<float> y, ArrayView<byte> yq, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim,
        int nTokens, float scale) =>
        Attention.Heads(q, kCache, vCache, positions, y, yq, part, sync, nHead, nHeadKv, headDim, scale, quantize: true);
}

/// <summary>Attention for short and middling contexts (the op's short kernel, attention_short / attention_quant_short in
/// llama.graph: the CUDA runtime runs it instead of <see cref="Attention"/> for one-token steps at up to
/// CudaModel.ShortAttentionPositions positions, docs/kernels.md). A query head's context is split into at most
/// ceil(8 / n_tokens) ranges of whole <see cref="PassPositions"/>-position passes, a group each: up to 128 positions one
/// group takes it all and nothing is merged; up to 1024 each range is one pass. Correct at any length (a range takes
/// more passes, the online softmax carried across them). A pass: (1) two threads a position, each taking half of the
/// head's dims of the K row (head_dim / 16 loads of 16 bytes) against q in shared memory, one shuffle for the score;
/// (2) the pass's maximum and sum over the group (a barrier each); (3) warp w takes positions w, w + 8, … of the pass,
/// a lane four dims of <see cref="RowsPerLane"/> V rows, all in flight together. The first pass's K and V rows, where
/// earlier steps wrote them, are loaded before the PDL wait, so their DRAM latency overlaps the kernels before this
/// one. Several ranges write (max, sum, unnormalised output) to <c>attn_part</c> and the kv head's last group merges
/// them (<see cref="Attention.MergeRanges"/>, the ranged kernel's merge). Where the ranged kernel takes four positions
/// a warp step, one dependent load after another, every load of a pass here is in flight at once. A kernel of its
/// own: inside the ranged kernel the same code made ptxas slow that kernel's long-context path by 3–4 % of a token
/// (docs/benchmarks.md "Session 10"). Needs head_dim a multiple of 16 and at most <see cref="Attention.MaxHeadDim"/>,
/// and 8 warps (the spec's block); the planner gives the op no short kernel otherwise.</summary>
public static class AttentionShort
{
    /// <summary>Positions a pass covers: two threads each in phase 1, <see cref="RowsPerLane"/> rows a warp in phase 3.</summary>
    public const int PassPositions = 128;

    /// <summary>V rows a lane holds in flight (of one pass: PassPositions / 8 warps).</summary>
    public const int RowsPerLane = 16;

    /// <summary>The register cap PtxBuild writes into the short kernels' PTX (<c>.maxnreg</c>): 128 keeps two groups of
    /// 256 threads an SM, so the 256 groups of a context of 1024–2048 positions run in one wave (ptxas gave the kernel
    /// 133 once its rows were addressed by 32-bit indices: one group an SM). 0 for the other families.</summary>
    public static int MaxRegisters(string family) => family is "attention_short" or "attention_quant_short" ? 128 : 0;

    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim, int nTokens, float scale) =>
        Head(q, kCache, vCache, positions, y, y.Cast<byte>(), part, sync, nHead, nHeadKv, headDim, scale, quantize: false);

    /// <summary>Query head Grid.IdxX of token Grid.IdxY; with <paramref name="quantize"/> the output is also written
    /// quantized (a warp's 32 outputs are one block: head_dim a multiple of 32).</summary>
    public static void Head(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<byte> yq, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim,
        float scale, bool quantize)
    {
        var scores = SharedMemory.Allocate<float>(2 * PassPositions);   // two passes' weights, alternating
        var qs = SharedMemory.Allocate<float>(Attention.MaxHeadDim);
        var redMax = SharedMemory.Allocate<float>(Attention.MaxWarps);
        var redSum = SharedMemory.Allocate<float>(Attention.MaxWarps);
        var warpAcc = SharedMemory.Allocate<float>(Attention.MaxWarps * Attention.MaxHeadDim);
        var last = SharedMemory.Allocate<int>(1);

        // Group (head, range) of token Grid.IdxY: a head's context in up to `slots` ranges of whole passes (one pass
        // each up to slots · 128 positions), groups past the ranges a context needs return at once.
        int slots = Grid.DimX / nHead, t = Grid.IdxY;
        int head = Grid.IdxX / slots, range = Grid.IdxX - head * slots;
        int group = nHead / nHeadKv, kvHead = head / group, kvDim = nHeadKv * headDim;
        // positions and the rows before the step's first position are written before this step's first kernel (by
        // the host's copy, or a greedy step's argmax in the step before): safe to read before the PDL wait.
        int count = positions[t] + 1, stepStart = positions[0];
        int chunk = ((count + slots - 1) / slots + PassPositions - 1) / PassPositions * PassPositions;
        int ranges = (count + chunk - 1) / chunk;
        if (range >= ranges) return;   // nothing to write (range 0 always runs)
        int begin = range * chunk, end = IntrinsicMath.Min(begin + chunk, count);

        int tid = Group.IdxX, lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = Group.DimX / Reduce.WarpLanes;
        int halfDims = headDim / 2, quads = headDim / 16;
        long kvBase = (long)kvHead * headDim;
        var kRows = kCache.Cast<Ld.Quad<uint>>();
        var vPairs = vCache.Cast<Ld.Pair>();
        // Phase 1: thread pair p0 = tid / 2 (a position of the pass), side = which half of the dims. Phase 3: four dims.
        int side = tid & 1, p0 = tid >> 1;
        long kOffset = kvBase + side * halfDims;
        int d = 4 * lane;
        bool dims = d < headDim;
        long vOffset = kvBase + d;

        KHalf k = default;
        // K half rows by quad index (8 f16: kv_dim and the offset are multiples of 8 here).
        if (begin + p0 < stepStart) k = LoadKHalf(kRows, Attention.RowUnits(begin + p0, end, kvDim, kOffset, 3), quads);
        VRows v = default;
        if (dims) LoadVRows(vPairs, ref v, begin + warp, warps, end, kvDim, vOffset, 0, stepStart);
        Pdl.Wait();

        long qRow = ((long)t * nHead + head) * headDim;
        for (int e = tid; e < headDim; e += Group.DimX) qs[e] = q[qRow + e];
        if (dims) LoadVRows(vPairs, ref v, begin + warp, warps, end, kvDim, vOffset, stepStart, int.MaxValue);
        Group.Barrier();

        float max = -1e30f, sum = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int first = begin; first < end; first += PassPositions)
        {
            int buffer = ((first - begin) / PassPositions & 1) * PassPositions;
            // (1) Scores. Both threads of a position take the shuffle together (a pass is whole warps of positions);
            // positions past the range are computed on its last row and not kept.
            int p = first + p0;
            if (first > begin || p >= stepStart) k = LoadKHalf(kRows, Attention.RowUnits(p, end, kvDim, kOffset, 3), quads);
            if (first > begin && dims) LoadVRows(vPairs, ref v, first + warp, warps, end, kvDim, vOffset, 0, int.MaxValue);
            float s = DotKHalf(k, qs, side * halfDims, quads);
            s = (s + Warp.ShuffleXor(s, 1)) * scale;
            float localMax = p < end ? s : -1e30f;
            if (p < end && side == 0) scores[buffer + p0] = s;
            localMax = Reduce.WarpMax(localMax);
            if (lane == 0) redMax[warp] = localMax;
            Group.Barrier();

            // (2) The pass's weights exp(s − max) in place, the running maximum and sum rescaled to it.
            float passMax = redMax[0];
            for (int i = 1; i < warps; i++) passMax = IntrinsicMath.Max(passMax, redMax[i]);
            float newMax = IntrinsicMath.Max(max, passMax);
            float correction = MathF.Exp(max - newMax);
            max = newMax;
            float w = 0;
            if (tid < PassPositions && first + tid < end)
            {
                w = MathF.Exp(scores[buffer + tid] - max);
                scores[buffer + tid] = w;
            }
            w = Reduce.WarpSum(w);
            if (lane == 0) redSum[warp] = w;
            Group.Barrier();
            float passSum = redSum[0];
            for (int i = 1; i < warps; i++) passSum += redSum[i];
            sum = sum * correction + passSum;

            // (3) Σ w·V over the warp's positions of the pass.
            a0 *= correction; a1 *= correction; a2 *= correction; a3 *= correction;
            v.Accumulate(scores, buffer, first, warp, warps, end, ref a0, ref a1, ref a2, ref a3);
        }

        int acc = warp * Attention.MaxHeadDim + d;
        if (dims) { warpAcc[acc] = a0; warpAcc[acc + 1] = a1; warpAcc[acc + 2] = a2; warpAcc[acc + 3] = a3; }
        Group.Barrier();
        long at = Attention.PartAt(t, slots, range, nHead, head, headDim);
        for (int e = tid; e < headDim; e += Group.DimX)
        {
            float o = warpAcc[e];
            for (int i = 1; i < warps; i++) o += warpAcc[i * Attention.MaxHeadDim + e];
            if (ranges == 1)
            {
                float value = o / sum;
                y[qRow + e] = value;
                if (quantize) Quantize.Store1(value, yq, t, nHead * headDim, head * headDim + e);
            }
            else
            {
                // The range's (max, sum, unnormalised output), merged by the kv head's last group (the ranged kernel's
                // merge: the same slots and order).
                if (e == 0) { part[at] = max; part[at + 1] = sum; }
                part[at + 2 + e] = o;
            }
        }
        if (ranges == 1) return;
        Group.Barrier();   // warpAcc becomes the merge's weights
        Attention.MergeRanges(y, yq, part, sync, warpAcc, last, t, kvHead, nHead, nHeadKv, headDim, slots, ranges,
            ranges * group, quantize, sixteenAtOnce: false);
    }

    /// <summary>Half a K row: up to eight 16-byte quads (eight f16 dims each), <c>quads</c> of them loaded.</summary>
    private struct KHalf
    {
        public Ld.Quad<uint> C0, C1, C2, C3, C4, C5, C6, C7;
    }

    private static KHalf LoadKHalf(ArrayView<Ld.Quad<uint>> rows, int at, int quads)
    {
        KHalf k = default;
        var row = rows.SubView(at, quads);
        k.C0 = row[0];
        if (quads > 1) k.C1 = row[1];
        if (quads > 2) k.C2 = row[2];
        if (quads > 3) k.C3 = row[3];
        if (quads > 4) k.C4 = row[4];
        if (quads > 5) k.C5 = row[5];
        if (quads > 6) k.C6 = row[6];
        if (quads > 7) k.C7 = row[7];
        return k;
    }

    private static float DotKHalf(KHalf k, ArrayView<float> qs, int e, int quads)
    {
        float s = DotQuad(k.C0, qs, e);
        if (quads > 1) s += DotQuad(k.C1, qs, e + 8);
        if (quads > 2) s += DotQuad(k.C2, qs, e + 16);
        if (quads > 3) s += DotQuad(k.C3, qs, e + 24);
        if (quads > 4) s += DotQuad(k.C4, qs, e + 32);
        if (quads > 5) s += DotQuad(k.C5, qs, e + 40);
        if (quads > 6) s += DotQuad(k.C6, qs, e + 48);
        if (quads > 7) s += DotQuad(k.C7, qs, e + 56);
        return s;
    }

    /// <summary>q[e .. e + 7] · eight f16 dims: the ranged kernel's four-dim score twice.</summary>
    private static float DotQuad(Ld.Quad<uint> c, ArrayView<float> qs, int e) =>
        Attention.Score(new Ld.Pair { A = c.A, B = c.B }, qs[e], qs[e + 1], qs[e + 2], qs[e + 3])
        + Attention.Score(new Ld.Pair { A = c.C, B = c.D }, qs[e + 4], qs[e + 5], qs[e + 6], qs[e + 7]);

    /// <summary>This lane's four dims of the V rows at positions first, first + warps, …, first + 15·warps: those in
    /// the context whose position lies in [<paramref name="from"/>, <paramref name="to"/>) are loaded (rows past the
    /// context are not: <see cref="VRows.Accumulate"/> skips them). kv_dim and <paramref name="offset"/> are multiples
    /// of 4 (head_dim a multiple of 16), so row p's dims are pair p·kv_dim/4 + offset/4 of the cache: one view from
    /// the lane's dims and an int index stepping by warps·kv_dim/4 (a 64-bit multiply and clamp a row made the address
    /// arithmetic most of the kernel's instructions: docs/benchmarks.md "Session 13").</summary>
    private static void LoadVRows(ArrayView<Ld.Pair> v, ref VRows r, int first, int warps, int count, int kvDim, long offset,
        int from, int to)
    {
        var lane = v.SubView(offset >> 2, v.Length - (offset >> 2));
        int hi = IntrinsicMath.Min(to, count), stride = kvDim >> 2, step = warps * stride;
        int p = first, at = first * stride;
        if (p >= from && p < hi) r.R0 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R1 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R2 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R3 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R4 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R5 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R6 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R7 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R8 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R9 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R10 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R11 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R12 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R13 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R14 = lane[at]; p += warps; at += step;
        if (p >= from && p < hi) r.R15 = lane[at];
    }

    /// <summary>A lane's four dims of <see cref="RowsPerLane"/> V rows.</summary>
    private struct VRows
    {
        public Ld.Pair R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15;

        /// <summary>a += w·v for the rows of positions first + warp, first + warp + warps, … (none past the context);
        /// position p's weight is <paramref name="w"/>[buffer + p − first].</summary>
        public readonly void Accumulate(ArrayView<float> w, int buffer, int first, int warp, int warps, int count,
            ref float a0, ref float a1, ref float a2, ref float a3)
        {
            int i = warp, at = buffer - first;
            Add(R0, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R1, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R2, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R3, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R4, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R5, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R6, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R7, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R8, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R9, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R10, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R11, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R12, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R13, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R14, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3); i += warps;
            Add(R15, w, at, first + i, count, ref a0, ref a1, ref a2, ref a3);
        }

        private static void Add(Ld.Pair v, ArrayView<float> w, int at, int p, int count, ref float a0, ref float a1,
            ref float a2, ref float a3)
        {
            if (p >= count) return;
            float x = w[at + p];
            a0 += x * Ld.Half(v.A); a1 += x * Ld.Half(v.A >> 16); a2 += x * Ld.Half(v.B); a3 += x * Ld.Half(v.B >> 16);
        }
    }
}

/// <summary><see cref="AttentionShort"/> with the quantize of its output (attention_quant_short: the short kernel of
/// attention_quant, the same arguments).</summary>
public static class AttentionQuantShort
{
    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<byte> yq, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim,
        int nTokens, float scale) =>
        AttentionShort.Head(q, kCache, vCache, positions, y, yq, part, sync, nHead, nHeadKv, headDim, scale, quantize: true);
}

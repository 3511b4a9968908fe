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
        int lane = Warp.LaneIdx, warp = Reduce.WarpIndex, warps = Group.DimX / Reduce.WarpLanes;
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
        int lane = Warp.LaneIdx, warp = Reduce.WarpIndex, warps = Group.DimX / Reduce.WarpLanes;
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

    /// <summary><see cref="Row"/> in 4-element pairs, in 32 bits: kv_dim and <paramref name="kvBase"/> must be multiples
    /// of 4. A layer's cache has fewer than 2^31 pairs, and the 64-bit multiply and shifts of <see cref="Row"/> were most
    /// of the attention kernels' address arithmetic (docs/benchmarks.md "Session 13").</summary>
    internal static int PairIndex(int p, int end, int kvDim, long kvBase) =>
        IntrinsicMath.Min(p, end - 1) * (kvDim >> 2) + (int)(kvBase >> 2);

    /// <summary><see cref="Fetch"/> of position <paramref name="p"/>'s row (<see cref="Row"/>, clamped to the range).
    /// Where head_dim and kv_dim are multiples of 4 (<paramref name="wide"/>) the row's pair index is
    /// <see cref="PairIndex"/>'s 32-bit one.</summary>
    private static void FetchRow(ArrayView<Half> kCache, ArrayView<Half> vCache, int p, int end, int kvDim, long kvBase, int d,
        int headDim, bool wide, out Ld.Pair k, out Ld.Pair v)
    {
        if (!wide || d >= headDim)
        {
            Fetch(kCache, vCache, Row(p, end, kvDim, kvBase), d, headDim, wide, out k, out v);
            return;
        }
        int at = PairIndex(p, end, kvDim, kvBase);
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
/// more passes, the online softmax carried across them). In a pass warp w takes positions w, w + 8, …, w + 120 of the
/// pass (<see cref="RowsPerLane"/> of them), and a lane holds four head dims of each of their K and V rows (one 8-byte
/// load a row, all in flight together) and of q (in registers). The lane's sixteen partial scores are reduced over the
/// warp by a reduce-scatter (sixteen shuffles in all, not five a position): lanes 2i and 2i + 1 end with position i's
/// score. Each warp keeps its own online softmax (Milakov &amp; Gimelshein 2018) over its positions, the weights reach
/// the lanes by shuffles, so a pass has no barrier; the warps' (max, sum, output) are merged once at the end. The first
/// pass's K and V rows, where earlier steps wrote them, are loaded before the PDL wait, so their DRAM latency overlaps
/// the kernels before this one. Several ranges write (max, sum, unnormalised output) to <c>attn_part</c> and the kv
/// head's last group merges them (<see cref="Attention.MergeRanges"/>, the ranged kernel's merge). A kernel of its
/// own: inside the ranged kernel the same code made ptxas slow that kernel's long-context path by 3–4 % of a token
/// (docs/benchmarks.md "Session 10"). Needs head_dim a multiple of 16 and at most <see cref="Attention.MaxHeadDim"/>,
/// and 8 warps (the spec's block); the planner gives the op no short kernel otherwise.</summary>
public static class AttentionShort
{
    /// <summary>Positions a pass covers: <see cref="RowsPerLane"/> rows of each of the group's 8 warps.</summary>
    public const int PassPositions = 128;

    /// <summary>K and V rows a lane holds in flight (of one pass: PassPositions / 8 warps).</summary>
    public const int RowsPerLane = 16;

    /// <summary>The register cap PtxBuild writes into the short kernels' PTX (<c>.maxnreg</c>): 128 keeps two groups of
    /// 256 threads an SM, so the 256 groups of a context past 896 positions run in one wave (session 13's pass took 133
    /// uncapped: one group an SM; the reduce-scatter pass of session 14 takes 120 under the cap). 0 for the other
    /// families.</summary>
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

        int tid = Group.IdxX, lane = Warp.LaneIdx, warp = Reduce.WarpIndex, warps = Group.DimX / Reduce.WarpLanes;
        // A lane's four dims d .. d + 3 of every row; lanes past head_dim hold zeros (they still take the shuffles).
        int d = 4 * lane;
        bool dims = d < headDim;
        long offset = (long)kvHead * headDim + d;
        var kPairs = kCache.Cast<Ld.Pair>();
        var vPairs = vCache.Cast<Ld.Pair>();
        // Rows below `written` were written by earlier steps: the first pass loads them before the wait (positions past
        // them clamped to the last such row, whose weight is 0), and the step's own rows after it.
        int written = IntrinsicMath.Min(end, stepStart);
        Rows k = default, v = default;
        if (dims && written > begin)
        {
            k.LoadClamped(kPairs, begin + warp, warps, written - 1, kvDim, offset);
            v.LoadClamped(vPairs, begin + warp, warps, written - 1, kvDim, offset);
        }
        Pdl.Wait();

        float q0 = 0, q1 = 0, q2 = 0, q3 = 0;
        if (dims) Ld.F4(q, ((long)t * nHead + head) * headDim + d, out q0, out q1, out q2, out q3);
        if (dims && end > written)
        {
            k.Load(kPairs, begin + warp, warps, end, kvDim, offset, written);
            v.Load(vPairs, begin + warp, warps, end, kvDim, offset, written);
        }

        // This warp's online softmax: its running maximum and sum, the lane's four weighted dims.
        float max = -1e30f, sum = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int first = begin; first < end; first += PassPositions)
        {
            if (first > begin && dims)
            {
                k.LoadClamped(kPairs, first + warp, warps, end - 1, kvDim, offset);
                v.LoadClamped(vPairs, first + warp, warps, end - 1, kvDim, offset);
            }
            // Lanes 2i and 2i + 1 hold the score of the warp's row i (position first + warp + warps·i).
            float s = k.Scores(q0, q1, q2, q3, lane) * scale;
            bool valid = first + warp + warps * (lane >> 1) < end;
            float newMax = IntrinsicMath.Max(max, Reduce.WarpMax(valid ? s : -1e30f));
            float correction = MathF.Exp(max - newMax);
            max = newMax;
            float w = valid ? MathF.Exp(s - max) : 0f;
            // Each weight is on two lanes: half the warp's sum (exact, a power of two).
            sum = sum * correction + Reduce.WarpSum(w) * 0.5f;
            a0 *= correction; a1 *= correction; a2 *= correction; a3 *= correction;
            v.Accumulate(w, ref a0, ref a1, ref a2, ref a3);
        }

        // The warps' softmaxes merged: each rescaled to the group's maximum.
        if (lane == 0) { redMax[warp] = max; redSum[warp] = sum; }
        int acc = warp * Attention.MaxHeadDim + d;
        if (dims) { warpAcc[acc] = a0; warpAcc[acc + 1] = a1; warpAcc[acc + 2] = a2; warpAcc[acc + 3] = a3; }
        Group.Barrier();
        long at = Attention.PartAt(t, slots, range, nHead, head, headDim);
        long qRow = ((long)t * nHead + head) * headDim;
        for (int e = tid; e < headDim; e += Group.DimX)
        {
            float m = redMax[0];
            for (int i = 1; i < warps; i++) m = IntrinsicMath.Max(m, redMax[i]);
            float total = 0, o = 0;
            for (int i = 0; i < warps; i++)
            {
                float f = MathF.Exp(redMax[i] - m);
                total += redSum[i] * f;
                o += warpAcc[i * Attention.MaxHeadDim + e] * f;
            }
            if (ranges == 1)
            {
                float value = o / total;
                y[qRow + e] = value;
                if (quantize) Quantize.Store1(value, yq, t, nHead * headDim, head * headDim + e);
            }
            else
            {
                // The range's (max, sum, unnormalised output), merged by the kv head's last group (the ranged kernel's
                // merge: the same slots and order).
                if (e == 0) { part[at] = m; part[at + 1] = total; }
                part[at + 2 + e] = o;
            }
        }
        if (ranges == 1) return;
        Group.Barrier();   // warpAcc becomes the merge's weights
        Attention.MergeRanges(y, yq, part, sync, warpAcc, last, t, kvHead, nHead, nHeadKv, headDim, slots, ranges,
            ranges * group, quantize, sixteenAtOnce: false);
    }

    /// <summary>A lane's four dims of a warp's <see cref="RowsPerLane"/> K or V rows of a pass: row i is position
    /// first + i·warps.</summary>
    private struct Rows
    {
        public Ld.Pair R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15;

        /// <summary>Every row, positions past <paramref name="clamp"/> reading row <paramref name="clamp"/> (≥ 0): no
        /// branch a row. kv_dim and <paramref name="offset"/> are multiples of 4 (head_dim a multiple of 16), so row p's
        /// dims are pair p·kv_dim/4 + offset/4 of the cache: one view from the lane's dims and a 32-bit index (a 64-bit
        /// multiply a row made the address arithmetic most of the kernel's instructions: docs/benchmarks.md "Session
        /// 13").</summary>
        public void LoadClamped(ArrayView<Ld.Pair> cache, int first, int warps, int clamp, int kvDim, long offset)
        {
            var lane = cache.SubView(offset >> 2, cache.Length - (offset >> 2));
            int stride = kvDim >> 2;
            R0 = lane[IntrinsicMath.Min(first, clamp) * stride];
            R1 = lane[IntrinsicMath.Min(first + warps, clamp) * stride];
            R2 = lane[IntrinsicMath.Min(first + 2 * warps, clamp) * stride];
            R3 = lane[IntrinsicMath.Min(first + 3 * warps, clamp) * stride];
            R4 = lane[IntrinsicMath.Min(first + 4 * warps, clamp) * stride];
            R5 = lane[IntrinsicMath.Min(first + 5 * warps, clamp) * stride];
            R6 = lane[IntrinsicMath.Min(first + 6 * warps, clamp) * stride];
            R7 = lane[IntrinsicMath.Min(first + 7 * warps, clamp) * stride];
            R8 = lane[IntrinsicMath.Min(first + 8 * warps, clamp) * stride];
            R9 = lane[IntrinsicMath.Min(first + 9 * warps, clamp) * stride];
            R10 = lane[IntrinsicMath.Min(first + 10 * warps, clamp) * stride];
            R11 = lane[IntrinsicMath.Min(first + 11 * warps, clamp) * stride];
            R12 = lane[IntrinsicMath.Min(first + 12 * warps, clamp) * stride];
            R13 = lane[IntrinsicMath.Min(first + 13 * warps, clamp) * stride];
            R14 = lane[IntrinsicMath.Min(first + 14 * warps, clamp) * stride];
            R15 = lane[IntrinsicMath.Min(first + 15 * warps, clamp) * stride];
        }

        /// <summary>The rows whose position lies in [<paramref name="from"/>, <paramref name="count"/>); the others are
        /// kept.</summary>
        public void Load(ArrayView<Ld.Pair> cache, int first, int warps, int count, int kvDim, long offset, int from)
        {
            var lane = cache.SubView(offset >> 2, cache.Length - (offset >> 2));
            int stride = kvDim >> 2, step = warps * stride;
            int p = first, at = first * stride;
            if (p >= from && p < count) R0 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R1 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R2 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R3 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R4 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R5 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R6 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R7 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R8 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R9 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R10 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R11 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R12 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R13 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R14 = lane[at]; p += warps; at += step;
            if (p >= from && p < count) R15 = lane[at];
        }

        /// <summary>q·k of the sixteen rows over the warp: each lane's four-dim partials, reduced and scattered in five
        /// steps (lanes exchange half their values with the lane <c>bit</c> away and keep the other half's sums: 8, 4,
        /// 2 and 1 shuffles, then one for the last pair), so lanes 2i and 2i + 1 return row i's full score.</summary>
        public readonly float Scores(float q0, float q1, float q2, float q3, int lane)
        {
            float s0 = Attention.Score(R0, q0, q1, q2, q3), s1 = Attention.Score(R1, q0, q1, q2, q3);
            float s2 = Attention.Score(R2, q0, q1, q2, q3), s3 = Attention.Score(R3, q0, q1, q2, q3);
            float s4 = Attention.Score(R4, q0, q1, q2, q3), s5 = Attention.Score(R5, q0, q1, q2, q3);
            float s6 = Attention.Score(R6, q0, q1, q2, q3), s7 = Attention.Score(R7, q0, q1, q2, q3);
            float s8 = Attention.Score(R8, q0, q1, q2, q3), s9 = Attention.Score(R9, q0, q1, q2, q3);
            float s10 = Attention.Score(R10, q0, q1, q2, q3), s11 = Attention.Score(R11, q0, q1, q2, q3);
            float s12 = Attention.Score(R12, q0, q1, q2, q3), s13 = Attention.Score(R13, q0, q1, q2, q3);
            float s14 = Attention.Score(R14, q0, q1, q2, q3), s15 = Attention.Score(R15, q0, q1, q2, q3);
            // Lane bit 16 picks rows 8–15 (set) or 0–7, bit 8 the upper four of those, bit 4 the upper two, bit 2 one.
            bool b16 = (lane & 16) != 0, b8 = (lane & 8) != 0, b4 = (lane & 4) != 0, b2 = (lane & 2) != 0;
            float t0 = Half(s0, s8, b16, 16), t1 = Half(s1, s9, b16, 16), t2 = Half(s2, s10, b16, 16), t3 = Half(s3, s11, b16, 16);
            float t4 = Half(s4, s12, b16, 16), t5 = Half(s5, s13, b16, 16), t6 = Half(s6, s14, b16, 16), t7 = Half(s7, s15, b16, 16);
            float u0 = Half(t0, t4, b8, 8), u1 = Half(t1, t5, b8, 8), u2 = Half(t2, t6, b8, 8), u3 = Half(t3, t7, b8, 8);
            float v0 = Half(u0, u2, b4, 4), v1 = Half(u1, u3, b4, 4);
            float w = Half(v0, v1, b2, 2);
            return w + Warp.ShuffleXor(w, 1);
        }

        /// <summary>One reduce-scatter step: the lane keeps <paramref name="hi"/> where <paramref name="upper"/> (else
        /// <paramref name="lo"/>) and adds the partner's copy of it, sending the other.</summary>
        private static float Half(float lo, float hi, bool upper, int bit)
        {
            float send = upper ? lo : hi;
            return (upper ? hi : lo) + Warp.ShuffleXor(send, bit);
        }

        /// <summary>a += w_i·v_i over the sixteen rows, row i's weight taken from lane 2i (0 for positions past the
        /// context, so their rows, clamped or left from the pass before, add nothing).</summary>
        public readonly void Accumulate(float w, ref float a0, ref float a1, ref float a2, ref float a3)
        {
            Add(R0, Warp.Shuffle(w, 0), ref a0, ref a1, ref a2, ref a3);
            Add(R1, Warp.Shuffle(w, 2), ref a0, ref a1, ref a2, ref a3);
            Add(R2, Warp.Shuffle(w, 4), ref a0, ref a1, ref a2, ref a3);
            Add(R3, Warp.Shuffle(w, 6), ref a0, ref a1, ref a2, ref a3);
            Add(R4, Warp.Shuffle(w, 8), ref a0, ref a1, ref a2, ref a3);
            Add(R5, Warp.Shuffle(w, 10), ref a0, ref a1, ref a2, ref a3);
            Add(R6, Warp.Shuffle(w, 12), ref a0, ref a1, ref a2, ref a3);
            Add(R7, Warp.Shuffle(w, 14), ref a0, ref a1, ref a2, ref a3);
            Add(R8, Warp.Shuffle(w, 16), ref a0, ref a1, ref a2, ref a3);
            Add(R9, Warp.Shuffle(w, 18), ref a0, ref a1, ref a2, ref a3);
            Add(R10, Warp.Shuffle(w, 20), ref a0, ref a1, ref a2, ref a3);
            Add(R11, Warp.Shuffle(w, 22), ref a0, ref a1, ref a2, ref a3);
            Add(R12, Warp.Shuffle(w, 24), ref a0, ref a1, ref a2, ref a3);
            Add(R13, Warp.Shuffle(w, 26), ref a0, ref a1, ref a2, ref a3);
            Add(R14, Warp.Shuffle(w, 28), ref a0, ref a1, ref a2, ref a3);
            Add(R15, Warp.Shuffle(w, 30), ref a0, ref a1, ref a2, ref a3);
        }

        private static void Add(Ld.Pair v, float x, ref float a0, ref float a1, ref float a2, ref float a3)
        {
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

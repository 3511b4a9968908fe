using System.Linq;
using Engine.Kernels.Formats;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels;

/// <summary>y[t, r] = Σ_c W[r, c]·x[t, c] for a weight matrix in any format. Explicitly grouped: a group computes
/// <see cref="RowsPerGroup"/> rows; every warp of the group takes all of them over its share of the columns (lane
/// units g = lane, lane + Group.DimX, …), so each activation is loaded once per group and used for every row from
/// registers (with a warp per row, x traffic from L2 was 4 bytes per weight and bound the kernel at ~0.9 T weights/s
/// on the H100 whatever the format). Warp sums by shuffles, then across warps in shared memory (<see cref="GroupSums"/>:
/// one barrier, and threads 0–3 finish and store one row each). grid.y tiles the
/// tokens, <see cref="TokensPerGroup"/> per group, so a prompt reads each weight row once per tile from DRAM.
/// The quantized formats (<see cref="IWeightFormat.Int8Activations"/>) multiply their integer weights with the 8-bit
/// activations xq by dp4a (<see cref="Int8Partials"/>; docs/kernels.md "Quantized activations"). The float formats
/// read f32 x: weights and x by 16-byte loads (<see cref="IWeightFormat.LaneDot"/>), two lane units × 4 rows of
/// independent loads per iteration; rows whose alignment does not allow it take the per-unit path
/// (<see cref="IWeightFormat.DotUnit"/>). The quantized formats implement the f32 members too: the GEMV reaches them
/// through <see cref="Formats.F32Act{T}"/> (the f32act entry points of the plan's f32 activation mode).</summary>
public static class Gemv
{
    public const int TokensPerGroup = 4;

    /// <summary>Rows per group (the spec's grid rule: ceil_div(rows, 4)).</summary>
    public const int RowsPerGroup = 4;

    /// <summary>Most warps a group can have (1024 threads).</summary>
    public const int MaxWarps = 32;

    /// <summary>Registers a thread of the int8 GEMV families may use: 64 lets an SM hold 8 groups of 128 threads
    /// (65536 registers), so the 1024 groups of a 4096-row matrix run in one wave on an H100's 132 SMs. Left to
    /// itself ptxas gave Q4_K 68 registers (7 groups an SM: 4096×14336 took 18.7 µs instead of 15.1 capped) and
    /// gemv_swiglu up to 80 (docs/benchmarks.md "GEMV: aligned loads and a 64-register cap"). The float formats are
    /// not capped (not measured).</summary>
    public const int Int8MaxRegisters = 64;

    /// <summary>A higher cap for the entries that spill at 64 (ptxas -v, sm_90): Q5_K's gemv, gemv_add, gemv_swiglu and
    /// gemv_qkv (24–28 bytes) and Q6_K's gemv_swiglu (168 bytes). At 80 they spill 0–16 bytes and run faster though an
    /// SM holds 6 groups, not 8 (ptxbench, H100: Q6_K gate/up 51.3 → 44.0 µs, Q5_K gate/up 33.3 → 31.3, Q5_K 4096 × 4096
    /// 7.5 → 7.25; uncapped they were slower than at 80: docs/benchmarks.md "Register caps of the Q5_K and Q6_K
    /// entries"). Q6_K's gemv (the lm_head) takes it too, though at 64 it did not spill: its many waves gain from the
    /// registers more than they lose in groups an SM (<see cref="MaxRegisters"/>).</summary>
    public const int SpillingMaxRegisters = 80;

    /// <summary>The cap of Q4_K's and Q8_0's gemv_swiglu: 72 lets an SM hold 7 groups of 128 threads, one fewer than at
    /// 64, and the gate/up lane loop more loads in flight. gate/up has 3584 groups for an 8B, several waves whatever
    /// the cap, so the 4096-row argument of <see cref="Int8MaxRegisters"/> does not hold for it. Measured (8B tg128,
    /// H100, two rounds; docs/benchmarks.md "Session 16"): Q4_K_M +1.0 % on two machines (72; 80 +0.3 %, uncapped
    /// −0.8 %), Q8_0 +0.7 % (72; 80 +0.8 %). Not for Q4_0, whose gate/up (uncapped, 80) lost 1.8 % at 72 and at 96; nor
    /// gemv_add (Q6_K at 72 −1.5 %, 80 −0.4 %; Q4_K at 72 −2.1 %) nor q/k/v (Q4_K and its pair at 72: even).</summary>
    public const int SwiGluMaxRegisters = 72;

    /// <summary>The register cap PtxBuild writes into an entry point's PTX (<c>.maxnreg</c>), 0 for none:
    /// <see cref="Int8MaxRegisters"/> for gemv, gemv_add, gemv_swiglu and gemv_qkv of the int8 formats but Q4_0, whose
    /// gemv_swiglu (two lane units an iteration) took 80 registers: capped, 8B Q4_0 decode fell 329 → 304 tok/s
    /// (uncapped 335, same H100; since session 20's loads-together path ptxas gives it 64 uncapped);
    /// <see cref="SpillingMaxRegisters"/> for Q5_K's four, Q6_K's gemv_swiglu and Q6_K's gemv
    /// (the lm_head of the K-quant and Q4_0 files: 128256 rows, many waves at either cap; 8B tg128 on an H100, session
    /// 16: Q4_K_M +0.4 %, Q4_0 +0.7 %; at 72 −0.5 %, uncapped −1.3 %; Q8_0's gemv at 80 was even);
    /// <see cref="SwiGluMaxRegisters"/> for Q4_K's and Q8_0's gemv_swiglu. A format pair's entry (q/k/v) takes 64 (72 was
    /// even for Q4_K/Q6_K).</summary>
    public static int MaxRegisters(string family, string? format) =>
        !IsGemvFamily(family) || format is null || !format.Split('/').All(f => f is "Q8_0" or "Q4_K" or "Q5_K" or "Q6_K") ? 0
        : format == "Q5_K" || (format == "Q6_K" && family is "gemv_swiglu" or "gemv") ? SpillingMaxRegisters
        : family == "gemv_swiglu" && format is "Q4_K" or "Q8_0" ? SwiGluMaxRegisters
        : Int8MaxRegisters;

    /// <summary>Whether PtxBuild gives an entry's loads the L2 evict-first policy (sm_90): the int8 GEMV families
    /// (gemv, gemv_add, gemv_swiglu, gemv_qkv of the quantized formats, not their f32act entries), whose weights stream
    /// through L2 once a token. Measured (docs/benchmarks.md "Session 12", two interleaved rounds, tokens identical):
    /// 8B tg128 on an H200 Q4_K_M +0.6 %, Q8_0 +0.4 %, on an H100 +1.3 % and ±0 (the 32-bit and vector loads), and
    /// the 16-bit loads too (the f16 block scales) Q8_0 +0.85 %, Q4_K_M −0.2 % (within the runs' spread). A 256-byte L2
    /// prefetch size on the same loads was even for Q4_K_M and −1.6 % for Q8_0. The tiled GEMM keeps plain loads (the
    /// policy there: pp512 even; its weight tiles are read again by each token tile).</summary>
    public static bool StreamsEvictFirst(string family, string? format, bool f32Activations) =>
        !f32Activations && IsGemvFamily(family) && format is not null
        && format.Split('/').All(f => f is "Q8_0" or "Q4_0" or "Q4_K" or "Q5_K" or "Q6_K");

    /// <summary>The GEMV families (the spec's gemv, gemv_add, gemv_swiglu, gemv_qkv), whose PTX PtxBuild caps and marks.</summary>
    private static bool IsGemvFamily(string family) => family is "gemv" or "gemv_add" or "gemv_swiglu" or "gemv_qkv";

    /// <param name="w">weights [rows, cols] in format T, rows contiguous</param>
    /// <param name="x">activations [n_tokens, cols] (read by the float formats)</param>
    /// <param name="xq">the same activations quantized by <see cref="Quantize"/> (read by the int8 formats)</param>
    /// <param name="y">output [n_tokens, rows]</param>
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat => Rows<T>(w, x, xq, y, rows, cols, nTokens, Grid.IdxX, accumulate: false);

    /// <summary>The rows of group <paramref name="group"/> (rows 4·group …) for this group's tokens;
    /// <paramref name="accumulate"/> adds the products to y instead of storing them (<see cref="GemvAdd"/>: the residual
    /// add fused into the projection). The group is Grid.IdxX but where one launch covers several matrices
    /// (<see cref="GemvQkv"/>). <paramref name="early"/>: rows of one lane unit a thread (<see cref="OneUnitALane{T}"/>)
    /// load their weights before the PDL wait, and Q8_0's longer rows in a one-token tile their first unit
    /// (<see cref="FirstUnitEarly{T}"/>). Measured per family (8B tg128, H100, docs/benchmarks.md "Session 15"): the o
    /// projection (gemv_add) +1.4–2.4 %, q/k/v +0.5 %; gate/up (its gate rows) lost 9–10 % (spills at the register
    /// cap) and the lm_head's gemv was not measured, so those two keep their loads after the wait.</summary>
    public static void Rows<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y, int rows, int cols,
        int nTokens, int group, bool accumulate, bool early = false)
        where T : struct, IWeightFormat
    {
        var partials = SharedMemory.Allocate<float>(2 * PartialsPerBuffer);
        int row0 = group * RowsPerGroup;
        long rowBytes = RowBytes<T>(cols);
        // Rows past the end repeat the last row (read, never stored), so the loop needs no per-row branch.
        long o0 = IntrinsicMath.Min(row0, rows - 1) * rowBytes, o1 = IntrinsicMath.Min(row0 + 1, rows - 1) * rowBytes;
        long o2 = IntrinsicMath.Min(row0 + 2, rows - 1) * rowBytes, o3 = IntrinsicMath.Min(row0 + 3, rows - 1) * rowBytes;
        int first = Grid.IdxY * TokensPerGroup;
        int last = IntrinsicMath.Min(first + TokensPerGroup, nTokens);
        // Two disjoint paths, so the early words are live in one only (a shared loop kept them live through the lane
        // loop's registers too, and every entry spilled).
        if (early && OneUnitALane<T>(cols))
        {
            LoadUnits<T>(w, o0, o1, o2, o3, cols, out var raw);
            Pdl.Wait();
            for (int t = first; t < last; t++)
            {
                UnitPartials<T>(raw, cols, xq, t, out float p0, out float p1, out float p2, out float p3);
                Store(p0, p1, p2, p3, partials, y, rows, row0, t, accumulate);
            }
        }
        else if (early && FirstUnitEarly<T>(cols) && last - first == 1)
        {
            // Longer rows, one token (a decode step): the first unit's words before the wait, the rest by the lane loop
            // after it (the early words are dead by then, so the loop keeps its registers).
            LoadUnits<T>(w, o0, o1, o2, o3, cols, out var raw);
            Pdl.Wait();
            UnitPartials<T>(raw, cols, xq, first, out float p0, out float p1, out float p2, out float p3);
            Int8Lanes<T>(w, o0, o1, o2, o3, cols, xq, first, Group.IdxX + Group.DimX, ref p0, ref p1, ref p2, ref p3);
            Store(p0, p1, p2, p3, partials, y, rows, row0, first, accumulate);
        }
        else if (accumulate && HalvedRounds<T>(cols) && last - first == 1)
        {
            // gemv_add of one token whose lane loop ends in a half round (an 8B's down projection): HalvedLanes.
            Pdl.Wait();
            HalvedLanes<T>(w, o0, o1, o2, o3, cols, xq, first, out float p0, out float p1, out float p2, out float p3);
            Store(p0, p1, p2, p3, partials, y, rows, row0, first, accumulate);
        }
        else
        {
            Pdl.Wait();
            for (int t = first; t < last; t++)
            {
                Partials<T>(w, o0, o1, o2, o3, cols, x, xq, t, out float p0, out float p1, out float p2, out float p3);
                Store(p0, p1, p2, p3, partials, y, rows, row0, t, accumulate);
            }
        }
    }

    /// <summary>Sums the four rows' partials over the group (<see cref="GroupSums"/>) and stores (or, with
    /// <paramref name="accumulate"/>, adds) token <paramref name="t"/>'s results: thread r &lt; 4 row row0 + r.</summary>
    public static void Store(float p0, float p1, float p2, float p3, ArrayView<float> partials, ArrayView<float> y, int rows,
        int row0, int t, bool accumulate)
    {
        int r = Group.IdxX;
        bool stores = r < RowsPerGroup && row0 + r < rows;
        // gemv_add: the residual this thread adds to is loaded before the group's sums, so its trip to L2 overlaps
        // the shuffles and the barrier instead of following them (loaded before the lane loop it would stay live
        // across it, a register the capped int8 loops have not got to spare).
        long i = (long)t * rows + row0 + r;
        float residual = accumulate && stores ? y[i] : 0f;
        float total = GroupSums(p0, p1, p2, p3, partials, t & 1);
        if (stores) y[i] = accumulate ? total + residual : total;
    }

    /// <summary>Whether each thread's share of a row is exactly one int8 lane unit (cols = group size × QLaneElements:
    /// an 8B's 4096-column matrices at 128 threads) of a format whose unit may be loaded ahead
    /// (<see cref="IWeightFormat.QLaneEarly"/>). Where its family asks for it, such a group loads its weights before
    /// the PDL wait (<see cref="LoadUnits{T}"/>), so with programmatic launch they arrive while the kernel before still
    /// runs, and uses them for every token of its tile (<see cref="UnitPartials{T}"/>).</summary>
    public static bool OneUnitALane<T>(int cols) where T : struct, IWeightFormat =>
        default(T).Int8Activations && default(T).QLaneEarly && cols == Group.DimX * default(T).QLaneElements;

    /// <summary>Whether every thread has a first int8 lane unit in each row (cols ≥ group size × QLaneElements) of a
    /// format whose unit may be loaded ahead and whose lane loop loads its units ahead anyway (QLaneSplit: Q8_0, so
    /// the first unit's words take no registers the loop does not): in a one-token tile the group loads that unit before
    /// the PDL wait and the lane loop takes the rest after it. Measured (8B tg128, H100, docs/benchmarks.md "Session
    /// 15"): Q8_0 +1.0 % (its down projection); for Q4_K the same path spilled 16–24 bytes and gained 0.2 %, for Q4_0
    /// (uncapped) it took 80–104 registers and lost 5 %.</summary>
    public static bool FirstUnitEarly<T>(int cols) where T : struct, IWeightFormat =>
        default(T).QLaneSplit && default(T).Int8Activations && default(T).QLaneEarly
        && cols >= Group.DimX * default(T).QLaneElements;

    /// <summary>The words of a thread's lane unit (unit Group.IdxX) of four rows, loaded before the PDL wait.</summary>
    public struct UnitWords
    {
        public QRaw R0, R1, R2, R3;
    }

    /// <summary>Loads lane unit Group.IdxX of the four rows at byte offsets o0..o3 (<see cref="OneUnitALane{T}"/>);
    /// reads only the weights, so it may run before the PDL wait.</summary>
    public static void LoadUnits<T>(ArrayView<byte> w, long o0, long o1, long o2, long o3, int cols, out UnitWords raw)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int g = Group.IdxX;
        RowViews<T>(w, o0, o1, o2, o3, cols, out var w0, out var w1, out var w2, out var w3, out int l0, out int l1,
            out int l2, out int l3);
        format.QLaneLoad(w0, l0, g, out raw.R0);
        format.QLaneLoad(w1, l1, g, out raw.R1);
        format.QLaneLoad(w2, l2, g, out raw.R2);
        format.QLaneLoad(w3, l3, g, out raw.R3);
    }

    /// <summary>The four rows' dots with token <paramref name="t"/> from the words <see cref="LoadUnits{T}"/> loaded:
    /// the same arithmetic as one iteration of <see cref="Int8Partials{T}"/>'s lane loop.</summary>
    public static void UnitPartials<T>(UnitWords raw, int cols, ArrayView<byte> xq, int t,
        out float p0, out float p1, out float p2, out float p3)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int g = Group.IdxX;
        var xRow = xq.SubView(t * Quantize.RowBytes(cols), Quantize.RowBytes(cols)).AsAligned(16);
        format.QLaneX(xRow, (int)Quantize.PairsOffset(cols), g, out var a);
        // QLaneMath of a QLaneEarly format reads nothing of the row: it is given none.
        ArrayView<byte> none = default;
        p0 = format.QLaneMath(none, 0, g, raw.R0, a);
        p1 = format.QLaneMath(none, 0, g, raw.R1, a);
        p2 = format.QLaneMath(none, 0, g, raw.R2, a);
        p3 = format.QLaneMath(none, 0, g, raw.R3, a);
    }

    /// <summary>The four rows' views for the int8 lane loop and their leads. Subviews: the 64-bit row bases are formed
    /// once; every load inside is a 32-bit offset from them. AsAligned states each view's alignment (it emits no code):
    /// ILGPU's PTX backend emits ld.global.v4/.v2 for a 16/8-byte struct load only where its pointer-alignment analysis
    /// (IR/Analyses/PointerAlignments.cs) proves that alignment, and a subview at a runtime byte offset proves none, so
    /// without it every Ld.U4 of these views was four ld.global.b32 and every Ld.U2/ScaleSum two. Formats that read
    /// 2-aligned blocks by aligned words (N = QLaneLeadAlignment: 4 for Q8_0/Q4_0, 8 for Q6_K) get views from N-aligned
    /// bytes: with QLaneOneView (Q4_0, Q6_K) one view for the four rows, from the N-aligned byte at or before the first,
    /// each row's lead its offset from there (even, below 2^31): one 64-bit base and four 32-bit leads where four views
    /// took four bases, which ptxas, short of registers at the caps, recomputed in every iteration of the lane loop
    /// (about 12 SASS instructions a row); otherwise (Q8_0) a view a row from the N-aligned byte at or before it, lead =
    /// the row's offset mod N. For the other formats the lead is the constant 0 and each row has its view, aligned to
    /// the format's row alignment (16 for Q4_K/Q5_K, whose 144/176-byte blocks are 16-byte multiples of a 32-byte
    /// aligned tensor).</summary>
    public static void RowViews<T>(ArrayView<byte> w, long o0, long o1, long o2, long o3, int cols,
        out ArrayView<byte> w0, out ArrayView<byte> w1, out ArrayView<byte> w2, out ArrayView<byte> w3,
        out int l0, out int l1, out int l2, out int l3)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        long rowBytes = RowBytes<T>(cols);
        int leadAlignment = format.QLaneLeadAlignment;
        if (leadAlignment != 0 && format.QLaneOneView)
        {
            // Rows past the end repeat the last (o0 ≤ o1 ≤ o2 ≤ o3), so the view from the first row's base to the last
            // row's end holds all four.
            long b = o0 & ~(long)(leadAlignment - 1);
            w0 = w.SubView(b, o3 + rowBytes - b).AsAligned(leadAlignment);
            w1 = w0; w2 = w0; w3 = w0;
            l0 = (int)(o0 - b); l1 = (int)(o1 - b); l2 = (int)(o2 - b); l3 = (int)(o3 - b);
            return;
        }
        long leadMask = leadAlignment != 0 ? leadAlignment - 1 : 0;
        int rowAlignment = leadAlignment != 0 ? leadAlignment : format.LaneAlignment;
        l0 = (int)(o0 & leadMask); l1 = (int)(o1 & leadMask); l2 = (int)(o2 & leadMask); l3 = (int)(o3 & leadMask);
        w0 = w.SubView(o0 - l0, rowBytes + l0).AsAligned(rowAlignment);
        w1 = w.SubView(o1 - l1, rowBytes + l1).AsAligned(rowAlignment);
        w2 = w.SubView(o2 - l2, rowBytes + l2).AsAligned(rowAlignment);
        w3 = w.SubView(o3 - l3, rowBytes + l3).AsAligned(rowAlignment);
    }

    /// <summary>Whether the int8 lane loop over <paramref name="cols"/> ends in a round with units for half the group's
    /// threads (448 units of 32 weights at 128 threads: 3.5 rounds), for the formats whose loop does not split its
    /// loads (<see cref="HalvedLanes{T}"/>; Q8_0 loads its first unit before the PDL wait instead,
    /// <see cref="FirstUnitEarly{T}"/>).</summary>
    public static bool HalvedRounds<T>(int cols) where T : struct, IWeightFormat =>
        default(T).Int8Activations && !default(T).QLaneSplit
        && 2 * (cols / default(T).QLaneElements % Group.DimX) == Group.DimX;

    /// <summary>The int8 lane loop of <see cref="HalvedRounds{T}"/> rows (gemv_add of one token: an 8B's down
    /// projection, whose 1024 groups are one wave that would otherwise load, wait and compute in step): the half round
    /// split by rows (<see cref="HalfRound{T}"/>: each thread two rows of one unit, where half the threads took four
    /// rows and half none), first for half the groups (by a hash of the group index, so an SM holds both kinds; their
    /// full rounds from unit lanes / 2 on) and last for the others, so the two kinds' loads and arithmetic run out of
    /// phase. One unit an iteration, Q4_0's pairs too. Measured (8B tg128, H200, three interleaved rounds;
    /// docs/benchmarks.md "Session 27"): Q4_K_M +0.9 %, Q5_K_M +1.2 %, Q4_0 +1.05 %, Q6_K even; the split half round
    /// last in every group lost 1.0 % (Q4_K_M), and in every lane loop (all entries, Q8_0's too) 1.3–7.7 %.</summary>
    public static void HalvedLanes<T>(ArrayView<byte> w, long o0, long o1, long o2, long o3, int cols, ArrayView<byte> xq,
        int t, out float p0, out float p1, out float p2, out float p3)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int lanes = Group.DimX, half = lanes >> 1;
        var xRow = xq.SubView(t * Quantize.RowBytes(cols), Quantize.RowBytes(cols)).AsAligned(16);
        RowViews<T>(w, o0, o1, o2, o3, cols, out var w0, out var w1, out var w2, out var w3, out int l0, out int l1,
            out int l2, out int l3);
        int pairs = (int)Quantize.PairsOffset(cols);
        int units = cols / format.QLaneElements;
        bool halfFirst = (((uint)Grid.IdxX * 0x9E3779B1u) >> 31) != 0;
        int start = halfFirst ? half : 0;
        p0 = 0; p1 = 0; p2 = 0; p3 = 0;
        if (halfFirst) HalfRound<T>(w0, w1, w2, w3, l0, l1, l2, l3, xRow, pairs, 0, ref p0, ref p1, ref p2, ref p3);
        for (int g = start + Group.IdxX; g < units - half + start; g += lanes)
        {
            format.QLaneX(xRow, pairs, g, out var a);
            p0 += format.QLaneDot(w0, l0, g, a);
            p1 += format.QLaneDot(w1, l1, g, a);
            p2 += format.QLaneDot(w2, l2, g, a);
            p3 += format.QLaneDot(w3, l3, g, a);
        }
        if (!halfFirst) HalfRound<T>(w0, w1, w2, w3, l0, l1, l2, l3, xRow, pairs, units - half, ref p0, ref p1, ref p2, ref p3);
    }

    /// <summary>A half round of the lane loop from unit <paramref name="from"/>: lane i of the group's first half takes
    /// rows 0 and 1 of unit from + i, lane i of the second half rows 2 and 3 of the same unit.</summary>
    private static void HalfRound<T>(ArrayView<byte> w0, ArrayView<byte> w1, ArrayView<byte> w2, ArrayView<byte> w3,
        int l0, int l1, int l2, int l3, ArrayView<byte> xRow, int pairs, int from,
        ref float p0, ref float p1, ref float p2, ref float p3)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int half = Group.DimX >> 1;
        bool second = Group.IdxX >= half;
        int g = from + (second ? Group.IdxX - half : Group.IdxX);
        // The chosen views stated aligned again (a select of two aligned views proves nothing to ILGPU's analysis).
        int alignment = ViewAlignment<T>();
        var wa = (second ? w2 : w0).AsAligned(alignment);
        var wb = (second ? w3 : w1).AsAligned(alignment);
        format.QLaneX(xRow, pairs, g, out var a);
        float d0 = format.QLaneDot(wa, second ? l2 : l0, g, a);
        float d1 = format.QLaneDot(wb, second ? l3 : l1, g, a);
        p0 += second ? 0f : d0;
        p1 += second ? 0f : d1;
        p2 += second ? d0 : 0f;
        p3 += second ? d1 : 0f;
    }

    /// <summary>The alignment <see cref="RowViews{T}"/> states for its views: the format's lead alignment, else its row
    /// alignment.</summary>
    private static int ViewAlignment<T>() where T : struct, IWeightFormat =>
        default(T).QLaneLeadAlignment != 0 ? default(T).QLaneLeadAlignment : default(T).LaneAlignment;

    /// <summary>Floats of one partial-sum buffer of <see cref="GroupSums"/>.</summary>
    public const int PartialsPerBuffer = MaxWarps * RowsPerGroup;

    /// <summary>Sums the four row partials over the group: thread r (r &lt; 4) returns row r's total (the others 0).
    /// The warp's sums by a reduce-scatter (<see cref="Reduce.WarpSums4"/>: six shuffles where a butterfly a row took
    /// twenty); lanes 0, 8, 16 and 24 of each warp write rows 0–3 to buffer <paramref name="buffer"/> (0 or 1) of
    /// <paramref name="partials"/> (2 × <see cref="PartialsPerBuffer"/> floats of shared memory); one barrier; thread r
    /// adds row r over the warps in warp order. The warp is <see cref="Reduce.WarpIndex"/> (a shift, where ILGPU's
    /// Warp.WarpIdx divides at run time).
    /// Calls that alternate buffers need no second barrier: a buffer is written again only after the next call's
    /// barrier, which every reader of its previous contents reaches after reading. All threads must call it.</summary>
    public static float GroupSums(float p0, float p1, float p2, float p3, ArrayView<float> partials, int buffer)
    {
        float s = Reduce.WarpSums4(p0, p1, p2, p3);
        int r = Group.IdxX, lane = Warp.LaneIdx;
        int warps = Group.DimX / Reduce.WarpLanes;
        if (warps == 1)
        {
            float v = Warp.Shuffle(s, (r & (RowsPerGroup - 1)) << 3);
            return r < RowsPerGroup ? v : 0f;
        }
        int b = buffer * PartialsPerBuffer;
        if ((lane & 7) == 0) partials[b + Reduce.WarpIndex * RowsPerGroup + (lane >> 3)] = s;
        Group.Barrier();
        float total = 0;
        if (r < RowsPerGroup)
        {
            total = partials[b + r];
            for (int i = 1; i < warps; i++) total += partials[b + i * RowsPerGroup + r];
        }
        return total;
    }

    public static long RowBytes<T>(int cols) where T : struct, IWeightFormat =>
        (long)(cols / default(T).BlockElements) * default(T).BlockBytes;

    /// <summary>This thread's share of the dots of four weight rows (at byte offsets o0..o3) with token
    /// <paramref name="t"/>'s activations: x for the float formats, xq for the int8 ones.</summary>
    public static void Partials<T>(ArrayView<byte> w, long o0, long o1, long o2, long o3, int cols, ArrayView<float> x,
        ArrayView<byte> xq, int t, out float p0, out float p1, out float p2, out float p3)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int lane = Group.IdxX, lanes = Group.DimX;
        p0 = 0; p1 = 0; p2 = 0; p3 = 0;
        if (format.Int8Activations)
        {
            Int8Partials<T>(w, o0, o1, o2, o3, cols, xq, t, out p0, out p1, out p2, out p3);
            return;
        }
        long xOffset = (long)t * cols;
        // Alignment from offsets: views are 16-byte aligned (weights: GGUF 32-byte tensor alignment; activations:
        // arena offsets; docs/kernels.md "Invariant"), and every row offset is a multiple of the row's bytes.
        if (cols % format.LaneElements == 0 && (xOffset & 3) == 0 && (RowBytes<T>(cols) & (format.LaneAlignment - 1)) == 0)
        {
            int units = cols / format.LaneElements;
            int g = lane;
            for (; g + lanes < units; g += 2 * lanes)
            {
                format.LaneX(x, xOffset, g, out var a, out var c);
                format.LaneX(x, xOffset, g + lanes, out var e, out var f);
                p0 += format.LaneDot(w, o0, g, a, c) + format.LaneDot(w, o0, g + lanes, e, f);
                p1 += format.LaneDot(w, o1, g, a, c) + format.LaneDot(w, o1, g + lanes, e, f);
                p2 += format.LaneDot(w, o2, g, a, c) + format.LaneDot(w, o2, g + lanes, e, f);
                p3 += format.LaneDot(w, o3, g, a, c) + format.LaneDot(w, o3, g + lanes, e, f);
            }
            if (g < units)
            {
                format.LaneX(x, xOffset, g, out var a, out var c);
                p0 += format.LaneDot(w, o0, g, a, c);
                p1 += format.LaneDot(w, o1, g, a, c);
                p2 += format.LaneDot(w, o2, g, a, c);
                p3 += format.LaneDot(w, o3, g, a, c);
            }
            return;
        }
        p0 = UnitPartial<T>(w, o0, cols, x, xOffset, lane, lanes);
        p1 = UnitPartial<T>(w, o1, cols, x, xOffset, lane, lanes);
        p2 = UnitPartial<T>(w, o2, cols, x, xOffset, lane, lanes);
        p3 = UnitPartial<T>(w, o3, cols, x, xOffset, lane, lanes);
    }

    /// <summary>The per-unit path: this lane's share (lane of lanes) of one row's dot, bytewise-aligned loads.</summary>
    public static float UnitPartial<T>(ArrayView<byte> w, long rowOffset, int cols, ArrayView<float> x, long xOffset,
        int lane, int lanes)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int unitsPerBlock = format.UnitsPerBlock;
        int blockUnits = cols / format.BlockElements * unitsPerBlock;
        float sum = 0;
        for (int u = lane; u < blockUnits; u += lanes)
        {
            int block = u / unitsPerBlock;
            sum += format.DotUnit(w, rowOffset + (long)block * format.BlockBytes, u - block * unitsPerBlock,
                x, xOffset + (long)block * format.BlockElements);
        }
        return sum;
    }

    /// <summary>The int8 lane loop: each unit's activations loaded once for the four rows.
    /// Every quantized row qualifies (cols is a multiple of the format's block, xq rows are 16-byte aligned, the
    /// 16-byte loads of Q4_K/Q5_K rows fall on 144/176-byte blocks of a 32-byte aligned tensor).</summary>
    public static void Int8Partials<T>(ArrayView<byte> w, long o0, long o1, long o2, long o3, int cols, ArrayView<byte> xq,
        int t, out float p0, out float p1, out float p2, out float p3)
        where T : struct, IWeightFormat
    {
        p0 = 0; p1 = 0; p2 = 0; p3 = 0;
        Int8Lanes<T>(w, o0, o1, o2, o3, cols, xq, t, Group.IdxX, ref p0, ref p1, ref p2, ref p3);
    }

    /// <summary>The int8 lane loop from unit <paramref name="g"/> on (this lane's units g, g + lanes, …), added to
    /// p0..p3.</summary>
    public static void Int8Lanes<T>(ArrayView<byte> w, long o0, long o1, long o2, long o3, int cols, ArrayView<byte> xq,
        int t, int g, ref float p0, ref float p1, ref float p2, ref float p3)
        where T : struct, IWeightFormat
    {
        var format = default(T);
        int lanes = Group.DimX;
        // xq rows are multiples of 80 bytes from a 16-aligned buffer (Quantize.RowBytes); the weight views: RowViews.
        var xRow = xq.SubView(t * Quantize.RowBytes(cols), Quantize.RowBytes(cols)).AsAligned(16);
        RowViews<T>(w, o0, o1, o2, o3, cols, out var w0, out var w1, out var w2, out var w3, out int l0, out int l1,
            out int l2, out int l3);
        int pairs = (int)Quantize.PairsOffset(cols);
        int units = cols / format.QLaneElements;
        // One unit an iteration, or two where the format says so (QLanePairs): the extra live activations and weights
        // cost registers, which pays only for the lightest unit (Q4_0).
        if (format.QLanePairs)
            for (; g + lanes < units; g += 2 * lanes)
            {
                format.QLaneX(xRow, pairs, g, out var a);
                format.QLaneX(xRow, pairs, g + lanes, out var b);
                p0 += format.QLaneDot(w0, l0, g, a) + format.QLaneDot(w0, l0, g + lanes, b);
                p1 += format.QLaneDot(w1, l1, g, a) + format.QLaneDot(w1, l1, g + lanes, b);
                p2 += format.QLaneDot(w2, l2, g, a) + format.QLaneDot(w2, l2, g + lanes, b);
                p3 += format.QLaneDot(w3, l3, g, a) + format.QLaneDot(w3, l3, g + lanes, b);
            }
        for (; g < units; g += lanes)
        {
            format.QLaneX(xRow, pairs, g, out var a);
            if (format.QLaneSplit)
            {
                // The four rows' words first, then their arithmetic.
                format.QLaneLoad(w0, l0, g, out var r0);
                format.QLaneLoad(w1, l1, g, out var r1);
                format.QLaneLoad(w2, l2, g, out var r2);
                format.QLaneLoad(w3, l3, g, out var r3);
                p0 += format.QLaneMath(w0, l0, g, r0, a);
                p1 += format.QLaneMath(w1, l1, g, r1, a);
                p2 += format.QLaneMath(w2, l2, g, r2, a);
                p3 += format.QLaneMath(w3, l3, g, r3, a);
            }
            else
            {
                p0 += format.QLaneDot(w0, l0, g, a);
                p1 += format.QLaneDot(w1, l1, g, a);
                p2 += format.QLaneDot(w2, l2, g, a);
                p3 += format.QLaneDot(w3, l3, g, a);
            }
        }
    }
}

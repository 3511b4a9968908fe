using Engine.Kernels.Formats;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Engine.Kernels;

/// <summary>y[t, r] = Σ_c W[r, c]·x[t, c] for many tokens at once (prefill): a tiled int8 matrix multiply on the
/// tensor cores, as llama.cpp's mmq does (ggml-cuda/mmq.cuh). A group (a warp per 32 × 32 of the tile) computes a
/// tile of 128 weight rows × 64 tokens (<see cref="Allocate"/>); per stage (<see cref="StageGroups"/>) it unpacks
/// the stage's 32-weight groups of each row to int8 plus a scale (and min) into shared memory
/// (<see cref="IInt8Tiles"/>) and copies the same columns of the quantized activations (<see cref="Quantize"/>:
/// int8, and a (d, Σq) pair per 32) next to them; each warp then multiplies its 32×32 part of the tile with
/// <c>mma.sync.m16n8k32.s8</c> (PTX ISA "Warp-level matrix multiply-accumulate": A = 16 weight rows × 32, row-major,
/// B = 32 × 8 tokens, column-major: exactly a token's row of xq). Each 32-group has its own scales, so every mma's
/// integer result is scaled into f32 accumulators at once: acc += scale_w·d_x·D − min_w·(d_x·Σq_x) (the K-quants'
/// w = d·sc·q − dmin·m; docs/kernels.md "Tiled GEMM"). The mma's C operand is 0 (ptxas gives it the zero register) and
/// D is converted by cvt.rn.f32.s32 (exact: a 32-group's dot is below 2^24). Until session 18 C was the constant
/// 0x4B400000 so that D read as a float was 1.5·2^23 + dot and the conversion one FADD; the constant had to be moved
/// back into each IMMA's C registers, and ptxas gave the Q8_0 kernel 254 registers for it, one group an SM; with C = 0
/// it gives 96, and 8B pp512 rose 8 % (Q8_0), 10.5 % (Q4_K_M), 21 % (Q4_0), logits equal byte for byte
/// (docs/benchmarks.md "Session 18"). Session 19 took the stage loop's address arithmetic out (shared tiles read and
/// written through per-thread views plus constants, the source rows fixed before the loop: 1,217 → 805 SASS
/// instructions a warp and stage for Q8_0, 128 registers) and gave the groups their tiles by token bands
/// (<see cref="TileOf"/>): 8B pp512 +29 % (Q8_0), +18 % (Q4_K_M), +15 % (Q4_0). Session 22 read the Q8_0 and Q4_0
/// fragments by ldmatrix, four a group of 32 in place of sixteen 32-bit shared loads; session 23 loaded the K-quants'
/// scales after the products (<see cref="IInt8Tiles.LateScales"/>), so their entries fit the register cap and read
/// fragments by ldmatrix too (<see cref="IInt8Tiles.MatrixLoads"/>: 8B pp512 Q4_K_M +6.4 %, Q5_K_M +6.0 %).
/// Q6_K's scales cover 16 weights: its groups take two m16n8k16 products (the same registers split in halves).
/// On ILGPU's CPU accelerator (tests) the mma is computed from the shared tiles for the elements the lane owns in
/// the fragment layout, so CI tests the tiling, unpacking and scaling; gpu-selftest tests the fragments on the GPU.
/// Rows past the end read the last row (never stored); tokens and columns past the end are zeros. Every entry waits for
/// the previous kernel first (<see cref="Pdl.Wait"/>: it is launched with programmatic dependent launch too).</summary>
public static class Gemm
{
    /// <summary>Rows and tokens of a group's tile (grid
    /// ceil_div(rows, 128), ceil_div(n_tokens, 64) in llama.graph).</summary>
    public const int RowsPerGroup = 128;
    public const int TokensPerGroup = 64;

    /// <summary>The register cap PtxBuild writes into the GEMM entries (<c>.maxnreg</c>, <see cref="RegisterCaps"/>): 128,
    /// so an SM holds two groups of 256 threads, for every format. ptxas alone gave the 4-bit and K-quant entries
    /// 130–163 registers (one group an SM). Measured (8B pp512, H200, two interleaved rounds, tokens identical;
    /// docs/benchmarks.md "Session 20"): capped, Q4_K_M +24 %, Q4_0 +21 % against the uncapped entries; Q8_0, left
    /// uncapped then, is capped since session 22 (uncapped with ldmatrix ptxas gave it 139 registers, one group an SM,
    /// and pp512 fell 16 %). Since session 23 (late K-quant scales, ldmatrix for A) no GEMM entry spills at the cap
    /// but the q/k/v entries of Q8_0 (16 bytes) and of Q4_K with Q6_K (24; ptxas sm_90, docs/benchmarks.md "Session 23").</summary>
    public static int MaxRegisters(string family, string? format) =>
        family is "gemm" or "gemm_add" or "gemm_swiglu" or "gemm_qkv" && format is not null ? 128 : 0;

    /// <summary>Same arguments as <see cref="Gemv.Run{T}"/> (the runtime swaps the kernel, not the arguments);
    /// <paramref name="x"/> is not read.</summary>
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        Pdl.Wait();
        var s = Allocate();
        var tile = TileOf();
        var acc = Accumulate<T>(w, xq, rows, cols, nTokens, s, tile.Row, tile.Token);
        Store(y, acc, rows, nTokens, tile.Row * RowsPerGroup, tile.Token, accumulate: false);
    }

    /// <summary>y[t, r] += Σ_c W[r, c]·a[t, c]: the residual add fused (<see cref="GemmAdd"/>). With grid z &gt; 1 the
    /// columns are split (<see cref="SplitOf"/>, <see cref="SumSplits"/>).</summary>
    public static void RunAdd<T>(ArrayView<byte> w, ArrayView<float> a, ArrayView<byte> aq, ArrayView<float> y, ArrayView<float> mmPart,
        ArrayView<int> mmSync, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        Pdl.Wait();
        var s = Allocate();
        var tile = TileOf();
        var k = SplitOf(cols);
        var acc = Accumulate<T>(w, w, aq, rows, cols, nTokens, s, tile.Row * RowsPerGroup, tile.Row * RowsPerGroup + RowsPerGroup / 2,
            tile.Token, k.Begin, k.End);
        if (SumSplits(ref acc, mmPart, mmSync)) Store(y, acc, rows, nTokens, tile.Row * RowsPerGroup, tile.Token, accumulate: true);
    }

    /// <summary>y = silu(gate·x)·(up·x) (<see cref="GemvSwiGlu"/>): a group's tile is <see cref="SwiGluRows"/> rows of
    /// gate (tile rows 0..63, warps 0, 1, 4, 5) over the same rows of up (tile rows 64..127, warps 2, 3, 6, 7), so one
    /// k loop computes both and a warp holds one tile's 32 accumulators, as the other GEMMs do; the up warps hand theirs
    /// to the gate warps through shared memory, which store the product (<see cref="GemmSwiGlu"/>). Until session 20
    /// a group computed 128 rows of gate over all k, kept those accumulators and then computed up's: 168–194
    /// registers, one group an SM, ~125 TOPS against ~149 for o and down (docs/benchmarks.md "Session 19").</summary>
    public static void RunSwiGlu<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        Pdl.Wait();
        var s = Allocate();
        var tile = TileOf();
        int row0 = tile.Row * SwiGluRows;
        var acc = Accumulate<T>(gate, up, xq, rows, cols, nTokens, s, row0, row0, tile.Token, 0, cols / 32);
        StoreGlu(y, acc, s, rows, nTokens, row0, tile.Token);
    }

    /// <summary>Output rows of a gemm_swiglu group: half the tile's rows (grid ceil_div(rows, 64) in llama.graph).</summary>
    public const int SwiGluRows = RowsPerGroup / 2;

    /// <summary>The up warps (32·(warp % 4) ≥ 64) write their accumulators to shared memory, lane-major so a warp's
    /// stores and loads fall in 32 banks, the gate warps of the same rows and tokens (warp − 2) read them and store
    /// silu(g)·u for rows row0 + 0..63.</summary>
    private static void StoreGlu(ArrayView<float> y, WarpTile acc, Tiles s, int rows, int nTokens, int row0, int tokenTile)
    {
        int lane = Warp.LaneIdx, warp = Reduce.WarpIndex;
        bool upWarp = (warp & 2) != 0;
        var buf = s.W.Cast<float>().SubView((((warp >> 2) * 2 + (warp & 1)) * 32) * 32 + lane);   // [pair][value][lane]
        Group.Barrier();   // the last stage's fragments are read
        if (upWarp) WriteTile(buf, acc, 32);
        Group.Barrier();
        if (!upWarp) Store(y, Glu(acc, ReadTile(buf, 32)), rows, nTokens, row0, tokenTile, accumulate: false);
    }

    /// <summary>A thread's 32 accumulators at <paramref name="b"/>[<paramref name="stride"/>·i], i = 0..31 in the order
    /// M0N0 … M1N3, C0 … C3 each (the threads' views adjacent: a warp's stores and loads fall in one line or 32 banks).</summary>
    private static void WriteTile(ArrayView<float> b, WarpTile a, int stride)
    {
        WriteAcc(b, 0, a.M0N0, stride); WriteAcc(b, 4, a.M0N1, stride); WriteAcc(b, 8, a.M0N2, stride); WriteAcc(b, 12, a.M0N3, stride);
        WriteAcc(b, 16, a.M1N0, stride); WriteAcc(b, 20, a.M1N1, stride); WriteAcc(b, 24, a.M1N2, stride); WriteAcc(b, 28, a.M1N3, stride);
    }

    private static void WriteAcc(ArrayView<float> b, int v, Acc a, int stride)
    {
        b[stride * v] = a.C0; b[stride * (v + 1)] = a.C1; b[stride * (v + 2)] = a.C2; b[stride * (v + 3)] = a.C3;
    }

    /// <summary>The accumulators <see cref="WriteTile"/> wrote.</summary>
    private static WarpTile ReadTile(ArrayView<float> b, int stride) => new()
    {
        M0N0 = ReadAcc(b, 0, stride), M0N1 = ReadAcc(b, 4, stride), M0N2 = ReadAcc(b, 8, stride), M0N3 = ReadAcc(b, 12, stride),
        M1N0 = ReadAcc(b, 16, stride), M1N1 = ReadAcc(b, 20, stride), M1N2 = ReadAcc(b, 24, stride), M1N3 = ReadAcc(b, 28, stride),
    };

    private static Acc ReadAcc(ArrayView<float> b, int v, int stride) =>
        new() { C0 = b[stride * v], C1 = b[stride * (v + 1)], C2 = b[stride * (v + 2)], C3 = b[stride * (v + 3)] };

    /// <summary>q, k and v in one launch (<see cref="GemvQkv"/>): row tiles 0 … ceil(rows/128) − 1 are q's, the next
    /// ceil(kv_dim/128) k's, the last ceil(kv_dim/128) v's; each tile is computed as <see cref="Run{T}"/> computes it
    /// (<see cref="GemmQkv"/>). The views are selected, not the code.</summary>
    public static void RunQkv<T>(ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv, ArrayView<float> x, ArrayView<byte> xq,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mmPart, ArrayView<int> mmSync,
        int rows, int kvDim, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        var tile = TileOf();
        GemvQkv.Select(tile.Row, RowsPerGroup, wq, wk, wv, q, k, v, rows, kvDim, out var w, out var y, out int n, out int local);
        Pdl.Wait();
        var s = Allocate();
        var ks = SplitOf(cols);
        var acc = Accumulate<T>(w, w, xq, n, cols, nTokens, s, local * RowsPerGroup, local * RowsPerGroup + RowsPerGroup / 2, tile.Token,
            ks.Begin, ks.End);
        if (SumSplits(ref acc, mmPart, mmSync)) Store(y, acc, n, nTokens, local * RowsPerGroup, tile.Token, accumulate: false);
    }

    /// <summary><see cref="RunQkv{T}"/> with q and k in <typeparamref name="TQk"/> and v in <typeparamref name="TV"/>
    /// (<see cref="GemvQkv.Run{TQk, TV}"/>): v's row tiles accumulate with TV's tile loads, the others with TQk's; one
    /// shared-memory allocation for both (static shared memory is at most 48 KB).</summary>
    public static void RunQkv<TQk, TV>(ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv, ArrayView<float> x, ArrayView<byte> xq,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mmPart, ArrayView<int> mmSync,
        int rows, int kvDim, int cols, int nTokens)
        where TQk : struct, IWeightFormat, IInt8Tiles
        where TV : struct, IWeightFormat, IInt8Tiles
    {
        var tile = TileOf();
        GemvQkv.Select(tile.Row, RowsPerGroup, wq, wk, wv, q, k, v, rows, kvDim, out var w, out var y, out int n, out int local);
        Pdl.Wait();
        var s = Allocate();
        var ks = SplitOf(cols);
        int r0 = local * RowsPerGroup, r1 = r0 + RowsPerGroup / 2;
        var acc = GemvQkv.IsV(tile.Row, RowsPerGroup, rows, kvDim)
            ? Accumulate<TV>(w, w, xq, n, cols, nTokens, s, r0, r1, tile.Token, ks.Begin, ks.End)
            : Accumulate<TQk>(w, w, xq, n, cols, nTokens, s, r0, r1, tile.Token, ks.Begin, ks.End);
        if (SumSplits(ref acc, mmPart, mmSync)) Store(y, acc, n, nTokens, r0, tile.Token, accumulate: false);
    }

    /// <summary>A group's columns, in 32-groups [Begin, End): all of them, or with grid z &gt; 1 split z's share
    /// (whole stages; the last splits may have fewer or none).</summary>
    public struct KRange
    {
        public int Begin, End;
    }

    /// <summary>The columns of this group's split (Grid.IdxZ of Grid.DimZ; <see cref="KRange"/>).</summary>
    public static KRange SplitOf(int cols)
    {
        int groups = cols / 32, splits = Grid.DimZ;
        int per = ((groups + splits - 1) / splits + StageGroups - 1) / StageGroups * StageGroups;
        int begin = IntrinsicMath.Min(groups, Grid.IdxZ * per);
        return new KRange { Begin = begin, End = IntrinsicMath.Min(groups, begin + per) };
    }

    /// <summary>Floats of one partial tile in <c>mm_part</c>: the 32 accumulators of each of the group's threads.</summary>
    public const int PartFloats = RowsPerGroup * TokensPerGroup;

    /// <summary>Threads of a group (llama.graph's block=256 for the gemm families): a warp per 32 × 32 of the tile.</summary>
    public const int GroupThreads = PartFloats / 32;

    /// <summary>Split-k (grid z &gt; 1: the runtime splits the columns of a step whose row × token tiles would leave most
    /// of the GPU idle, docs/kernels.md "Split-k"): each split writes its partial tile to <paramref name="part"/> (tile
    /// x + y·DimX, split z), takes the tile's ticket in <paramref name="sync"/>, and the last of a tile's splits sums the
    /// partials in split order (its own read back like the others), resets the ticket and stores: the same floats
    /// whichever split comes last, so every run gives the same result. Returns whether this group stores the tile
    /// (always without a split).</summary>
    private static bool SumSplits(ref WarpTile acc, ArrayView<float> part, ArrayView<int> sync)
    {
        int splits = Grid.DimZ;
        if (splits == 1) return true;
        int tile = Grid.IdxX + Grid.IdxY * Grid.DimX, tid = Group.IdxX;
        var last = SharedMemory.Allocate<int>(1);
        long first = (long)tile * splits * PartFloats + tid;
        WriteTile(part.SubView(first + (long)Grid.IdxZ * PartFloats), acc, GroupThreads);
        MemoryFence.DeviceLevel();
        Group.Barrier();
        if (tid == 0) last[0] = Atomic.Add(ref sync[tile], 1) == splits - 1 ? 1 : 0;
        Group.Barrier();
        if (last[0] == 0) return false;
        MemoryFence.DeviceLevel();
        var sum = ReadTile(part.SubView(first), GroupThreads);
        for (int z = 1; z < splits; z++) sum = Add(sum, ReadTile(part.SubView(first + (long)z * PartFloats), GroupThreads));
        if (tid == 0) sync[tile] = 0;
        acc = sum;
        return true;
    }

    private static Acc Add(Acc a, Acc b) => new() { C0 = a.C0 + b.C0, C1 = a.C1 + b.C1, C2 = a.C2 + b.C2, C3 = a.C3 + b.C3 };

    private static WarpTile Add(WarpTile a, WarpTile b) => new()
    {
        M0N0 = Add(a.M0N0, b.M0N0), M0N1 = Add(a.M0N1, b.M0N1), M0N2 = Add(a.M0N2, b.M0N2), M0N3 = Add(a.M0N3, b.M0N3),
        M1N0 = Add(a.M1N0, b.M1N0), M1N1 = Add(a.M1N1, b.M1N1), M1N2 = Add(a.M1N2, b.M1N2), M1N3 = Add(a.M1N3, b.M1N3),
    };

    /// <summary>A group's row tile and token tile.</summary>
    public struct Tile
    {
        public int Row, Token;
    }

    /// <summary>Token tiles a band (<see cref="TileOf"/>): 8, a 512-token step's tiles in one band. On an H100, 8B
    /// pp512 with the stage loop of session 19: band 8 against band 1 (the grid's own order) +4.5 % (Q8_0), +1.2 %
    /// (Q4_K_M), +4.4 % (Q4_0) (docs/benchmarks.md "Session 19").</summary>
    public const int TokenBand = 8;

    /// <summary>The group's tile. The grid is (row tiles, token tiles) and the GPU starts groups in the order of
    /// x + y·DimX; that number is read as bands of <see cref="TokenBand"/> token tiles, and within a band as row tile
    /// by row tile with the band's token tiles next to each other, so the groups that run at the same time share each
    /// weight tile through L2 instead of each reading it from memory.</summary>
    public static Tile TileOf() => TileOf(Grid.IdxX + Grid.IdxY * Grid.DimX, Grid.DimX, Grid.DimY);

    /// <summary>The tile of group <paramref name="id"/> (x + y·DimX) of a grid of <paramref name="rowTiles"/> ×
    /// <paramref name="tokenTiles"/> (<see cref="TileOf()"/>).</summary>
    public static Tile TileOf(int id, int rowTiles, int tokenTiles)
    {
        int band = id / (TokenBand * rowTiles), local = id - band * TokenBand * rowTiles;
        int width = IntrinsicMath.Min(TokenBand, tokenTiles - band * TokenBand);
        int row = local / width;
        return new Tile { Row = row, Token = band * TokenBand + local - row * width };
    }

    /// <summary>The shared-memory tiles of one stage.</summary>
    public struct Tiles
    {
        public ArrayView<int> W;          // [Rows × Stride] int8 weights, 8 words per group
        public ArrayView<int> X;          // [Tokens × Stride] int8 activations
        public ArrayView<float> Scale;    // [Rows × StageGroups] weight scale (first 16 weights for Q6_K)
        public ArrayView<float> ScaleHi;  // … for weights 16..31 (Q6_K)
        public ArrayView<float> Min;      // … min (K-quants)
        public ArrayView<float> XScale;   // [Tokens × StageGroups] d_x
        public ArrayView<float> XSum;     // … d_x·Σq_x
    }

    /// <summary>Words per row (or token) in shared memory: 8 per group and 4 of padding, so the fragment loads of a
    /// warp (rows g = 0..7 × words t = 0..3) hit 32 different banks: (36·g + t) mod 32 = 4g + t.</summary>
    public const int Stride = 36;

    /// <summary>32-weight groups per shared-memory stage (k = 128). Static shared memory is at most 48 KB: the tiles of
    /// a stage take (128 + 64)·36·4 bytes plus the scales, 35 KB.</summary>
    public const int StageGroups = 4;

    /// <summary>Bytes from one m16 tile's (or two n8 tiles') ldmatrix rows to the next 16 rows' (or tokens').</summary>
    public const int MatrixTile16 = 16 * Stride * 4;

    /// <summary>Bytes of the weight and activation tiles (<see cref="Allocate"/>'s first two arrays).</summary>
    public const int TileWBytes = RowsPerGroup * Stride * 4, TileXBytes = TokensPerGroup * Stride * 4;

    /// <summary>The tiles of a group: 128 rows × 64 tokens, 256 threads (a warp per 32 × 32).</summary>
    public static Tiles Allocate() => new()
    {
        W = SharedMemory.Allocate<int>(RowsPerGroup * Stride),
        X = SharedMemory.Allocate<int>(TokensPerGroup * Stride),
        Scale = SharedMemory.Allocate<float>(RowsPerGroup * StageGroups),
        ScaleHi = SharedMemory.Allocate<float>(RowsPerGroup * StageGroups),
        Min = SharedMemory.Allocate<float>(RowsPerGroup * StageGroups),
        XScale = SharedMemory.Allocate<float>(TokensPerGroup * StageGroups),
        XSum = SharedMemory.Allocate<float>(TokensPerGroup * StageGroups),
    };

    /// <summary>Four f32 accumulators of an m16n8 fragment: (row g, token 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)
    /// for lane 4g + t (PTX ISA "Matrix Fragments for mma.m16n8k32", C/D).</summary>
    public struct Acc
    {
        public float C0, C1, C2, C3;
    }

    /// <summary>A warp's 32 rows × 32 tokens: two m16 row tiles × four n8 token tiles.</summary>
    public struct WarpTile
    {
        public Acc M0N0, M0N1, M0N2, M0N3, M1N0, M1N1, M1N2, M1N3;
    }

    /// <summary>One thread's share of a stage, loaded from global memory one stage ahead (<see cref="Accumulate{T}"/>):
    /// weight parts (row tid/16 + 16i, group tid/4 % 4, part tid % 4) for i = 0..7, the scales of rows tid/4 + 64i,
    /// group tid % 4 for i = 0, 1 (loaded just before the store where the format's <see cref="IInt8Tiles.LateScales"/>
    /// says so), activation pieces (token tid/8 + 32i, piece tid % 8) for i = 0, 1, and the scale
    /// pair of token tid/4, group tid % 4.</summary>
    public struct Staged
    {
        public uint W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10, W11, W12, W13, W14, W15;
        public float S0, S1, H0, H1, M0, M1;
        public uint X0, X1, X2, X3, X4, X5, X6, X7;
        public float D, Sum;
    }

    /// <summary>Two words of a weight part.</summary>
    public struct Part
    {
        public uint Lo, Hi;
    }

    /// <summary>The warp's tile accumulated over all columns (all threads of the group call it), software-pipelined:
    /// the global loads of stage k + 1 are issued before the products of stage k, into registers
    /// (<see cref="Staged"/>), and stored to shared memory after them, so their latency is covered by the products
    /// even with one group on an SM (a 70B projection at 128 tokens has 16–128 groups for 132 SMs). The loads are
    /// straight-line code with clamped indices and selects (no branch between a load and the products), and the four
    /// groups of a stage are written out, not looped, so the compiler schedules the products between the loads and
    /// their unpacking. It costs registers (ptxas gave the Q8_0 kernel 248 a thread with the biased C operand, one group
    /// an SM; 96 since C is 0, 128 with the views of <see cref="Sources"/>: still two groups an SM) and pays:
    /// 8B Q8_0 pp512 2827 → 4158 tok/s on the H100. Limiting registers to two groups an SM spilled and was slower while
    /// the stage held 196–248 (session 8); at today's 128–163 the cap pays (<see cref="MaxRegisters"/>).</summary>
    public static WarpTile Accumulate<T>(ArrayView<byte> w, ArrayView<byte> xq, int rows, int cols, int nTokens, Tiles s, int rowTile, int tokenTile)
        where T : struct, IWeightFormat, IInt8Tiles =>
        Accumulate<T>(w, w, xq, rows, cols, nTokens, s, rowTile * RowsPerGroup, rowTile * RowsPerGroup + RowsPerGroup / 2, tokenTile, 0, cols / 32);

    /// <summary><see cref="Accumulate{T}(ArrayView{byte}, ArrayView{byte}, int, int, int, Tiles, int, int)"/> with the
    /// tile's rows 0..63 from <paramref name="lo"/> at row <paramref name="loRow0"/> and rows 64..127 from
    /// <paramref name="hi"/> at <paramref name="hiRow0"/> (gemm_swiglu: gate and up), over the columns of 32-groups
    /// <paramref name="kBegin"/> .. <paramref name="kEnd"/> − 1 (a split's, <see cref="SplitOf"/>).</summary>
    public static WarpTile Accumulate<T>(ArrayView<byte> lo, ArrayView<byte> hi, ArrayView<byte> xq, int rows, int cols, int nTokens, Tiles s,
        int loRow0, int hiRow0, int tokenTile, int kBegin, int kEnd)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        var format = default(T);
        int tid = Group.IdxX, lane = Warp.LaneIdx, warp = Reduce.WarpIndex;
        int wr = 32 * (warp & 3), wt = 32 * (warp >> 2), g = lane >> 2, t = lane & 3;
        var at = Sources.Of(format, lo, hi, xq, rows, cols, nTokens, loRow0, hiRow0, tokenTile * TokensPerGroup, tid);
        at.Groups = kEnd;   // loads past it keep zeros, as past the row's end
        var acc = default(WarpTile);
        uint am = (format.MatrixLoads & 1) != 0 ? MatrixRowA(wr, lane) : 0, bm = (format.MatrixLoads & 2) != 0 ? MatrixRowB(wt, lane) : 0;
        var next = Load(format, at, kBegin, tid);
        for (int k0 = kBegin; k0 < at.Groups; k0 += StageGroups)
        {
            Group.Barrier();   // the previous stage's fragments are read
            if (format.LateScales) next = WithScales(format, at, next, k0, tid);
            Store(s, next, tid);
            Group.Barrier();
            next = Load(format, at, k0 + StageGroups, tid);
            acc = Products(format, acc, s, wr, wt, g, t, 0, am, bm);
            acc = Products(format, acc, s, wr, wt, g, t, 1, am, bm);
            acc = Products(format, acc, s, wr, wt, g, t, 2, am, bm);
            acc = Products(format, acc, s, wr, wt, g, t, 3, am, bm);
        }
        return acc;
    }

    /// <summary>What a thread's stage loads read, fixed for the whole k loop: the rows of its weight parts, scales and
    /// activations (clamped to the last row and token) as views, and the sizes the loads compare against. Computed
    /// once before the loop, so a stage's loads add only the stage's column offsets to them (ptxas did not move the
    /// row products and the divisions of the sizes out of the loop when the stage computed them itself).</summary>
    private struct Sources
    {
        public ArrayView<byte> W0, W1, W2, W3, W4, W5, W6, W7;   // weight rows tid/16 + 16i
        public ArrayView<byte> S0, S1;                           // scale rows tid/4, tid/4 + 64
        public ArrayView<byte> X0, X1;                           // activation rows of tokens tid/8, tid/8 + 32
        public ArrayView<byte> D;                                // the scale pairs' row: token tid/4
        public int Groups, Pairs;
        public bool X0Valid, X1Valid, DValid;

        /// <summary>Tile rows 0..63 are <paramref name="lo"/>'s from <paramref name="loRow0"/>, rows 64..127
        /// <paramref name="hi"/>'s from <paramref name="hiRow0"/> (the same matrix 64 rows on, but for gemm_swiglu): a
        /// thread's weight rows tid/16 + 16i are below 64 for i &lt; 4, its scale rows tid/4 and tid/4 + 64 one each.</summary>
        public static Sources Of<T>(T format, ArrayView<byte> lo, ArrayView<byte> hi, ArrayView<byte> xq, int rows, int cols, int nTokens,
            int loRow0, int hiRow0, int tok0, int tid)
            where T : struct, IWeightFormat, IInt8Tiles
        {
            int lastRow = rows - 1, lastToken = nTokens - 1;
            long rowBytes = Gemv.RowBytes<T>(cols), xRowBytes = Quantize.RowBytes(cols);
            int wLo = loRow0 + (tid >> 4), wHi = hiRow0 + (tid >> 4), xTok = tok0 + (tid >> 3), dTok = tok0 + (tid >> 2);
            return new Sources
            {
                W0 = Row(format, lo, IntrinsicMath.Min(wLo, lastRow), rowBytes),
                W1 = Row(format, lo, IntrinsicMath.Min(wLo + 16, lastRow), rowBytes),
                W2 = Row(format, lo, IntrinsicMath.Min(wLo + 32, lastRow), rowBytes),
                W3 = Row(format, lo, IntrinsicMath.Min(wLo + 48, lastRow), rowBytes),
                W4 = Row(format, hi, IntrinsicMath.Min(wHi, lastRow), rowBytes),
                W5 = Row(format, hi, IntrinsicMath.Min(wHi + 16, lastRow), rowBytes),
                W6 = Row(format, hi, IntrinsicMath.Min(wHi + 32, lastRow), rowBytes),
                W7 = Row(format, hi, IntrinsicMath.Min(wHi + 48, lastRow), rowBytes),
                S0 = Row(format, lo, IntrinsicMath.Min(loRow0 + (tid >> 2), lastRow), rowBytes),
                S1 = Row(format, hi, IntrinsicMath.Min(hiRow0 + (tid >> 2), lastRow), rowBytes),
                X0 = xq.SubView(IntrinsicMath.Min(xTok, lastToken) * xRowBytes, xRowBytes).AsAligned(16),
                X1 = xq.SubView(IntrinsicMath.Min(xTok + 32, lastToken) * xRowBytes, xRowBytes).AsAligned(16),
                D = xq.SubView(IntrinsicMath.Min(dTok, lastToken) * xRowBytes, xRowBytes).AsAligned(16),
                Groups = cols / 32,
                Pairs = (int)Quantize.PairsOffset(cols),
                X0Valid = xTok < nTokens,
                X1Valid = xTok + 32 < nTokens,
                DValid = dTok < nTokens,
            };
        }

        private static ArrayView<byte> Row<T>(T format, ArrayView<byte> w, int row, long rowBytes)
            where T : struct, IWeightFormat, IInt8Tiles => w.SubView(row * rowBytes, rowBytes).AsAligned(format.LaneAlignment);
    }

    /// <summary>The thread's <see cref="Staged"/> share of the stage at group <paramref name="k0"/>; groups past the
    /// end (the stage after the last) and tokens past the end load clamped addresses and keep zeros.</summary>
    private static Staged Load<T>(T format, Sources at, int k0, int tid)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        int groups = at.Groups;
        Staged st;
        // Weights: part tid % 4 of group k0 + tid/4 % 4, rows tid/16 + 16i.
        int wGroup = k0 + ((tid >> 2) & 3), wPart = tid & 3;
        bool wValid = wGroup < groups;
        int wSafe = IntrinsicMath.Min(wGroup, groups - 1);
        Part p0 = WeightPart(format, at.W0, wSafe, wPart, wValid);
        Part p1 = WeightPart(format, at.W1, wSafe, wPart, wValid);
        Part p2 = WeightPart(format, at.W2, wSafe, wPart, wValid);
        Part p3 = WeightPart(format, at.W3, wSafe, wPart, wValid);
        Part p4 = WeightPart(format, at.W4, wSafe, wPart, wValid);
        Part p5 = WeightPart(format, at.W5, wSafe, wPart, wValid);
        Part p6 = WeightPart(format, at.W6, wSafe, wPart, wValid);
        Part p7 = WeightPart(format, at.W7, wSafe, wPart, wValid);
        st.W0 = p0.Lo; st.W1 = p0.Hi; st.W2 = p1.Lo; st.W3 = p1.Hi; st.W4 = p2.Lo; st.W5 = p2.Hi; st.W6 = p3.Lo; st.W7 = p3.Hi;
        st.W8 = p4.Lo; st.W9 = p4.Hi; st.W10 = p5.Lo; st.W11 = p5.Hi; st.W12 = p6.Lo; st.W13 = p6.Hi; st.W14 = p7.Lo; st.W15 = p7.Hi;
        if (format.LateScales) { st.S0 = 0f; st.H0 = 0f; st.M0 = 0f; st.S1 = 0f; st.H1 = 0f; st.M1 = 0f; }
        else StageScales(format, at, k0, tid, out st.S0, out st.H0, out st.M0, out st.S1, out st.H1, out st.M1);
        // Activations: piece tid % 8 (group k0 + piece/2, half piece % 2), tokens tid/8 and tid/8 + 32.
        int xGroup = k0 + ((tid & 7) >> 1);
        int xAt = 32 * IntrinsicMath.Min(xGroup, groups - 1) + 16 * (tid & 1);
        Ld.U4(at.X0, xAt, out uint a0, out uint b0, out uint c0, out uint d0);
        Ld.U4(at.X1, xAt, out uint a1, out uint b1, out uint c1, out uint d1);
        bool x0 = xGroup < groups && at.X0Valid, x1 = xGroup < groups && at.X1Valid;
        st.X0 = x0 ? a0 : 0; st.X1 = x0 ? b0 : 0; st.X2 = x0 ? c0 : 0; st.X3 = x0 ? d0 : 0;
        st.X4 = x1 ? a1 : 0; st.X5 = x1 ? b1 : 0; st.X6 = x1 ? c1 : 0; st.X7 = x1 ? d1 : 0;
        // The token scale pair: group k0 + tid % 4, token tid / 4.
        int dGroup = k0 + (tid & 3);
        Ld.ScaleSum(at.D, at.Pairs + 8 * IntrinsicMath.Min(dGroup, groups - 1), out float d, out int q);
        bool dValid = dGroup < groups && at.DValid;
        st.D = dValid ? d : 0f;
        st.Sum = dValid ? d * q : 0f;
        return st;
    }

    /// <summary><paramref name="st"/> with the scales of the stage at group <paramref name="k0"/>.</summary>
    private static Staged WithScales<T>(T format, Sources at, Staged st, int k0, int tid)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        StageScales(format, at, k0, tid, out st.S0, out st.H0, out st.M0, out st.S1, out st.H1, out st.M1);
        return st;
    }

    /// <summary>The thread's scales of the stage at group <paramref name="k0"/>: group k0 + tid % 4, rows tid/4 and
    /// tid/4 + 64 (zeros past the last group).</summary>
    private static void StageScales<T>(T format, Sources at, int k0, int tid,
        out float s0, out float h0, out float m0, out float s1, out float h1, out float m1)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        int groups = at.Groups, sGroup = k0 + (tid & 3);
        bool sValid = sGroup < groups;
        int sSafe = IntrinsicMath.Min(sGroup, groups - 1);
        format.Scales(at.S0, sSafe, out float sc0, out float hi0, out float min0);
        format.Scales(at.S1, sSafe, out float sc1, out float hi1, out float min1);
        s0 = sValid ? sc0 : 0f; h0 = sValid ? hi0 : 0f; m0 = sValid ? min0 : 0f;
        s1 = sValid ? sc1 : 0f; h1 = sValid ? hi1 : 0f; m1 = sValid ? min1 : 0f;
    }

    private static Part WeightPart<T>(T format, ArrayView<byte> row, int group, int part, bool valid)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        format.Weights8(row, group, part, out uint lo, out uint hi);
        return new Part { Lo = valid ? lo : 0, Hi = valid ? hi : 0 };
    }

    /// <summary>Writes the thread's <see cref="Staged"/> share into the stage's tiles: weights [row × Stride] with
    /// 8 words per group, scales [row × StageGroups + group], activations [token × Stride], token scales
    /// [token × StageGroups + group].</summary>
    private static void Store(Tiles s, Staged st, int tid)
    {
        // Each array is indexed from one per-thread view plus constants, so ptxas folds the constants into the
        // shared stores' offsets (an index sum converted to an address after the addition cannot be reassociated,
        // and cost a LEA a store).
        var w = s.W.SubView((tid >> 4) * Stride + ((tid >> 2) & 3) * 8 + 2 * (tid & 3));
        w[0] = (int)st.W0; w[1] = (int)st.W1;
        w[16 * Stride] = (int)st.W2; w[16 * Stride + 1] = (int)st.W3;
        w[32 * Stride] = (int)st.W4; w[32 * Stride + 1] = (int)st.W5;
        w[48 * Stride] = (int)st.W6; w[48 * Stride + 1] = (int)st.W7;
        w[64 * Stride] = (int)st.W8; w[64 * Stride + 1] = (int)st.W9;
        w[80 * Stride] = (int)st.W10; w[80 * Stride + 1] = (int)st.W11;
        w[96 * Stride] = (int)st.W12; w[96 * Stride + 1] = (int)st.W13;
        w[112 * Stride] = (int)st.W14; w[112 * Stride + 1] = (int)st.W15;
        // Scales: index row·4 + group, rows tid/4 and tid/4 + 64 (tid and tid + 256).
        var scale = s.Scale.SubView(tid);
        var scaleHi = s.ScaleHi.SubView(tid);
        var min = s.Min.SubView(tid);
        scale[0] = st.S0; scaleHi[0] = st.H0; min[0] = st.M0;
        scale[256] = st.S1; scaleHi[256] = st.H1; min[256] = st.M1;
        var x = s.X.SubView((tid >> 3) * Stride + 4 * (tid & 7));
        x[0] = (int)st.X0; x[1] = (int)st.X1; x[2] = (int)st.X2; x[3] = (int)st.X3;
        x[32 * Stride] = (int)st.X4; x[32 * Stride + 1] = (int)st.X5; x[32 * Stride + 2] = (int)st.X6; x[32 * Stride + 3] = (int)st.X7;
        s.XScale.SubView(tid)[0] = st.D;
        s.XSum.SubView(tid)[0] = st.Sum;
    }

    /// <summary>The warp's products of group <paramref name="kg"/> of the stage in the tiles.</summary>
    private static WarpTile Products<T>(T format, WarpTile acc, Tiles s, int wr, int wt, int g, int t, int kg, uint am, uint bm)
        where T : struct, IInt8Tiles
    {
        // Every shared load below is one of these per-thread views plus a constant (see Store).
        int aw = (wr + g) * Stride + kg * 8 + t, bw = (wt + g) * Stride + kg * 8 + t;
        // ldmatrix.x4 (format.MatrixLoads): one for A of each m16 tile, one for B of two n8 tiles, in place of four
        // 32-bit shared loads each.
        bool matrixA = CudaAsm.IsSupported && (format.MatrixLoads & 1) != 0, matrixB = CudaAsm.IsSupported && (format.MatrixLoads & 2) != 0;
        Fragment a0, a1, b0, b1, b2, b3;
        if (matrixA)
        {
            a0 = Fragment.Matrices(am + (uint)(32 * kg));
            a1 = Fragment.Matrices(am + (uint)(32 * kg + MatrixTile16));
        }
        else
        {
            var av = s.W.SubView((wr + g) * Stride + t);
            a0 = Fragment.A(av, kg * 8, Stride); a1 = Fragment.A(av, kg * 8 + 16 * Stride, Stride);
        }
        if (matrixB)
        {
            var n01 = Fragment.Matrices(bm + (uint)(32 * kg));
            var n23 = Fragment.Matrices(bm + (uint)(32 * kg + MatrixTile16));
            b0 = new Fragment { R0 = n01.R0, R1 = n01.R1 };
            b1 = new Fragment { R0 = n01.R2, R1 = n01.R3 };
            b2 = new Fragment { R0 = n23.R0, R1 = n23.R1 };
            b3 = new Fragment { R0 = n23.R2, R1 = n23.R3 };
        }
        else
        {
            var bv = s.X.SubView((wt + g) * Stride + t);
            b0 = Fragment.B(bv, kg * 8); b1 = Fragment.B(bv, kg * 8 + 8 * Stride);
            b2 = Fragment.B(bv, kg * 8 + 16 * Stride); b3 = Fragment.B(bv, kg * 8 + 24 * Stride);
        }
        var rs = RowScales.Views(s, wr + g);
        var r0 = RowScales.Of(rs, 0, kg, StageGroups);
        var r1 = RowScales.Of(rs, 16, kg, StageGroups);
        var ts = TokenScales.Views(s, wt + 2 * t);
        TokenScales c0 = TokenScales.Of(ts, 0, kg, StageGroups), c1 = TokenScales.Of(ts, 8, kg, StageGroups);
        TokenScales c2 = TokenScales.Of(ts, 16, kg, StageGroups), c3 = TokenScales.Of(ts, 24, kg, StageGroups);
        acc.M0N0 = Step(format, acc.M0N0, a0, b0, r0, c0, s, aw, bw, Stride);
        acc.M0N1 = Step(format, acc.M0N1, a0, b1, r0, c1, s, aw, bw + 8 * Stride, Stride);
        acc.M0N2 = Step(format, acc.M0N2, a0, b2, r0, c2, s, aw, bw + 16 * Stride, Stride);
        acc.M0N3 = Step(format, acc.M0N3, a0, b3, r0, c3, s, aw, bw + 24 * Stride, Stride);
        acc.M1N0 = Step(format, acc.M1N0, a1, b0, r1, c0, s, aw + 16 * Stride, bw, Stride);
        acc.M1N1 = Step(format, acc.M1N1, a1, b1, r1, c1, s, aw + 16 * Stride, bw + 8 * Stride, Stride);
        acc.M1N2 = Step(format, acc.M1N2, a1, b2, r1, c2, s, aw + 16 * Stride, bw + 16 * Stride, Stride);
        acc.M1N3 = Step(format, acc.M1N3, a1, b3, r1, c3, s, aw + 16 * Stride, bw + 24 * Stride, Stride);
        return acc;
    }

    /// <summary>A lane's registers of an A (16×32) or B (32×8) fragment, for word t of group kg:
    /// A: R0 = row g words t, R1 = row g+8 word t, R2 = row g word 4+t, R3 = row g+8 word 4+t;
    /// B: R0 = token g word t, R1 = token g word 4+t (each word four consecutive k).</summary>
    public struct Fragment
    {
        public uint R0, R1, R2, R3;

        public static Fragment A(ArrayView<int> tile, int at, int stride) => new()
        {
            R0 = (uint)tile[at], R1 = (uint)tile[at + 8 * stride], R2 = (uint)tile[at + 4], R3 = (uint)tile[at + 8 * stride + 4],
        };

        public static Fragment B(ArrayView<int> tile, int at) => new() { R0 = (uint)tile[at], R1 = (uint)tile[at + 4] };

        /// <summary>Four 8 × 8 matrices of 16-bit elements (8 × 16 bytes each) by one ldmatrix.x4 (PTX ISA "Warp-level
        /// matrix load instruction: ldmatrix"): <paramref name="address"/> is the lane's row of matrix lane / 8 in
        /// shared memory (<see cref="MatrixRowA"/>, <see cref="MatrixRowB"/>); Ri is the lane's word of matrix i (row
        /// lane / 4, bytes 4·(lane % 4)…), the word the int8 fragment layout gives the lane.</summary>
        public static Fragment Matrices(uint address)
        {
            Input<uint> at = address;
            Output<uint> r0 = default, r1 = default, r2 = default, r3 = default;
            CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];", ref r0, ref r1, ref r2, ref r3, ref at);
            return new Fragment { R0 = r0.Value, R1 = r1.Value, R2 = r2.Value, R3 = r3.Value };
        }
    }

    /// <summary>The lane's ldmatrix row for the A fragments of the warp's first m16 tile at group 0: matrix i = lane / 8
    /// is rows 8·(i % 2)… of the tile at bytes 16·(i / 2), so its registers are A's R0 (rows g, k 4t…), R1 (rows g + 8),
    /// R2 (rows g, k 16 + 4t…) and R3. The second m16 tile is 16 rows on, group kg 32·kg bytes on. 0 where there is no
    /// ldmatrix (the CPU accelerator's managed products read the tiles).</summary>
    private static uint MatrixRowA(int wr, int lane) => CudaAsm.IsSupported ? TileW() + (uint)MatrixRowOffsetA(wr, lane) : 0;

    /// <summary>The byte offset in the weight tile of <see cref="MatrixRowA"/> (tested against <see cref="Fragment.A"/>).</summary>
    public static int MatrixRowOffsetA(int wr, int lane) => 4 * (wr + (lane & 7) + 8 * ((lane >> 3) & 1)) * Stride + 16 * (lane >> 4);

    /// <summary>The lane's ldmatrix row for the B fragments of the warp's n8 tiles 0 and 1 at group 0: matrix i = lane / 8
    /// is tokens 8·(i / 2)… at bytes 16·(i % 2), so its registers are tile 0's R0, R1 and tile 1's R0, R1. Tiles 2 and 3
    /// are 16 tokens on.</summary>
    private static uint MatrixRowB(int wt, int lane) => CudaAsm.IsSupported ? TileX() + (uint)MatrixRowOffsetB(wt, lane) : 0;

    /// <summary>The byte offset in the activation tile of <see cref="MatrixRowB"/> (tested against <see cref="Fragment.B"/>).</summary>
    public static int MatrixRowOffsetB(int wt, int lane) => 4 * (wt + (lane & 7) + 8 * (lane >> 4)) * Stride + 16 * ((lane >> 3) & 1);

    /// <summary>The shared-memory addresses of the weight and activation tiles. ILGPU gives a kernel's shared arrays
    /// the names __shared_alloca0, 1, … in the order they are allocated, and a view no address a kernel can read, so
    /// the tiles are named: <see cref="Allocate"/> allocates W first and X second, and PtxBuild fails the build where an
    /// entry with ldmatrix declares them with other sizes (PtxBuild's CheckTileNames).</summary>
    private static uint TileW()
    {
        CudaAsm.Emit("{ .reg .u64 t; mov.u64 t, __shared_alloca0; cvt.u32.u64 %0, t; }", out uint a);
        return a;
    }

    private static uint TileX()
    {
        CudaAsm.Emit("{ .reg .u64 t; mov.u64 t, __shared_alloca1; cvt.u32.u64 %0, t; }", out uint a);
        return a;
    }

    /// <summary>Scales of the lane's two rows g, g + 8 of an m16 tile for one group.</summary>
    public struct RowScales
    {
        public float Lo0, Lo1, Hi0, Hi1, Min0, Min1;

        /// <summary>The scale arrays from row <paramref name="row"/> on.</summary>
        public static Tiles Views(Tiles s, int row) => new()
        {
            Scale = s.Scale.SubView(row * StageGroups), ScaleHi = s.ScaleHi.SubView(row * StageGroups), Min = s.Min.SubView(row * StageGroups),
        };

        /// <summary>Rows <paramref name="row"/> and row + 8 of the views <paramref name="v"/> (<see cref="Views"/>).</summary>
        public static RowScales Of(Tiles v, int row, int kg, int stageGroups)
        {
            int i = row * stageGroups + kg, j = i + 8 * stageGroups;
            return new RowScales
            {
                Lo0 = v.Scale[i], Lo1 = v.Scale[j], Hi0 = v.ScaleHi[i], Hi1 = v.ScaleHi[j], Min0 = v.Min[i], Min1 = v.Min[j],
            };
        }
    }

    /// <summary>d_x and d_x·Σq_x of the lane's two tokens 2t, 2t + 1 of an n8 tile for one group.</summary>
    public struct TokenScales
    {
        public float D0, D1, S0, S1;

        /// <summary>The token scale arrays from token <paramref name="token"/> on.</summary>
        public static Tiles Views(Tiles s, int token) => new()
        {
            XScale = s.XScale.SubView(token * StageGroups), XSum = s.XSum.SubView(token * StageGroups),
        };

        /// <summary>Tokens <paramref name="token"/> and token + 1 of the views <paramref name="v"/> (<see cref="Views"/>).</summary>
        public static TokenScales Of(Tiles v, int token, int kg, int stageGroups)
        {
            int i = token * stageGroups + kg;
            return new TokenScales { D0 = v.XScale[i], D1 = v.XScale[i + stageGroups], S0 = v.XSum[i], S1 = v.XSum[i + stageGroups] };
        }
    }

    /// <summary>One group's product of an m16 × n8 tile into its accumulators. <paramref name="aw"/> and
    /// <paramref name="bw"/> are the lane's fragment words in the tiles (read by the managed path only).</summary>
    private static Acc Step<T>(T format, Acc acc, Fragment a, Fragment b, RowScales r, TokenScales c, Tiles s, int aw, int bw, int stride)
        where T : struct, IInt8Tiles
    {
        if (format.SplitScales)
        {
            // Two k16 products: weights 0..15 are words 0..3 (R0, R1 of A; R0 of B), 16..31 words 4..7.
            Mma16(a.R0, a.R1, b.R0, s, aw, bw, 0, stride, out int l0, out int l1, out int l2, out int l3);
            Mma16(a.R2, a.R3, b.R1, s, aw, bw, 4, stride, out int h0, out int h1, out int h2, out int h3);
            acc.C0 += c.D0 * (r.Lo0 * Dot(l0) + r.Hi0 * Dot(h0));
            acc.C1 += c.D1 * (r.Lo0 * Dot(l1) + r.Hi0 * Dot(h1));
            acc.C2 += c.D0 * (r.Lo1 * Dot(l2) + r.Hi1 * Dot(h2));
            acc.C3 += c.D1 * (r.Lo1 * Dot(l3) + r.Hi1 * Dot(h3));
            return acc;
        }
        Mma32(a, b, s, aw, bw, stride, out int d0, out int d1, out int d2, out int d3);
        acc.C0 += r.Lo0 * c.D0 * Dot(d0);
        acc.C1 += r.Lo0 * c.D1 * Dot(d1);
        acc.C2 += r.Lo1 * c.D0 * Dot(d2);
        acc.C3 += r.Lo1 * c.D1 * Dot(d3);
        if (format.HasMin)
        {
            acc.C0 -= r.Min0 * c.S0;
            acc.C1 -= r.Min0 * c.S1;
            acc.C2 -= r.Min1 * c.S0;
            acc.C3 -= r.Min1 * c.S1;
        }
        return acc;
    }

    /// <summary>The integer dot of an mma result as a float (exact: |dot| &lt; 2^24).</summary>
    private static float Dot(int d) => d;

    /// <summary>D = A·B over k = 32 for one m16n8 tile (C = 0). ILGPU's <c>CudaAsm.Emit</c> has a single output,
    /// so the four D registers go through <c>EmitRef</c> (Output/Input wrappers: ILGPU writes them to local variables
    /// around the asm; ptxas removes the round trip: ptxas -v reports no stack frame).</summary>
    private static void Mma32(Fragment a, Fragment b, Tiles s, int aw, int bw, int stride, out int d0, out int d1, out int d2, out int d3)
    {
        if (CudaAsm.IsSupported)
        {
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            Output<int> o0 = default, o1 = default, o2 = default, o3 = default;
            CudaAsm.EmitRef("{ .reg .s32 z; mov.s32 z, 0; mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {z,z,z,z}; }",
                ref o0, ref o1, ref o2, ref o3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d0 = o0.Value; d1 = o1.Value; d2 = o2.Value; d3 = o3.Value;
            return;
        }
        // Managed: the four elements this lane owns, from the tiles (rows aw, aw + 8·Stride; tokens bw, bw + Stride,
        // shifted from word t to the lane's token pair: token 2t, 2t + 1 of the n8 tile).
        ManagedDots(s, aw, bw, 0, 8, stride, out d0, out d1, out d2, out d3);
    }

    /// <summary>D = A·B over k = 16 (words <paramref name="word0"/>..+3 of the group).</summary>
    private static void Mma16(uint a0, uint a1, uint b0, Tiles s, int aw, int bw, int word0, int stride, out int d0, out int d1, out int d2, out int d3)
    {
        if (CudaAsm.IsSupported)
        {
            Input<uint> ia0 = a0, ia1 = a1, ib0 = b0;
            Output<int> o0 = default, o1 = default, o2 = default, o3 = default;
            CudaAsm.EmitRef("{ .reg .s32 z; mov.s32 z, 0; mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {z,z,z,z}; }",
                ref o0, ref o1, ref o2, ref o3, ref ia0, ref ia1, ref ib0);
            d0 = o0.Value; d1 = o1.Value; d2 = o2.Value; d3 = o3.Value;
            return;
        }
        ManagedDots(s, aw, bw, word0, 4, stride, out d0, out d1, out d2, out d3);
    }

    /// <summary>The lane's four D elements computed from the shared tiles: row words at aw − t (row g) and
    /// aw − t + 8·Stride (row g + 8), tokens 2t and 2t + 1 of the n8 tile whose token g starts at bw − t.</summary>
    private static void ManagedDots(Tiles s, int aw, int bw, int word0, int words, int stride, out int d0, out int d1, out int d2, out int d3)
    {
        int t = Warp.LaneIdx & 3, g = Warp.LaneIdx >> 2;
        int row0 = aw - t + word0, row1 = row0 + 8 * stride;
        int tile = bw - t - g * stride;   // token 0 of the n8 tile
        int tok0 = tile + 2 * t * stride + word0, tok1 = tok0 + stride;
        d0 = 0; d1 = 0; d2 = 0; d3 = 0;
        for (int i = 0; i < words; i++)
        {
            uint w0 = (uint)s.W[row0 + i], w1 = (uint)s.W[row1 + i], x0 = (uint)s.X[tok0 + i], x1 = (uint)s.X[tok1 + i];
            d0 = Ld.Dp4a(w0, x0, d0);
            d1 = Ld.Dp4a(w0, x1, d1);
            d2 = Ld.Dp4a(w1, x0, d2);
            d3 = Ld.Dp4a(w1, x1, d3);
        }
    }

    private static Acc Glu(Acc g, Acc u) => new()
    {
        C0 = SwiGlu.Silu(g.C0) * u.C0, C1 = SwiGlu.Silu(g.C1) * u.C1, C2 = SwiGlu.Silu(g.C2) * u.C2, C3 = SwiGlu.Silu(g.C3) * u.C3,
    };

    private static WarpTile Glu(WarpTile g, WarpTile u) => new()
    {
        M0N0 = Glu(g.M0N0, u.M0N0), M0N1 = Glu(g.M0N1, u.M0N1), M0N2 = Glu(g.M0N2, u.M0N2), M0N3 = Glu(g.M0N3, u.M0N3),
        M1N0 = Glu(g.M1N0, u.M1N0), M1N1 = Glu(g.M1N1, u.M1N1), M1N2 = Glu(g.M1N2, u.M1N2), M1N3 = Glu(g.M1N3, u.M1N3),
    };

    /// <summary>Writes (or adds) the warp's tile: y[token, row], guarded for rows and tokens past the end.</summary>
    private static void Store(ArrayView<float> y, WarpTile acc, int rows, int nTokens, int row0, int tokenTile, bool accumulate)
    {
        int lane = Warp.LaneIdx, warp = Reduce.WarpIndex;
        int r = row0 + 32 * (warp & 3) + (lane >> 2);
        int k = tokenTile * TokensPerGroup + 32 * (warp >> 2) + 2 * (lane & 3);
        Store(y, acc.M0N0, r, k, rows, nTokens, accumulate);
        Store(y, acc.M0N1, r, k + 8, rows, nTokens, accumulate);
        Store(y, acc.M0N2, r, k + 16, rows, nTokens, accumulate);
        Store(y, acc.M0N3, r, k + 24, rows, nTokens, accumulate);
        Store(y, acc.M1N0, r + 16, k, rows, nTokens, accumulate);
        Store(y, acc.M1N1, r + 16, k + 8, rows, nTokens, accumulate);
        Store(y, acc.M1N2, r + 16, k + 16, rows, nTokens, accumulate);
        Store(y, acc.M1N3, r + 16, k + 24, rows, nTokens, accumulate);
    }

    private static void Store(ArrayView<float> y, Acc a, int r, int k, int rows, int nTokens, bool accumulate)
    {
        Store(y, a.C0, r, k, rows, nTokens, accumulate);
        Store(y, a.C1, r, k + 1, rows, nTokens, accumulate);
        Store(y, a.C2, r + 8, k, rows, nTokens, accumulate);
        Store(y, a.C3, r + 8, k + 1, rows, nTokens, accumulate);
    }

    private static void Store(ArrayView<float> y, float v, int r, int k, int rows, int nTokens, bool accumulate)
    {
        if (r >= rows || k >= nTokens) return;
        long i = (long)k * rows + r;
        y[i] = accumulate ? y[i] + v : v;
    }
}

/// <summary>The batch kernel of matmul_add (gemv_add): <see cref="Gemm.RunAdd{T}"/>.</summary>
public static class GemmAdd
{
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> a, ArrayView<byte> aq, ArrayView<float> y, ArrayView<float> mmPart,
        ArrayView<int> mmSync, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles => Gemm.RunAdd<T>(w, a, aq, y, mmPart, mmSync, rows, cols, nTokens);
}

/// <summary>The batch kernel of matmul_swiglu (gemv_swiglu): <see cref="Gemm.RunSwiGlu{T}"/>.</summary>
public static class GemmSwiGlu
{
    public static void Run<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles => Gemm.RunSwiGlu<T>(gate, up, x, xq, y, rows, cols, nTokens);
}

/// <summary>The batch kernel of matmul_qkv (gemv_qkv): <see cref="Gemm.RunQkv{T}"/>.</summary>
public static class GemmQkv
{
    public static void Run<T>(ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv, ArrayView<float> x, ArrayView<byte> xq,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mmPart, ArrayView<int> mmSync,
        int rows, int kvDim, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles => Gemm.RunQkv<T>(wq, wk, wv, x, xq, q, k, v, mmPart, mmSync, rows, kvDim, cols, nTokens);

    public static void Run<TQk, TV>(ArrayView<byte> wq, ArrayView<byte> wk, ArrayView<byte> wv, ArrayView<float> x, ArrayView<byte> xq,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mmPart, ArrayView<int> mmSync,
        int rows, int kvDim, int cols, int nTokens)
        where TQk : struct, IWeightFormat, IInt8Tiles
        where TV : struct, IWeightFormat, IInt8Tiles => Gemm.RunQkv<TQk, TV>(wq, wk, wv, x, xq, q, k, v, mmPart, mmSync, rows, kvDim, cols, nTokens);
}

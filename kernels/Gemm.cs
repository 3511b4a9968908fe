using Engine.Kernels.Formats;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Engine.Kernels;

/// <summary>y[t, r] = Σ_c W[r, c]·x[t, c] for many tokens at once (prefill): a tiled int8 matrix multiply on the
/// tensor cores, as llama.cpp's mmq does (ggml-cuda/mmq.cuh). A group (a warp per 32 × 32 of the tile) computes a
/// tile of weight rows × 64 tokens (<see cref="IShape"/>: <see cref="Tile128"/>); per stage it unpacks
/// the stage's 32-weight groups of each row to int8 plus a scale (and min) into shared memory
/// (<see cref="IInt8Tiles"/>) and copies the same columns of the quantized activations (<see cref="Quantize"/>:
/// int8, and a (d, Σq) pair per 32) next to them; each warp then multiplies its 32×32 part of the tile with
/// <c>mma.sync.m16n8k32.s8</c> (PTX ISA "Warp-level matrix multiply-accumulate": A = 16 weight rows × 32, row-major,
/// B = 32 × 8 tokens, column-major: exactly a token's row of xq). Each 32-group has its own scales, so every mma's
/// integer result is scaled into f32 accumulators at once: acc += scale_w·d_x·D − min_w·(d_x·Σq_x) (the K-quants'
/// w = d·sc·q − dmin·m; docs/kernels.md "Tiled GEMM"). The mma's C operand is the constant 0x4B400000, so D read as a
/// float is 1.5·2^23 + dot exactly (|dot| &lt; 2^22) and the int→float conversion is one FADD.
/// Q6_K's scales cover 16 weights: its groups take two m16n8k16 products (the same registers split in halves).
/// On ILGPU's CPU accelerator (tests) the mma is computed from the shared tiles for the elements the lane owns in
/// the fragment layout, so CI tests the tiling, unpacking and scaling; gpu-selftest tests the fragments on the GPU.
/// Rows past the end read the last row (never stored); tokens and columns past the end are zeros.</summary>
public static class Gemm
{
    /// <summary>Rows and tokens of the tiles the spec's gemm families use (<see cref="Tile128"/>; grid
    /// ceil_div(rows, 128), ceil_div(n_tokens, 64) in llama.graph).</summary>
    public const int RowsPerGroup = 128;
    public const int TokensPerGroup = 64;

    private const int Bias = 0x4B400000;
    private const float BiasValue = 12582912f;

    /// <summary>Same arguments as <see cref="Gemv.Run{T}"/> (the runtime swaps the kernel, not the arguments);
    /// <paramref name="x"/> is not read.</summary>
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        var s = default(Tile128).Allocate();
        var acc = Accumulate<T, Tile128>(w, xq, rows, cols, nTokens, s);
        Store<Tile128>(y, acc, rows, nTokens, accumulate: false);
    }

    /// <summary>y[t, r] += Σ_c W[r, c]·a[t, c]: the residual add fused (<see cref="GemmAdd"/>).</summary>
    public static void RunAdd<T>(ArrayView<byte> w, ArrayView<float> a, ArrayView<byte> aq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        var s = default(Tile128).Allocate();
        var acc = Accumulate<T, Tile128>(w, aq, rows, cols, nTokens, s);
        Store<Tile128>(y, acc, rows, nTokens, accumulate: true);
    }

    /// <summary>y = silu(gate·x)·(up·x) (<see cref="GemvSwiGlu"/>): the group computes its gate tile, keeps it in
    /// registers, computes the up tile over the same activations (their second read comes from L2) and stores the
    /// product: fused, so neither gate nor up goes through memory (<see cref="GemmSwiGlu"/>).</summary>
    public static void RunSwiGlu<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        var s = default(Tile128).Allocate();
        var g = Accumulate<T, Tile128>(gate, xq, rows, cols, nTokens, s);
        var u = Accumulate<T, Tile128>(up, xq, rows, cols, nTokens, s);
        Store<Tile128>(y, Glu(g, u), rows, nTokens, accumulate: false);
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

    /// <summary>A tile shape: weight rows and tokens of a group (64 tokens in both shapes), threads (a warp per
    /// 32 × 32), 32-weight groups per shared-memory stage. Static shared memory is at most 48 KB, so the tiles of
    /// a stage must fit: (rows + tokens)·(8·stage + 4)·4 bytes plus the scales. <see cref="Stride"/>: words per row
    /// (or token) in shared memory, 8 per group and 4 of padding, so the fragment loads of a warp (rows g = 0..7 ×
    /// words t = 0..3) hit 32 different banks: (stride·g + t) mod 32 = 4g + t for a stride of 4 mod 32.</summary>
    public interface IShape
    {
        int Rows { get; }
        int Threads { get; }
        int StageGroups { get; }
        int Stride { get; }
        Tiles Allocate();
    }

    /// <summary>64 rows × 64 tokens, 128 threads, k = 256 a stage (44 KB): twice the mma work per barrier and groups
    /// half the size of <see cref="Tile128"/>'s. Measured slower on the H100 (1079 against 941 µs for 4096 × 14336 ×
    /// 512 tokens, Q8_0; docs/benchmarks.md), so only family gemm_r64 runs it, for gpu-selftest's comparison.</summary>
    public struct Tile64 : IShape
    {
        public readonly int Rows => 64;
        public readonly int Threads => 128;
        public readonly int StageGroups => 8;
        public readonly int Stride => 68;

        public readonly Tiles Allocate() => new()
        {
            W = SharedMemory.Allocate<int>(64 * 68),
            X = SharedMemory.Allocate<int>(64 * 68),
            Scale = SharedMemory.Allocate<float>(64 * 8),
            ScaleHi = SharedMemory.Allocate<float>(64 * 8),
            Min = SharedMemory.Allocate<float>(64 * 8),
            XScale = SharedMemory.Allocate<float>(64 * 8),
            XSum = SharedMemory.Allocate<float>(64 * 8),
        };
    }

    /// <summary>128 rows × 64 tokens, 256 threads, k = 128 a stage (35 KB): the spec's gemm families.</summary>
    public struct Tile128 : IShape
    {
        public readonly int Rows => 128;
        public readonly int Threads => 256;
        public readonly int StageGroups => 4;
        public readonly int Stride => 36;

        public readonly Tiles Allocate() => new()
        {
            W = SharedMemory.Allocate<int>(128 * 36),
            X = SharedMemory.Allocate<int>(64 * 36),
            Scale = SharedMemory.Allocate<float>(128 * 4),
            ScaleHi = SharedMemory.Allocate<float>(128 * 4),
            Min = SharedMemory.Allocate<float>(128 * 4),
            XScale = SharedMemory.Allocate<float>(64 * 4),
            XSum = SharedMemory.Allocate<float>(64 * 4),
        };
    }

    /// <summary>gemm with <see cref="Tile64"/> (family gemm_r64).</summary>
    public static void Run64<T>(ArrayView<byte> w, ArrayView<byte> xq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles
    {
        var s = default(Tile64).Allocate();
        var acc = Accumulate<T, Tile64>(w, xq, rows, cols, nTokens, s);
        Store<Tile64>(y, acc, rows, nTokens, accumulate: false);
    }

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

    /// <summary>The warp's accumulated tile over all columns. All threads of the group must call it.</summary>
    public static WarpTile Accumulate<T, TShape>(ArrayView<byte> w, ArrayView<byte> xq, int rows, int cols, int nTokens, Tiles s)
        where T : struct, IWeightFormat, IInt8Tiles
        where TShape : struct, IShape
    {
        var format = default(T);
        var shape = default(TShape);
        int tileRows = shape.Rows, threads = shape.Threads, stageGroups = shape.StageGroups, stride = shape.Stride;
        int warpsAlongRows = tileRows / 32;
        int tid = Group.IdxX, lane = Warp.LaneIdx, warp = Warp.WarpIdx;
        int row0 = Grid.IdxX * tileRows, tok0 = Grid.IdxY * TokensPerGroup;
        int groups = cols / 32;
        long rowBytes = Gemv.RowBytes<T>(cols);
        long xRowBytes = Quantize.RowBytes(cols);
        int pairs = (int)Quantize.PairsOffset(cols);
        // Warps: tileRows / 32 along rows × 2 along tokens; lane = 4g + t.
        int wr = 32 * (warp % warpsAlongRows), wt = 32 * (warp / warpsAlongRows), g = lane >> 2, t = lane & 3;
        var acc = default(WarpTile);

        for (int k0 = 0; k0 < groups; k0 += stageGroups)
        {
            Group.Barrier();   // the previous stage's fragments are read
            // Weights: rows × stageGroups × 4 parts of 8; 4·stageGroups consecutive threads read one row's stage.
            for (int p = tid; p < tileRows * stageGroups * 4; p += threads)
            {
                int part = p & 3, kg = (p >> 2) % stageGroups, r = p / (4 * stageGroups);
                int group = k0 + kg;
                uint lo = 0, hi = 0;
                if (group < groups)
                {
                    long row = IntrinsicMath.Min(row0 + r, rows - 1);
                    format.Weights8(w.SubView(row * rowBytes, rowBytes), group, part, out lo, out hi);
                }
                int at = r * stride + kg * 8 + 2 * part;
                s.W[at] = (int)lo;
                s.W[at + 1] = (int)hi;
            }
            for (int p = tid; p < tileRows * stageGroups; p += threads)
            {
                int kg = p % stageGroups, r = p / stageGroups;
                int group = k0 + kg;
                float scale = 0, scaleHi = 0, min = 0;
                if (group < groups)
                {
                    long row = IntrinsicMath.Min(row0 + r, rows - 1);
                    format.Scales(w.SubView(row * rowBytes, rowBytes), group, out scale, out scaleHi, out min);
                }
                s.Scale[p] = scale;
                s.ScaleHi[p] = scaleHi;
                s.Min[p] = min;
            }
            // Activations: TokensPerGroup × stageGroups × 2 pieces of 16 bytes (a token's stage is contiguous).
            for (int p = tid; p < TokensPerGroup * stageGroups * 2; p += threads)
            {
                int piece = p % (2 * stageGroups), k = p / (2 * stageGroups);
                int tok = tok0 + k, group = k0 + (piece >> 1);
                uint a = 0, b = 0, c = 0, d = 0;
                if (tok < nTokens && group < groups)
                    Ld.U4(xq, tok * xRowBytes + 32L * k0 + 16 * piece, out a, out b, out c, out d);
                int at = k * stride + 4 * piece;
                s.X[at] = (int)a; s.X[at + 1] = (int)b; s.X[at + 2] = (int)c; s.X[at + 3] = (int)d;
            }
            for (int p = tid; p < TokensPerGroup * stageGroups; p += threads)
            {
                int kg = p % stageGroups, k = p / stageGroups;
                int tok = tok0 + k, group = k0 + kg;
                float d = 0, sum = 0;
                if (tok < nTokens && group < groups)
                {
                    Ld.ScaleSum(xq.SubView(tok * xRowBytes, xRowBytes), pairs + 8 * group, out d, out int q);
                    sum = d * q;
                }
                s.XScale[p] = d;
                s.XSum[p] = sum;
            }
            Group.Barrier();

            for (int kg = 0; kg < stageGroups; kg++)
            {
                int aw = (wr + g) * stride + kg * 8 + t, bw = (wt + g) * stride + kg * 8 + t;
                Fragment a0 = Fragment.A(s.W, aw, stride), a1 = Fragment.A(s.W, aw + 16 * stride, stride);
                Fragment b0 = Fragment.B(s.X, bw), b1 = Fragment.B(s.X, bw + 8 * stride);
                Fragment b2 = Fragment.B(s.X, bw + 16 * stride), b3 = Fragment.B(s.X, bw + 24 * stride);
                var r0 = RowScales.Of(s, wr + g, kg, stageGroups);
                var r1 = RowScales.Of(s, wr + 16 + g, kg, stageGroups);
                TokenScales c0 = TokenScales.Of(s, wt + 2 * t, kg, stageGroups), c1 = TokenScales.Of(s, wt + 8 + 2 * t, kg, stageGroups);
                TokenScales c2 = TokenScales.Of(s, wt + 16 + 2 * t, kg, stageGroups), c3 = TokenScales.Of(s, wt + 24 + 2 * t, kg, stageGroups);
                acc.M0N0 = Step(format, acc.M0N0, a0, b0, r0, c0, s, aw, bw, stride);
                acc.M0N1 = Step(format, acc.M0N1, a0, b1, r0, c1, s, aw, bw + 8 * stride, stride);
                acc.M0N2 = Step(format, acc.M0N2, a0, b2, r0, c2, s, aw, bw + 16 * stride, stride);
                acc.M0N3 = Step(format, acc.M0N3, a0, b3, r0, c3, s, aw, bw + 24 * stride, stride);
                acc.M1N0 = Step(format, acc.M1N0, a1, b0, r1, c0, s, aw + 16 * stride, bw, stride);
                acc.M1N1 = Step(format, acc.M1N1, a1, b1, r1, c1, s, aw + 16 * stride, bw + 8 * stride, stride);
                acc.M1N2 = Step(format, acc.M1N2, a1, b2, r1, c2, s, aw + 16 * stride, bw + 16 * stride, stride);
                acc.M1N3 = Step(format, acc.M1N3, a1, b3, r1, c3, s, aw + 16 * stride, bw + 24 * stride, stride);
            }
        }
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
    }

    /// <summary>Scales of the lane's two rows g, g + 8 of an m16 tile for one group.</summary>
    public struct RowScales
    {
        public float Lo0, Lo1, Hi0, Hi1, Min0, Min1;

        public static RowScales Of(Tiles s, int row, int kg, int stageGroups)
        {
            int i = row * stageGroups + kg, j = i + 8 * stageGroups;
            return new RowScales
            {
                Lo0 = s.Scale[i], Lo1 = s.Scale[j], Hi0 = s.ScaleHi[i], Hi1 = s.ScaleHi[j], Min0 = s.Min[i], Min1 = s.Min[j],
            };
        }
    }

    /// <summary>d_x and d_x·Σq_x of the lane's two tokens 2t, 2t + 1 of an n8 tile for one group.</summary>
    public struct TokenScales
    {
        public float D0, D1, S0, S1;

        public static TokenScales Of(Tiles s, int token, int kg, int stageGroups)
        {
            int i = token * stageGroups + kg;
            return new TokenScales { D0 = s.XScale[i], D1 = s.XScale[i + stageGroups], S0 = s.XSum[i], S1 = s.XSum[i + stageGroups] };
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

    /// <summary>The integer dot of a biased mma result (see the class summary): exact for |dot| &lt; 2^22.</summary>
    private static float Dot(int biased) => Interop.IntAsFloat((uint)biased) - BiasValue;

    /// <summary>D = 0x4B400000 + A·B over k = 32 for one m16n8 tile. ILGPU's <c>CudaAsm.Emit</c> has a single output,
    /// so the four D registers go through <c>EmitRef</c> (Output/Input wrappers: ILGPU writes them to local variables
    /// around the asm; ptxas removes the round trip: ptxas -v reports no stack frame).</summary>
    private static void Mma32(Fragment a, Fragment b, Tiles s, int aw, int bw, int stride, out int d0, out int d1, out int d2, out int d3)
    {
        if (CudaAsm.IsSupported)
        {
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            Output<int> o0 = default, o1 = default, o2 = default, o3 = default;
            CudaAsm.EmitRef("{ .reg .s32 z; mov.s32 z, 1262485504; mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {z,z,z,z}; }",
                ref o0, ref o1, ref o2, ref o3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d0 = o0.Value; d1 = o1.Value; d2 = o2.Value; d3 = o3.Value;
            return;
        }
        // Managed: the four elements this lane owns, from the tiles (rows aw, aw + 8·Stride; tokens bw, bw + Stride,
        // shifted from word t to the lane's token pair: token 2t, 2t + 1 of the n8 tile).
        ManagedDots(s, aw, bw, 0, 8, stride, out d0, out d1, out d2, out d3);
    }

    /// <summary>D = 0x4B400000 + A·B over k = 16 (words <paramref name="word0"/>..+3 of the group).</summary>
    private static void Mma16(uint a0, uint a1, uint b0, Tiles s, int aw, int bw, int word0, int stride, out int d0, out int d1, out int d2, out int d3)
    {
        if (CudaAsm.IsSupported)
        {
            Input<uint> ia0 = a0, ia1 = a1, ib0 = b0;
            Output<int> o0 = default, o1 = default, o2 = default, o3 = default;
            CudaAsm.EmitRef("{ .reg .s32 z; mov.s32 z, 1262485504; mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {z,z,z,z}; }",
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
        d0 = Bias; d1 = Bias; d2 = Bias; d3 = Bias;
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
    private static void Store<TShape>(ArrayView<float> y, WarpTile acc, int rows, int nTokens, bool accumulate)
        where TShape : struct, IShape
    {
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, warpsAlongRows = default(TShape).Rows / 32;
        int r = Grid.IdxX * default(TShape).Rows + 32 * (warp % warpsAlongRows) + (lane >> 2);
        int k = Grid.IdxY * TokensPerGroup + 32 * (warp / warpsAlongRows) + 2 * (lane & 3);
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
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> a, ArrayView<byte> aq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles => Gemm.RunAdd<T>(w, a, aq, y, rows, cols, nTokens);
}

/// <summary>The batch kernel of matmul_swiglu (gemv_swiglu): <see cref="Gemm.RunSwiGlu{T}"/>.</summary>
public static class GemmSwiGlu
{
    public static void Run<T>(ArrayView<byte> gate, ArrayView<byte> up, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y,
        int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles => Gemm.RunSwiGlu<T>(gate, up, x, xq, y, rows, cols, nTokens);
}

/// <summary>gemm with the 64-row tile (<see cref="Gemm.Tile64"/>), for comparison in gpu-selftest; no op uses it.</summary>
public static class GemmR64
{
    public static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> y, int rows, int cols, int nTokens)
        where T : struct, IWeightFormat, IInt8Tiles => Gemm.Run64<T>(w, xq, y, rows, cols, nTokens);
}

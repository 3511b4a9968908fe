using Engine.Kernels.Tests.Reference;
using ILGPU;
using ILGPU.Runtime;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>The tiled int8 GEMM (kernels/Gemm.cs: gemm, gemm_add, gemm_swiglu) for every quantized format against the
/// float64 reference on the same quantized activations, on ILGPU's CPU accelerator (the managed mma path: tiling,
/// unpacking, scales, min terms and guards; the fragment layout is checked on the GPU by gpu-selftest). Rows and
/// tokens are not multiples of the 128 × 64 tile, and some column counts are not multiples of the 128-column stage.</summary>
public class GemmKernelTests
{
    public static readonly string[] Quantized = ["Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"];

    /// <summary>(format, rows, cols, tokens).</summary>
    public static TheoryData<string, int, int, int> GemmCases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var f in Quantized)
        {
            foreach (var (rows, cols, tokens) in new[] { (80, 256, 1), (80, 256, 70), (200, 512, 17), (200, 256, 40) })
                data.Add(f, rows, cols, tokens);
            if (ReferenceFormats.BlockElements(f) == 32)
                data.Add(f, 33, 32 * 5, 3);   // a stage with one 32-group of the row left: columns past the end
        }
        return data;
    }

    public static TheoryData<string> Formats() => new(Quantized);

    [Theory]
    [MemberData(nameof(GemmCases))]
    public void Gemm_matches_reference(string format, int rows, int cols, int tokens)
    {
        var shape = MatchesReference("Gemm_", "gemm", format, rows, cols, tokens, new Random(rows * 7919 + cols * 31 + tokens + format.Length));
        Assert.Equal((uint)((rows + Gemm.RowsPerGroup - 1) / Gemm.RowsPerGroup), shape.GridX);
        Assert.Equal((uint)((tokens + Gemm.TokensPerGroup - 1) / Gemm.TokensPerGroup), shape.GridY);
    }

    /// <summary>Groups take their tiles in bands of <see cref="Gemm.TokenBand"/> token tiles (Gemm.TileOf): 3 row tiles ×
    /// 10 token tiles is one full band and a band of 2, so every tile is computed once, past the band's end too.</summary>
    [Theory]
    [InlineData("Q8_0")]
    [InlineData("Q4_K")]
    public void Gemm_covers_every_tile_across_token_bands(string format)
    {
        int tokens = Gemm.TokensPerGroup * (Gemm.TokenBand + 1) + 3;
        var shape = MatchesReference("Gemm_", "gemm bands", format, 260, 256, tokens, new Random(17));
        Assert.Equal((uint)(Gemm.TokenBand + 2), shape.GridY);
    }

    /// <summary>Runs a plain GEMM entry (<paramref name="entry"/> + format) on random weights and activations and checks
    /// y against the float64 reference; returns the launch shape.</summary>
    private static Engine.Runtime.Generated.LaunchShape MatchesReference(string entry, string name, string format, int rows, int cols, int tokens, Random rng)
    {
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var yb = h.Allocate<float>((long)rows * tokens);
        var shape = h.Launch(entry + format, wb.View, xb.View, qb.View, yb.View, rows, cols, tokens);
        Nmse.Check($"{name} {format} {rows}x{cols}x{tokens}", yb.GetAsArray1D(), Products(format, w, x, rows, cols, tokens), WeightKernelTests.GemvLimit);
        return shape;
    }

    /// <summary>gemm_add adds to y in place; elements outside the rows × tokens result stay as they were.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void GemmAdd_adds_the_products_to_y(string format)
    {
        int rows = 130, cols = 256, tokens = 20;
        var rng = new Random(cols * 19 + format.Length);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens), y0 = ReferenceFormats.Gaussian(rng, rows * tokens + 5);
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var yb = h.Upload(y0);
        using var part = h.Allocate<float>(1);
        using var sync = h.Allocate<int>(1);
        h.Launch("GemmAdd_" + format, wb.View, xb.View, qb.View, yb.View, part.View, sync.View, rows, cols, tokens);
        double[] p = Products(format, w, x, rows, cols, tokens);
        var expected = y0.Select((v, i) => i < p.Length ? v + p[i] : v).ToArray();
        Nmse.Check($"gemm_add {format} {rows}x{cols}x{tokens}", yb.GetAsArray1D(), expected, WeightKernelTests.GemvLimit);
        Assert.Equal(y0[^5..], yb.GetAsArray1D()[^5..]);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void GemmSwiGlu_matches_reference(string format)
    {
        int rows = 80, cols = 256, tokens = 17;
        var rng = new Random(rows * 104729 + cols * 17 + format.Length);
        var h = KernelHarness.Shared;
        byte[] gate = ReferenceFormats.Random(format, rows, cols, rng), up = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var gb = h.Upload(gate);
        using var ub = h.Upload(up);
        using var xb = h.Upload(x);
        using var qb = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var yb = h.Allocate<float>((long)rows * tokens);
        h.Launch("GemmSwiGlu_" + format, gb.View, ub.View, xb.View, qb.View, yb.View, rows, cols, tokens);
        double[] g = Products(format, gate, x, rows, cols, tokens), u = Products(format, up, x, rows, cols, tokens);
        var expected = g.Select((a, i) => a / (1 + Math.Exp(-a)) * u[i]).ToArray();
        Nmse.Check($"gemm_swiglu {format} {rows}x{cols}x{tokens}", yb.GetAsArray1D(), expected, WeightKernelTests.GemvLimit);
    }

    /// <summary>The unpacked int8 weights times the scales (minus the mins) are the ggml dequantization: every group
    /// of a random row through the format's <see cref="Formats.IInt8Tiles"/> members, on the host.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void Int8_tiles_dequantize_as_ggml(string format)
    {
        int cols = 512;
        byte[] w = ReferenceFormats.Random(format, 1, cols, new Random(format.Length * 3));
        double[] expected = ReferenceFormats.DequantizeRow(format, w, 0, cols);
        var type = typeof(Formats.IInt8Tiles).Assembly.GetType("Engine.Kernels.Formats." + format)!;
        var tiles = (Formats.IInt8Tiles)Activator.CreateInstance(type)!;
        using var buffer = KernelHarness.Shared.Upload(w);
        var row = buffer.View.BaseView;
        for (int group = 0; group < cols / 32; group++)
        {
            tiles.Scales(row, group, out float scale, out float scaleHi, out float min);
            for (int part = 0; part < 4; part++)
            {
                tiles.Weights8(row, group, part, out uint lo, out uint hi);
                for (int i = 0; i < 8; i++)
                {
                    int q = (sbyte)(((i < 4 ? lo : hi) >> (8 * (i & 3))) & 0xFF);
                    int index = 32 * group + 8 * part + i;
                    double value = (8 * part + i < 16 ? scale : scaleHi) * (double)q - min;
                    Assert.True(Math.Abs(value - expected[index]) <= 1e-6 * Math.Max(1, Math.Abs(expected[index])),
                        $"{format} weight {index}: {value} from the tiles, {expected[index]} from ggml");
                }
            }
        }
    }

    /// <summary>y[t, r] = Σ w·x in float64 over the dequantized weights and the dequantized 8-bit activations.</summary>
    internal static double[] Products(string format, byte[] w, float[] x, int rows, int cols, int tokens)
    {
        double[] xs = WeightKernelTests.Activations(format, x, cols);
        var y = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] wr = ReferenceFormats.DequantizeRow(format, w, r, cols);
            for (int t = 0; t < tokens; t++) y[t * rows + r] = WeightKernelTests.Dot(wr, xs, t * cols);
        }
        return y;
    }

    /// <summary>ldmatrix.x4 (the GEMMs' fragment loads on the GPU where IInt8Tiles.MatrixLoads says so,
    /// Gemm.Fragment.Matrices) hands lane ℓ,
    /// for matrix i, the word at byte 4·(ℓ % 4) of the row whose address lane 8i + ℓ / 4 supplies (PTX ISA "Warp-level
    /// matrix load instruction: ldmatrix"). Emulated on tiles that hold their own word indices: for every warp
    /// position, group of the stage and m16 tile (or pair of n8 tiles), each lane's four registers are the words that
    /// Fragment.A and Fragment.B, the 32-bit shared loads the CPU accelerator runs (and the GPU for the fragments a
    /// format does not read by ldmatrix), give it. (The mma
    /// on the fragments is gpu-selftest's: CI has no GPU.)</summary>
    [Fact]
    public void Ldmatrix_rows_give_each_lane_the_words_of_the_fragment_loads()
    {
        using var wBuffer = KernelHarness.Shared.Upload(Enumerable.Range(0, Gemm.TileWBytes / 4).ToArray());
        using var xBuffer = KernelHarness.Shared.Upload(Enumerable.Range(0, Gemm.TileXBytes / 4).ToArray());
        ArrayView<int> w = wBuffer.View.BaseView, x = xBuffer.View.BaseView;
        // Register i of lane ℓ: the word index in the tile, from the rows the lanes supply at byte offset `at`.
        static int Word(Func<int, int> rowOf, int at, int lane, int i) => (rowOf(8 * i + lane / 4) + at) / 4 + lane % 4;
        for (int kg = 0; kg < Gemm.StageGroups; kg++)
            for (int lane = 0; lane < 32; lane++)
            {
                int g = lane >> 2, t = lane & 3;
                foreach (int wr in new[] { 0, 32, 64, 96 })
                    for (int m = 0; m < 2; m++)
                    {
                        var a = Gemm.Fragment.A(w.SubView((wr + g) * Gemm.Stride + t), kg * 8 + 16 * m * Gemm.Stride, Gemm.Stride);
                        int at = 32 * kg + m * Gemm.MatrixTile16;
                        Func<int, int> row = l => Gemm.MatrixRowOffsetA(wr, l);
                        Assert.Equal(new[] { (int)a.R0, (int)a.R1, (int)a.R2, (int)a.R3 },
                            new[] { Word(row, at, lane, 0), Word(row, at, lane, 1), Word(row, at, lane, 2), Word(row, at, lane, 3) });
                    }
                foreach (int wt in new[] { 0, 32 })
                    for (int pair = 0; pair < 2; pair++)
                    {
                        var bv = x.SubView((wt + g) * Gemm.Stride + t);
                        var lo = Gemm.Fragment.B(bv, kg * 8 + 16 * pair * Gemm.Stride);
                        var hi = Gemm.Fragment.B(bv, kg * 8 + (16 * pair + 8) * Gemm.Stride);
                        int at = 32 * kg + pair * Gemm.MatrixTile16;
                        Func<int, int> row = l => Gemm.MatrixRowOffsetB(wt, l);
                        Assert.Equal(new[] { (int)lo.R0, (int)lo.R1, (int)hi.R0, (int)hi.R1 },
                            new[] { Word(row, at, lane, 0), Word(row, at, lane, 1), Word(row, at, lane, 2), Word(row, at, lane, 3) });
                    }
            }
    }

    /// <summary>Split-k (grid z: the runtime splits the columns of a step with few tiles, Engine.Runtime.Cuda.SplitK):
    /// gemm_add with its 768 columns (6 stages) in 2, 3 and 8 splits (at 8 the last two have no columns) matches the
    /// float64 reference; every stored element is y0 plus the sum, in split order, of the partial tiles the splits left
    /// in mm_part (so the same floats whichever split of a tile comes last); and every ticket is back at zero.</summary>
    [Theory]
    [InlineData("Q8_0", 2)]
    [InlineData("Q4_K", 3)]
    [InlineData("Q6_K", 8)]
    [InlineData("Q4_0", 8)]
    public void GemmAdd_split_k_sums_the_partial_tiles_in_split_order(string format, int splits)
    {
        int rows = 130, cols = 768, tokens = 70;   // 2 × 2 tiles, the second of each partial
        var rng = new Random(splits * 101 + format.Length);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens), y0 = ReferenceFormats.Gaussian(rng, rows * tokens);
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var yb = h.Upload(y0);
        using var part = h.Allocate<float>(4L * splits * Gemm.PartFloats);
        using var sync = h.Allocate<int>(4);
        var shape = h.LaunchWithGridZ("GemmAdd_" + format, splits, wb.View, xb.View, qb.View, yb.View, part.View, sync.View, rows, cols, tokens);
        float[] y = yb.GetAsArray1D(), p = part.GetAsArray1D();
        double[] products = Products(format, w, x, rows, cols, tokens);
        Nmse.Check($"gemm_add {format} split {splits}", y, y0.Select((v, i) => v + products[i]).ToArray(), WeightKernelTests.GemvLimit);
        Assert.All(sync.GetAsArray1D(), t => Assert.Equal(0, t));

        int checkedElements = 0;
        for (int id = 0; id < shape.GridX * shape.GridY; id++)
        {
            var tile = Gemm.TileOf(id, (int)shape.GridX, (int)shape.GridY);
            for (int tid = 0; tid < 256; tid++)
                for (int v = 0; v < 32; v++)
                {
                    // Accumulator v of thread tid (Gemm.WriteTile's order: M0N0 … M1N3, C0 … C3 each) is this element.
                    int warp = tid >> 5, lane = tid & 31, m = v >> 4, n = (v >> 2) & 3, c = v & 3;
                    int r = tile.Row * Gemm.RowsPerGroup + 32 * (warp & 3) + (lane >> 2) + 16 * m + 8 * (c >> 1);
                    int k = tile.Token * Gemm.TokensPerGroup + 32 * (warp >> 2) + 2 * (lane & 3) + 8 * n + (c & 1);
                    if (r >= rows || k >= tokens) continue;
                    float sum = 0f;
                    for (int z = 0; z < splits; z++) sum += p[((long)id * splits + z) * Gemm.PartFloats + 256 * v + tid];
                    float want = y0[k * rows + r] + sum;
                    Assert.True(BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(y[k * rows + r]),
                        $"y[{k}, {r}] = {y[k * rows + r]}, y0 + the partials in split order = {want}");
                    checkedElements++;
                }
        }
        Assert.Equal(rows * tokens, checkedElements);
    }

    /// <summary>gemm_qkv split (3 ways over 512 columns: 4 stages, the last split empty) gives q, k and v within the
    /// reference limit of the unsplit launch's, the same floats twice, and leaves its tickets at zero.</summary>
    [Theory]
    [InlineData("Q8_0")]
    [InlineData("Q5_K")]
    public void GemmQkv_split_k_matches_the_unsplit_launch(string format)
    {
        int rows = 130, kvDim = 40, cols = 512, tokens = 17;
        var rng = new Random(31 + format.Length);
        var h = KernelHarness.Shared;
        using var qw = h.Upload(ReferenceFormats.Random(format, rows, cols, rng));
        using var kw = h.Upload(ReferenceFormats.Random(format, kvDim, cols, rng));
        using var vw = h.Upload(ReferenceFormats.Random(format, kvDim, cols, rng));
        using var xb = h.Upload(ReferenceFormats.Gaussian(rng, cols * tokens));
        using var xq = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var part = h.Allocate<float>(4L * 3 * Gemm.PartFloats);
        using var sync = h.Allocate<int>(4);
        float[] Run(int splits)
        {
            using var q = h.Allocate<float>((long)rows * tokens);
            using var k = h.Allocate<float>((long)kvDim * tokens);
            using var v = h.Allocate<float>((long)kvDim * tokens);
            h.LaunchWithGridZ("GemmQkv_" + format, splits, qw.View, kw.View, vw.View, xb.View, xq.View, q.View, k.View, v.View, part.View, sync.View,
                rows, kvDim, cols, tokens);
            return [.. q.GetAsArray1D(), .. k.GetAsArray1D(), .. v.GetAsArray1D()];
        }
        float[] whole = Run(1), split = Run(3), again = Run(3);
        Nmse.Check($"gemm_qkv {format} split 3", split, whole.Select(v => (double)v).ToArray(), WeightKernelTests.GemvLimit);
        Assert.Equal(split, again);
        Assert.All(sync.GetAsArray1D(), t => Assert.Equal(0, t));
    }
}

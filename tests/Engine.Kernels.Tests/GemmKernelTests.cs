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
        h.Launch("GemmAdd_" + format, wb.View, xb.View, qb.View, yb.View, rows, cols, tokens);
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
}

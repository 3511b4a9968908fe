using Engine.Kernels.Tests.Reference;
using ILGPU;
using ILGPU.Runtime;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>Conformance of the format-specialised families (embedding, gemv, gemv_swiglu) for every format, written
/// once and instantiated per format, against the float64 reference (test-backend-ops style). Shapes are not
/// multiples of the rows per group (4), the tokens per group (4), or the warp (32 units a row).</summary>
public class WeightKernelTests
{
    // NMSE limits. Kernels and reference dequantise to the same values (for the quantized formats, also the same
    // 8-bit activations, QuantizedActivations), so only f32 accumulation differs. test-backend-ops allows 5e-4 for
    // mul_mat against unquantized activations; QuantizationLimit bounds that error of the int8 path.
    internal const double GemvLimit = 1e-7;
    private const double EmbeddingLimit = 1e-12;
    private const double QuantizationLimit = 5e-4;

    /// <summary>(format, rows, cols, tokens): cols are 1, 3 (odd unit counts) and 5 blocks for the block
    /// formats, 37 and 200 for the float formats.</summary>
    public static TheoryData<string, int, int, int> GemvCases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var f in ReferenceFormats.All)
        {
            int be = ReferenceFormats.BlockElements(f);
            int[] cols = be == 1 ? [37, 200] : be == 32 ? [32 * 3, 32 * 37] : [256, 256 * 3];
            foreach (var c in cols)
                foreach (var (rows, tokens) in new[] { (5, 1), (33, 6) })
                    data.Add(f, rows, c, tokens);
        }
        return data;
    }

    public static TheoryData<string> Formats() => new(ReferenceFormats.All);

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void Gemv_matches_reference(string format, int rows, int cols, int tokens)
    {
        var rng = new Random(rows * 7919 + cols * 31 + tokens);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = Quantized(h, xb, cols, tokens);
        using var yb = h.Allocate<float>((long)rows * tokens);
        h.Launch("Gemv_" + format, wb.View, xb.View, qb.View, yb.View, rows, cols, tokens);

        double[] xs = Activations(format, x, cols);
        var expected = new double[rows * tokens];
        var unquantized = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] wr = ReferenceFormats.DequantizeRow(format, w, r, cols);
            for (int t = 0; t < tokens; t++)
            {
                expected[t * rows + r] = Dot(wr, xs, t * cols);
                unquantized[t * rows + r] = Dot(wr, x, t * cols);
            }
        }
        var y = yb.GetAsArray1D();
        Nmse.Check($"gemv {format} {rows}x{cols}x{tokens}", y, expected, GemvLimit);
        Nmse.Check($"gemv {format} {rows}x{cols}x{tokens} vs f32 activations", y, unquantized, QuantizationLimit);
    }

    /// <summary>Blocks of 256 threads: 8 warps split the columns of a group's 4 rows and sum in shared memory (the
    /// simulated CPU device caps groups at 256).</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void Gemv_matches_reference_with_larger_groups(string format)
    {
        int be = ReferenceFormats.BlockElements(format);
        int rows = 7, cols = be == 1 ? 200 : be * 9, tokens = 2;
        var rng = new Random(cols * 13 + format.Length);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        double[] xs = Activations(format, x, cols);
        var expected = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] wr = ReferenceFormats.DequantizeRow(format, w, r, cols);
            for (int t = 0; t < tokens; t++) expected[t * rows + r] = Dot(wr, xs, t * cols);
        }
        foreach (int block in new[] { 256 })
        {
            using var wb = h.Upload(w);
            using var xb = h.Upload(x);
            using var qb = Quantized(h, xb, cols, tokens);
            using var yb = h.Allocate<float>((long)rows * tokens);
            h.LaunchWithBlock("Gemv_" + format, block, wb.View, xb.View, qb.View, yb.View, rows, cols, tokens);
            Nmse.Check($"gemv {format} {rows}x{cols}x{tokens} block {block}", yb.GetAsArray1D(), expected, GemvLimit);
        }
    }

    /// <summary>gemv_add of the int8 formats at one lane unit a thread (cols = 32 × the group size), where a group of a
    /// format with QLaneEarly loads its weights before the PDL wait and keeps them for every token of its tile
    /// (Gemv.OneUnitALane), at groups of one and two warps; five tokens, so a group's tile has four and the next one.</summary>
    public static TheoryData<string, int> OneUnitCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var f in ReferenceFormats.Quantized)
            foreach (int block in new[] { 32, 64 })
                data.Add(f, block);
        return data;
    }

    [Theory]
    [MemberData(nameof(OneUnitCases))]
    public void GemvAdd_with_one_unit_a_lane_matches_reference(string format, int block) =>
        GemvAdd_matches_reference_at(format, block, 32 * block, 5);

    /// <summary>gemv_add with 3.5 lane units a thread (an 8B's 14336-column down projection at 128 threads): in a
    /// one-token tile a group of a QLaneEarly format loads its first unit before the PDL wait and the lane loop takes the
    /// rest (Gemv.FirstUnitEarly); one token, and five (a tile of four and one of one).</summary>
    [Theory]
    [MemberData(nameof(OneUnitCases))]
    public void GemvAdd_with_the_first_unit_early_matches_reference(string format, int block)
    {
        GemvAdd_matches_reference_at(format, block, 32 * block * 7 / 2, 1);
        GemvAdd_matches_reference_at(format, block, 32 * block * 7 / 2, 5);
    }

    /// <summary>gemv_add of one token over an 8B's 14336 columns at the launcher's 128 threads: 3.5 rounds of lane units,
    /// whose half round Q4_0 and the K-quants split by rows, first in half the groups and last in the others
    /// (Gemv.HalvedLanes; 9 rows are groups 0–2, both kinds); Q8_0 loads its first unit early (Gemv.FirstUnitEarly).</summary>
    [Theory]
    [MemberData(nameof(QuantizedFormats))]
    public void GemvAdd_with_a_half_last_round_matches_reference(string format) =>
        GemvAdd_matches_reference_at(format, 0, 14336, 1);

    public static TheoryData<string> QuantizedFormats() => new(ReferenceFormats.Quantized);

    /// <summary>gemv_add of 9 rows at groups of <paramref name="block"/> threads (0: the launcher's) against the float64
    /// reference: y0 plus the products; <paramref name="rng"/> defaults to one seeded by the shape.</summary>
    private static void GemvAdd_matches_reference_at(string format, int block, int cols, int tokens, Random? rng = null)
    {
        int rows = 9;
        rng ??= new Random(block * 31 + cols + tokens + format.Length);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens), y0 = ReferenceFormats.Gaussian(rng, rows * tokens);
        double[] xs = Activations(format, x, cols);
        var expected = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] wr = ReferenceFormats.DequantizeRow(format, w, r, cols);
            for (int t = 0; t < tokens; t++) expected[t * rows + r] = y0[t * rows + r] + Dot(wr, xs, t * cols);
        }
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = Quantized(h, xb, cols, tokens);
        using var yb = h.Upload(y0);
        using var part = h.Allocate<float>(1);
        using var sync = h.Allocate<int>(1);
        h.LaunchWithBlock("GemvAdd_" + format, block, wb.View, xb.View, qb.View, yb.View, part.View, sync.View, rows, cols, tokens);
        Nmse.Check($"gemv_add {format} {rows}x{cols}x{tokens} block {block}", yb.GetAsArray1D(), expected, GemvLimit);
    }

    /// <summary>gemv_add: the products added to y in place (the residual stream), rows past a group's end untouched.</summary>
    [Theory]
    [MemberData(nameof(Formats))]
    public void GemvAdd_adds_the_products_to_y(string format)
    {
        int be = ReferenceFormats.BlockElements(format);
        int cols = be == 1 ? 200 : be * 3;
        GemvAdd_matches_reference_at(format, 0, cols, 5, new Random(cols * 19 + format.Length));
    }

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void GemvSwiGlu_matches_reference(string format, int rows, int cols, int tokens) =>
        GemvSwiGlu_matches_reference_at(format, 0, rows, cols, tokens);

    /// <summary>gemv_swiglu with one lane unit a thread: a one-token tile of Q4_0, Q4_K and Q5_K (QLaneTogether; the
    /// K-quants' headers gathered by shuffles) loads gate's and up's words together, the other formats take the lane
    /// loop; one token, and five (a tile of four and one of one).</summary>
    [Theory]
    [MemberData(nameof(OneUnitCases))]
    public void GemvSwiGlu_with_one_unit_a_lane_matches_reference(string format, int block)
    {
        GemvSwiGlu_matches_reference_at(format, block, 9, 32 * block, 1);
        GemvSwiGlu_matches_reference_at(format, block, 9, 32 * block, 5);
    }

    /// <summary>gemv_swiglu at groups of <paramref name="block"/> threads (0: the launcher's) against the float64
    /// reference.</summary>
    private static void GemvSwiGlu_matches_reference_at(string format, int block, int rows, int cols, int tokens)
    {
        var rng = new Random(rows * 104729 + cols * 17 + tokens + block);
        var h = KernelHarness.Shared;
        byte[] gate = ReferenceFormats.Random(format, rows, cols, rng);
        byte[] up = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var gb = h.Upload(gate);
        using var ub = h.Upload(up);
        using var xb = h.Upload(x);
        using var qb = Quantized(h, xb, cols, tokens);
        using var yb = h.Allocate<float>((long)rows * tokens);
        h.LaunchWithBlock("GemvSwiGlu_" + format, block, gb.View, ub.View, xb.View, qb.View, yb.View, rows, cols, tokens);

        double[] xs = Activations(format, x, cols);
        var expected = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] g = ReferenceFormats.DequantizeRow(format, gate, r, cols), u = ReferenceFormats.DequantizeRow(format, up, r, cols);
            for (int t = 0; t < tokens; t++)
            {
                double a = Dot(g, xs, t * cols), b = Dot(u, xs, t * cols);
                expected[t * rows + r] = a / (1 + Math.Exp(-a)) * b;
            }
        }
        Nmse.Check($"gemv_swiglu {format} {rows}x{cols}x{tokens} block {block}", yb.GetAsArray1D(), expected, GemvLimit);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Embedding_matches_reference(string format)
    {
        var rng = new Random(format.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        var h = KernelHarness.Shared;
        int be = ReferenceFormats.BlockElements(format);
        int cols = be == 1 ? 37 : be * 3, vocab = 11;
        int[] tokens = [3, 0, 10, 3, 7];
        byte[] table = ReferenceFormats.Random(format, vocab, cols, rng);
        using var tb = h.Upload(table);
        using var kb = h.Upload(tokens);
        using var yb = h.Allocate<float>((long)cols * tokens.Length);
        h.Launch("Embedding_" + format, tb.View, kb.View, yb.View, cols, tokens.Length);

        var expected = tokens.SelectMany(t => ReferenceFormats.DequantizeRow(format, table, t, cols)).ToArray();
        Nmse.Check($"embedding {format}", yb.GetAsArray1D(), expected, EmbeddingLimit);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Format_struct_matches_the_ggml_block_geometry(string format)
    {
        var type = typeof(Engine.Kernels.Formats.IWeightFormat).Assembly.GetType("Engine.Kernels.Formats." + format)!;
        var instance = (Engine.Kernels.Formats.IWeightFormat)Activator.CreateInstance(type)!;
        Assert.Equal(ReferenceFormats.BlockElements(format), instance.BlockElements);
        Assert.Equal(ReferenceFormats.BlockBytes(format), instance.BlockBytes);
        Assert.Equal(0, instance.BlockElements % instance.UnitsPerBlock);
    }

    /// <summary>The int8 GEMV's pair decode (two bytes a word at a time) gives get_scale_min_k4's integers for both
    /// sub-blocks of every pair, over random scale words and words with every top-bit pattern.</summary>
    [Fact]
    public void ScaleMinPair_equals_get_scale_min_k4()
    {
        var random = new Random(25);
        for (int n = 0; n < 4096; n++)
        {
            uint s0 = (uint)random.Next() ^ ((uint)random.Next() << 16), s1 = (uint)random.Next() ^ ((uint)random.Next() << 16);
            uint s2 = (uint)random.Next() ^ ((uint)random.Next() << 16);
            if (n < 16) { s0 = n % 2 == 0 ? 0xFFFFFFFF : 0xC0C0C0C0; s1 = (uint)n * 0x11111111; s2 = ~s1; }
            for (int j = 0; j < 4; j++)
            {
                Engine.Kernels.Formats.KQuants.ScaleMinPair(s0, s1, s2, j, out int sc0, out int m0, out int sc1, out int m1);
                Engine.Kernels.Formats.KQuants.ScaleMin(s0, s1, s2, 2 * j, out int esc0, out int em0);
                Engine.Kernels.Formats.KQuants.ScaleMin(s0, s1, s2, 2 * j + 1, out int esc1, out int em1);
                Assert.Equal((esc0, em0, esc1, em1), (sc0, m0, sc1, m1));
            }
        }
    }

    /// <summary>The activations the kernel multiplies: x itself for the float formats, d·q of the 8-bit
    /// quantization (<see cref="QuantizedActivations"/>) for the int8 ones.</summary>
    internal static double[] Activations(string format, float[] x, int cols) =>
        ReferenceFormats.BlockElements(format) == 1 ? [.. x.Select(v => (double)v)] : QuantizedActivations.Dequantize(x, cols);

    /// <summary>x quantized on the device by the quantize kernel, as the planned program does before each matmul.</summary>
    internal static MemoryBuffer1D<byte, Stride1D.Dense> Quantized(KernelHarness h, MemoryBuffer1D<float, Stride1D.Dense> x, int cols, int tokens)
    {
        var q = h.Allocate<byte>(Engine.Kernels.Quantize.RowBytes(cols) * tokens);
        h.Launch("Quantize", x.View, q.View, cols, tokens);
        return q;
    }

    internal static double Dot(double[] w, double[] x, int offset)
    {
        double s = 0;
        for (int i = 0; i < w.Length; i++) s += w[i] * x[offset + i];
        return s;
    }

    private static double Dot(double[] w, float[] x, int offset)
    {
        double s = 0;
        for (int i = 0; i < w.Length; i++) s += w[i] * x[offset + i];
        return s;
    }
}

/// <summary>The int8 GEMV on real quantized tensors of the shared models (llama.cpp's quantizer, zero-padded rows
/// and columns in the pad256 files), where random blocks may miss patterns.</summary>
public class RealTensorGemvTests
{
    [Theory]
    [InlineData("stories260K-pad256-Q6_K.gguf")]
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]   // Q4_K and Q6_K tensors
    [InlineData("stories260K-pad256-Q5_K_M.gguf")]
    public void Gemv_matches_reference_on_model_tensors(string file)
    {
        using var gguf = Engine.Plans.Gguf.GgufFile.Open(Engine.Tests.RepoPaths.Model(file));
        var h = KernelHarness.Shared;
        var rng = new Random(file.Length);
        // Two matrices of a layer (the simulated CPU device is slow): one of each shape class, zero-padded in these files.
        foreach (var t in gguf.Tensors.Where(t => t.Name is "blk.1.attn_v.weight" or "blk.1.ffn_down.weight"))
        {
            string format = t.Type.ToString();
            int cols = (int)t.Dims[0], rows = (int)t.Dims[1], tokens = 2;
            byte[] w = gguf.TensorData(t).ToArray();
            float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
            using var wb = h.Upload(w);
            using var xb = h.Upload(x);
            using var qb = WeightKernelTests.Quantized(h, xb, cols, tokens);
            using var yb = h.Allocate<float>((long)rows * tokens);
            h.Launch("Gemv_" + format, wb.View, xb.View, qb.View, yb.View, rows, cols, tokens);
            double[] xs = WeightKernelTests.Activations(format, x, cols);
            var expected = new double[rows * tokens];
            for (int r = 0; r < rows; r++)
            {
                double[] wr = ReferenceFormats.DequantizeRow(format, w, r, cols);
                for (int k = 0; k < tokens; k++) expected[k * rows + r] = WeightKernelTests.Dot(wr, xs, k * cols);
            }
            Nmse.Check($"{file} {t.Name} {format} {rows}x{cols}", yb.GetAsArray1D(), expected, WeightKernelTests.GemvLimit);
        }
    }
}

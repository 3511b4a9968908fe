using Engine.Plans.Gguf;
using Engine.Runtime.Cpu;
using Xunit;

namespace Engine.Runtime.Tests.Cpu;

/// <summary>Dequantization and matmul of every weight format against the float64 reference, over shapes that are
/// not multiples of 8, of the 16-row thread grain, of the thread count, or of the 16-token tile.</summary>
public sealed unsafe class MatMulTests
{
    public static TheoryData<GgmlType, int> FormatsAndColumns => new()
    {
        { GgmlType.F32, 7 }, { GgmlType.F32, 100 }, { GgmlType.F16, 33 }, { GgmlType.F16, 96 }, { GgmlType.BF16, 45 },
        { GgmlType.BF16, 64 }, { GgmlType.Q8_0, 32 }, { GgmlType.Q8_0, 160 }, { GgmlType.Q4_0, 32 }, { GgmlType.Q4_0, 224 },
        { GgmlType.Q4_K, 256 }, { GgmlType.Q4_K, 768 }, { GgmlType.Q5_K, 256 }, { GgmlType.Q5_K, 1280 },
        { GgmlType.Q6_K, 256 }, { GgmlType.Q6_K, 768 },
    };

    [Theory]
    [MemberData(nameof(FormatsAndColumns))]
    public void Dequantized_rows_equal_the_reference(GgmlType type, int cols)
    {
        const int rows = 5;
        byte[] data = Reference.RandomWeights(type, rows, cols, seed: cols);
        double[] expected = Reference.Dequantize(type, data, rows, cols);
        var row = new float[cols];
        fixed (byte* p = data)
        fixed (float* r = row)
        {
            var w = new WeightMatrix(p, type, rows, cols);
            for (int i = 0; i < rows; i++)
            {
                w.DequantizeRow(i, r);
                for (int c = 0; c < cols; c++)
                    Assert.True(Math.Abs(row[c] - expected[i * cols + c]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i * cols + c])),
                        $"{type} row {i} col {c}: {row[c]} vs {expected[i * cols + c]}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(FormatsAndColumns))]
    public void MatMul_matches_the_float64_reference(GgmlType type, int cols)
    {
        foreach (int rows in new[] { 1, 37, 67 })
            foreach (int tokens in new[] { 1, 3, 17 })
                foreach (int threads in new[] { 1, 3 })
                    Check(type, rows, cols, tokens, threads);
    }

    private static void Check(GgmlType type, int rows, int cols, int tokens, int threads)
    {
        byte[] data = Reference.RandomWeights(type, rows, cols, seed: rows * 31 + cols);
        double[] w = Reference.Dequantize(type, data, rows, cols);
        float[] x = Reference.RandomFloats(tokens * cols, seed: tokens);
        // Q8_0/Q4_0 and the K-quants multiply 8-bit activations: the reference uses the same ones.
        double[] xs = QuantizedDot.UsesInt8Activations(type) ? Reference.Q8Activations(x, cols) : [.. x.Select(v => (double)v)];
        var expected = new double[tokens * rows];
        for (int b = 0; b < tokens; b++)
            for (int r = 0; r < rows; r++)
            {
                double s = 0;
                for (int c = 0; c < cols; c++) s += w[(long)r * cols + c] * xs[b * cols + c];
                expected[b * rows + r] = s;
            }
        var y = new float[tokens * rows];
        using var pool = new WorkerPool(threads, minParallelWork: 0);
        using var mm = new MatMul(threads, cols);
        fixed (byte* p = data)
        fixed (float* px = x, py = y)
            mm.Run(pool, new WeightMatrix(p, type, rows, cols), px, tokens, py);
        double nmse = Reference.Nmse(y, expected);
        Assert.True(nmse < 1e-10, $"{type} {rows}x{cols}, {tokens} tokens, {threads} threads: NMSE {nmse:E2}");
    }

    [Fact]
    public void Fused_matmul_writes_each_output_with_its_own_rows()
    {
        // Q, K, V in one pass: three matrices of different heights over the same input.
        int cols = 64, tokens = 5;
        int[] heights = [40, 9, 23];
        var data = heights.Select((h, i) => Reference.RandomWeights(GgmlType.Q8_0, h, cols, seed: i)).ToArray();
        float[] x = Reference.RandomFloats(tokens * cols, seed: 3);
        double[] xq = Reference.Q8Activations(x, cols);
        var ys = heights.Select(h => new float[tokens * h]).ToArray();
        using var pool = new WorkerPool(3, minParallelWork: 0);
        using var mm = new MatMul(3, cols);
        fixed (byte* p0 = data[0], p1 = data[1], p2 = data[2])
        fixed (float* px = x, y0 = ys[0], y1 = ys[1], y2 = ys[2])
            mm.Run(pool, px, tokens, new WeightMatrix(p0, GgmlType.Q8_0, heights[0], cols), y0,
                new WeightMatrix(p1, GgmlType.Q8_0, heights[1], cols), y1, new WeightMatrix(p2, GgmlType.Q8_0, heights[2], cols), y2);
        for (int m = 0; m < 3; m++)
        {
            double[] w = Reference.Dequantize(GgmlType.Q8_0, data[m], heights[m], cols);
            var expected = new double[tokens * heights[m]];
            for (int b = 0; b < tokens; b++)
                for (int r = 0; r < heights[m]; r++)
                    for (int c = 0; c < cols; c++) expected[b * heights[m] + r] += w[r * cols + c] * xq[b * cols + c];
            Assert.True(Reference.Nmse(ys[m], expected) < 1e-10, $"matrix {m}");
        }
    }

    public static TheoryData<GgmlType, int> Int8Formats => new()
    {
        { GgmlType.Q8_0, 32 }, { GgmlType.Q8_0, 544 }, { GgmlType.Q4_0, 96 }, { GgmlType.Q4_0, 2048 },
        { GgmlType.Q4_K, 256 }, { GgmlType.Q4_K, 2048 }, { GgmlType.Q5_K, 256 }, { GgmlType.Q5_K, 1792 },
        { GgmlType.Q6_K, 256 }, { GgmlType.Q6_K, 2304 },
    };

    [Theory]
    [MemberData(nameof(Int8Formats))]
    public void Int8_dot_products_match_the_float64_reference_with_and_without_simd(GgmlType type, int cols)
    {
        // Block counts not a multiple of the kernels' unrolling (4 for Q8_0, 2 for Q4_0) and several super-blocks for
        // the K-quants, activations of very different magnitudes per block of 32 (so the 8 blocks of a super-block
        // have different scales), and one block of zeros (scale 0).
        const int rows = 16;
        byte[] data = Reference.RandomWeights(type, rows, cols, seed: cols + 1);
        double[] w = Reference.Dequantize(type, data, rows, cols);
        float[] x = Reference.RandomFloats(cols, seed: 5);
        for (int c = 0; c < cols; c++) x[c] *= MathF.Pow(10, (c / 32 % 5) - 2);
        if (cols > 32) Array.Clear(x, cols / 64 * 32, 32);
        double[] xq = Reference.Q8Activations(x, cols);
        var qs = new sbyte[cols];
        var ds = new float[cols / 32];
        var sums = new int[cols / 32];
        double[] expected = new double[rows], magnitude = new double[rows];
        float[] simd = new float[rows], scalar = new float[rows];
        fixed (byte* p = data)
        fixed (float* px = x, pd = ds)
        fixed (sbyte* pq = qs)
        fixed (int* ps = sums)
        {
            QuantizedDot.QuantizeRow(px, cols, pq, pd, ps);
            for (int c = 0; c < cols; c++)
                Assert.Equal(xq[c], (double)ds[c / 32] * qs[c], 12);
            for (int k = 0; k < cols / 32; k++)
                Assert.Equal(qs.Skip(32 * k).Take(32).Sum(q => (int)q), sums[k]);
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < cols; c++) { expected[r] += w[r * cols + c] * xq[c]; magnitude[r] += Math.Abs(w[r * cols + c] * xq[c]); }
                byte* row = p + r * GgmlTypeInfo.RowBytes(type, cols);
                simd[r] = QuantizedDot.Dot(type, row, pq, pd, ps, cols / 32);
                scalar[r] = ScalarDot(type, row, pq, pd, ps, cols / 32);
                // f32 summation: the error scales with Σ|w·x| (random weights cancel, the sum is far smaller).
                double tolerance = 1e-6 * magnitude[r];
                Assert.True(Math.Abs(simd[r] - expected[r]) <= tolerance, $"{type} row {r}: simd {simd[r]} vs {expected[r]}");
                Assert.True(Math.Abs(scalar[r] - expected[r]) <= tolerance, $"{type} row {r}: scalar {scalar[r]} vs {expected[r]}");
            }
        }
        // Over the rows: only f32 rounding apart from the float64 formula.
        Assert.True(Reference.Nmse(simd, expected) < 1e-10, $"{type} simd NMSE {Reference.Nmse(simd, expected):E2}");
        Assert.True(Reference.Nmse(scalar, expected) < 1e-10, $"{type} scalar NMSE {Reference.Nmse(scalar, expected):E2}");
    }

    private static float ScalarDot(GgmlType type, byte* row, sbyte* qs, float* ds, int* sums, int blocks) => type switch
    {
        GgmlType.Q8_0 => QuantizedDot.DotQ8_0Scalar(row, qs, ds, blocks),
        GgmlType.Q4_0 => QuantizedDot.DotQ4_0Scalar(row, qs, ds, blocks),
        GgmlType.Q4_K => QuantizedDot.DotQ4_KScalar(row, qs, ds, sums, blocks),
        GgmlType.Q5_K => QuantizedDot.DotQ5_KScalar(row, qs, ds, sums, blocks),
        GgmlType.Q6_K => QuantizedDot.DotQ6_KScalar(row, qs, ds, blocks),
        _ => throw new NotSupportedException(type.ToString()),
    };

    [Theory]
    [MemberData(nameof(Int8Formats))]
    public void Four_token_dot_equals_four_single_token_dots(GgmlType type, int cols)
    {
        // The prompt kernel (Dot4) against the decode kernel, token by token, with activations strided as MatMul
        // lays them out: the same products, so agreement to f32 rounding of the summation order.
        const int rows = 4, tokens = 4;
        byte[] data = Reference.RandomWeights(type, rows, cols, seed: cols + 2);
        double[] w = Reference.Dequantize(type, data, rows, cols);
        float[] x = Reference.RandomFloats(tokens * cols, seed: 6);
        double[] xq = Reference.Q8Activations(x, cols);
        var qs = new sbyte[tokens * cols];
        var ds = new float[tokens * cols / 32];
        var sums = new int[tokens * cols / 32];
        var four = new float[tokens];
        fixed (byte* p = data)
        fixed (float* px = x, pd = ds, py = four)
        fixed (sbyte* pq = qs)
        fixed (int* ps = sums)
        {
            for (int t = 0; t < tokens; t++)
                QuantizedDot.QuantizeRow(px + t * cols, cols, pq + t * cols, pd + t * cols / 32, ps + t * cols / 32);
            for (int r = 0; r < rows; r++)
            {
                byte* row = p + r * GgmlTypeInfo.RowBytes(type, cols);
                QuantizedDot.Dot4(type, row, pq, pd, ps, cols, cols / 32, py, 1);
                for (int t = 0; t < tokens; t++)
                {
                    float one = QuantizedDot.Dot(type, row, pq + t * cols, pd + t * cols / 32, ps + t * cols / 32, cols / 32);
                    double magnitude = 0;
                    for (int c = 0; c < cols; c++) magnitude += Math.Abs(w[r * cols + c] * xq[t * cols + c]);
                    Assert.True(Math.Abs(four[t] - one) <= 1e-6 * magnitude, $"{type} row {r} token {t}: {four[t]} vs {one} (Σ|w·x| {magnitude})");
                }
            }
        }
    }

    public static TheoryData<GgmlType> Int8Types => new() { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K };

    [Theory]
    [MemberData(nameof(Int8Types))]
    public void Int8_activations_stay_close_to_the_f32_product(GgmlType type)
    {
        // What the 8-bit activations cost in accuracy, against the exact product with f32 activations:
        // about 1e-5 NMSE for Gaussian-like inputs (llama.cpp accepts the same: test-backend-ops' 5e-4 for q8_0).
        int rows = 64, cols = 2048;
        byte[] data = Reference.RandomWeights(type, rows, cols, seed: 9);
        double[] w = Reference.Dequantize(type, data, rows, cols);
        float[] x = Reference.RandomFloats(cols, seed: 10);
        var exact = new double[rows];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) exact[r] += w[r * cols + c] * x[c];
        var y = new float[rows];
        using var pool = new WorkerPool(2, minParallelWork: 0);
        using var mm = new MatMul(2, cols, maxTokens: 1);
        fixed (byte* p = data)
        fixed (float* px = x, py = y)
            mm.Run(pool, new WeightMatrix(p, type, rows, cols), px, 1, py);
        double nmse = Reference.Nmse(y, exact);
        Assert.True(nmse < 1e-4, $"{type}: NMSE {nmse:E2}");
        Assert.True(nmse > 0, $"{type}: the 8-bit path was not taken");
    }
}

using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Xunit;

namespace Engine.Plans.Tests.Formats;

/// <summary>Quantize → dequantize on random normal data (fixed seed), scored by NMSE against the input; the
/// float64 dequantization agrees with the float one; degenerate blocks (zeros, constants, one outlier) stay
/// finite and exact where they can be.</summary>
public class RoundTripTests
{
    private const int Rows = 64, Columns = 512;

    // Measured on this data (seed 1234, N(0, 0.02²), 64×512): F32 0, BF16 2.75e-6, F16 4.33e-8, Q8_0 2.91e-5,
    // Q6_K 3.15e-4, Q5_K 1.32e-3, Q4_K 5.10e-3, Q4_0 7.42e-3. Bounds with ~30 % headroom.
    [Theory]
    [InlineData(GgmlType.F32, 0.0)]
    [InlineData(GgmlType.BF16, 3.6e-6)]
    [InlineData(GgmlType.F16, 5.6e-8)]
    [InlineData(GgmlType.Q8_0, 3.8e-5)]
    [InlineData(GgmlType.Q6_K, 4.1e-4)]
    [InlineData(GgmlType.Q5_K, 1.7e-3)]
    [InlineData(GgmlType.Q4_K, 6.6e-3)]
    [InlineData(GgmlType.Q4_0, 9.6e-3)]
    public void RandomRowsRoundTripWithinNmse(GgmlType type, double bound)
    {
        var x = RandomNormal(Rows * Columns, 0.02f, seed: 1234);
        var q = WeightFormat.QuantizeTensor(type, x, Columns);
        Assert.Equal(Rows * GgmlTypeInfo.RowBytes(type, Columns), q.Length);
        var y = WeightFormat.DequantizeTensor(type, q, Columns, Rows);
        double nmse = Nmse.Of(y, x);
        Assert.True(nmse <= bound, $"{type}: NMSE {nmse:E3} > {bound:E1}");
        if (type != GgmlType.F32) Assert.True(nmse > bound / 100, $"{type}: NMSE {nmse:E3} implausibly small: is it quantizing?");

        // The float64 reference and the float path agree to float rounding.
        var rowBytes = (int)GgmlTypeInfo.RowBytes(type, Columns);
        var row64 = new double[Columns];
        for (int r = 0; r < Rows; r++)
        {
            WeightFormat.DequantizeRow(type, q.AsSpan(r * rowBytes, rowBytes), row64);
            for (int c = 0; c < Columns; c++)
                Assert.True(Math.Abs(row64[c] - y[r * Columns + c]) <= 1e-6 * (Math.Abs(row64[c]) + 1e-3), $"{type} [{r},{c}] {row64[c]} vs {y[r * Columns + c]}");
        }
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q5_K)]
    [InlineData(GgmlType.Q6_K)]
    public void DegenerateBlocksStayFinite(GgmlType type)
    {
        const int n = 256;
        var zeros = new float[n];
        var constant = Enumerable.Repeat(0.5f, n).ToArray();
        var outlier = new float[n];
        outlier[77] = -3f;
        var tiny = Enumerable.Range(0, n).Select(i => (i % 3 - 1) * 1e-30f).ToArray();
        foreach (var x in new[] { zeros, constant, outlier, tiny })
        {
            var q = new byte[GgmlTypeInfo.RowBytes(type, n)];
            WeightFormat.QuantizeRow(type, x, q);
            var y = new float[n];
            WeightFormat.DequantizeRow(type, q, y);
            for (int i = 0; i < n; i++) Assert.True(float.IsFinite(y[i]), $"{type}: element {i} = {y[i]}");
            if (x == zeros) Assert.All(y, v => Assert.Equal(0f, v));
            if (x == outlier) Assert.Equal(-3f, y[77], 0.02f);
        }
    }

    [Fact]
    public void RowLengthsAreChecked()
    {
        var ex = Assert.Throws<ArgumentException>(() => WeightFormat.QuantizeRow(GgmlType.Q4_K, new float[128], new byte[72]));
        Assert.Contains("256-element block", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => WeightFormat.DequantizeRow(GgmlType.Q8_0, new byte[33], new float[32]));
        Assert.Contains("34 expected", ex.Message);
    }

    internal static float[] RandomNormal(int n, float std, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }
}

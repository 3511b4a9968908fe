using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Engine.Plans.Synth;
using Xunit;

namespace Engine.Plans.Tests.Synth;

/// <summary>The synth-only quantizers (cheaper than llama.cpp's searches, not byte-identical) must still produce blocks
/// that the reference dequantizer reads back close to the input: NMSE per type within a bound a little above the
/// reference quantizers' own error (measured here 2026-11-26: Q8_0 2.5e-5, Q4_0 6.4e-3, Q4_K 5.6e-3, Q5_K 1.3e-3,
/// Q6_K 3.2e-4; the reference codecs give 2.9e-5, 7.4e-3, 5.1e-3, 1.3e-3, 3.2e-4 in RoundTripTests).</summary>
public sealed class SynthQuantizerTests
{
    [Theory]
    [InlineData(GgmlType.Q8_0, 4e-5)]
    [InlineData(GgmlType.Q4_0, 9e-3)]
    [InlineData(GgmlType.Q4_K, 8e-3)]
    [InlineData(GgmlType.Q5_K, 2e-3)]
    [InlineData(GgmlType.Q6_K, 5e-4)]
    public void Synth_blocks_dequantize_close_to_their_input(GgmlType type, double bound)
    {
        const int cols = 4096, rows = 16;
        var rng = new Random(11);
        var x = new float[cols];
        var back = new float[cols];
        var blocks = new byte[GgmlTypeInfo.RowBytes(type, cols)];
        double err = 0, norm = 0;
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < cols; i++) x[i] = (float)(0.02 * (rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 2);
            SynthQuantizers.QuantizeRow(type, x, blocks);
            WeightFormat.DequantizeRow(type, blocks, back);
            for (int i = 0; i < cols; i++) { double d = back[i] - x[i]; err += d * d; norm += (double)x[i] * x[i]; }
        }
        double nmse = err / norm;
        Assert.True(double.IsFinite(nmse) && nmse < bound, $"{type}: NMSE {nmse:E2} (bound {bound:E0})");
    }
}

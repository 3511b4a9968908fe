using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Formats;

/// <summary>The reference quantizers against the files llama.cpp (0.4.0-dev, 80fb11ac, llama_model_quantize
/// without an imatrix, so ggml's quantize_row_*_ref paths) made from models/stories260K-pad256-F32.gguf.
/// Every quantized tensor of every file is reproduced byte for byte, K-quants included; and llama.cpp's
/// tensors dequantize to within a per-type NMSE of the F32 source.</summary>
public class LlamaCppIdentityTests
{
    private const string Source = "stories260K-pad256-F32.gguf";

    [Theory]
    [InlineData("stories260K-pad256-Q8_0.gguf")]      // Q8_0 ×37
    [InlineData("stories260K-pad256-Q4_0.gguf")]      // Q4_0 ×36, output Q6_K
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]    // Q4_K ×32, Q6_K ×5
    [InlineData("stories260K-pad256-Q5_K_M.gguf")]    // Q5_K ×32, Q6_K ×5
    [InlineData("stories260K-pad256-Q6_K.gguf")]      // Q6_K ×37
    [InlineData("stories260K-pad256-F16.gguf")]       // F16 ×37
    public void QuantizingTheF32SourceReproducesLlamaCppByteForByte(string quantized)
    {
        using var src = GgufFile.Open(RepoPaths.Model(Source));
        using var q = GgufFile.Open(RepoPaths.Model(quantized));
        int compared = 0;
        foreach (var t in q.Tensors)
        {
            if (t.Type == GgmlType.F32) continue;
            var s = src.FindTensor(t.Name)!;
            Assert.Equal(GgmlType.F32, s.Type);
            var f32 = WeightFormat.DequantizeTensor(GgmlType.F32, src.TensorData(s), s.Columns, s.Rows);
            var mine = WeightFormat.QuantizeTensor(t.Type, f32, t.Columns);
            var theirs = q.TensorData(t);
            int first = mine.AsSpan().CommonPrefixLength(theirs);
            Assert.True(first == mine.Length && mine.Length == theirs.Length,
                $"{quantized} {t.Name} ({t.Type}): first differing byte at {first} of {theirs.Length}");
            compared++;
        }
        Assert.Equal(37, compared);
    }

    // NMSE of llama.cpp's tensors dequantized against the F32 source, per tensor type. Measured (max over the
    // tensors of that type in these files): Q8_0 3.81e-5, Q4_0 9.22e-3, Q4_K 6.09e-3, Q5_K 1.54e-3,
    // Q6_K 3.87e-4, F16 4.37e-8. Bounds are those with ~30 % headroom.
    private static double Bound(GgmlType t) => t switch
    {
        GgmlType.Q8_0 => 5e-5,
        GgmlType.Q4_0 => 1.2e-2,
        GgmlType.Q4_K => 8e-3,
        GgmlType.Q5_K => 2e-3,
        GgmlType.Q6_K => 5e-4,
        GgmlType.F16 => 6e-8,
        GgmlType.F32 => 0,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    [Theory]
    [InlineData("stories260K-pad256-Q8_0.gguf")]
    [InlineData("stories260K-pad256-Q4_0.gguf")]
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]
    [InlineData("stories260K-pad256-Q5_K_M.gguf")]
    [InlineData("stories260K-pad256-Q6_K.gguf")]
    [InlineData("stories260K-pad256-F16.gguf")]
    public void LlamaCppTensorsDequantizeCloseToTheSource(string quantized)
    {
        using var src = GgufFile.Open(RepoPaths.Model(Source));
        using var q = GgufFile.Open(RepoPaths.Model(quantized));
        foreach (var t in q.Tensors)
        {
            var s = src.FindTensor(t.Name)!;
            var f32 = WeightFormat.DequantizeTensor(GgmlType.F32, src.TensorData(s), s.Columns, s.Rows);
            var deq = WeightFormat.DequantizeTensor(t.Type, q.TensorData(t), t.Columns, t.Rows);
            double nmse = Nmse.Of(deq, f32);
            Assert.True(nmse <= Bound(t.Type), $"{quantized} {t.Name} ({t.Type}): NMSE {nmse:E3} > {Bound(t.Type):E1}");
        }
    }
}

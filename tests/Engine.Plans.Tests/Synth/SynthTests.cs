using System.Security.Cryptography;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Engine.Plans.Synth;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Synth;

public sealed class SynthTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("synth-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Out(string name) => Path.Combine(_dir, name);

    [Theory]
    [InlineData(SynthType.F16)]
    [InlineData(SynthType.Q8_0)]
    [InlineData(SynthType.Q4_0)]
    [InlineData(SynthType.Q4_K_M)]
    [InlineData(SynthType.Q5_K_M)]
    [InlineData(SynthType.Q6_K)]
    public void TinyHasTheExpectedTensorsTypesAndSaneValues(SynthType type)
    {
        string path = Out($"tiny-{type}.gguf");
        long size = ModelSynthesizer.Write(new SynthOptions(SynthPreset.Tiny, type, path) { Seed = 5 });
        Assert.False(File.Exists(path + ".part"));
        using var f = GgufFile.Open(path);
        Assert.Equal(size, f.FileSize);
        Assert.Equal((long)type, f.GetInt(GgufKeys.FileType));
        Assert.Equal(512, f.GetArrayOrNull<string>(GgufKeys.TokenizerTokens)!.Length);
        var p = SynthPreset.Tiny;
        Assert.Equal(3 + 9 * p.LayerCount, f.Tensors.Count);

        var expected = new Dictionary<string, (GgmlType Type, long[] Dims)>
        {
            [TensorNames.TokenEmbedding] = (MainType(type), [256, 512]),
            [TensorNames.OutputNorm] = (GgmlType.F32, [256]),
            [TensorNames.Output] = (type is SynthType.F16 or SynthType.Q8_0 ? MainType(type) : GgmlType.Q6_K, [256, 512]),
            [TensorNames.AttnNorm(0)] = (GgmlType.F32, [256]),
            [TensorNames.AttnQ(0)] = (MainType(type), [256, 256]),
            [TensorNames.AttnK(1)] = (MainType(type), [256, 128]),
            [TensorNames.AttnV(0)] = (MainType(type), [256, 128]),
            // Q4_K_M and Q5_K_M: use_more_bits(1, 2) holds (last eighth), so layer 1's attn_v and ffn_down are Q6_K.
            [TensorNames.AttnV(1)] = (type is SynthType.Q4_K_M or SynthType.Q5_K_M ? GgmlType.Q6_K : MainType(type), [256, 128]),
            [TensorNames.FfnDown(1)] = (type is SynthType.Q4_K_M or SynthType.Q5_K_M ? GgmlType.Q6_K : MainType(type), [768, 256]),
            [TensorNames.FfnGate(1)] = (MainType(type), [256, 768]),
        };
        foreach (var (name, (t, dims)) in expected)
        {
            var info = f.FindTensor(name);
            Assert.True(info != null, name);
            Assert.Equal(t, info.Type);
            Assert.Equal(dims, info.Dims);
        }

        foreach (var t in f.Tensors)
        {
            var x = WeightFormat.DequantizeTensor(t.Type, f.TensorData(t), t.Columns, t.Rows);
            Assert.All(x, v => Assert.True(float.IsFinite(v), t.Name));
            double mean = x.Average(v => (double)v);
            double std = Math.Sqrt(x.Average(v => (v - mean) * (v - mean)));
            if (t.Dims.Length == 1)
            {
                Assert.InRange(mean, 0.99, 1.01);
            }
            else
            {
                Assert.InRange(mean, -0.002, 0.002);
                Assert.InRange(std, 0.018, 0.022);
            }
        }
    }

    private static GgmlType MainType(SynthType t) => TensorTypeRules.DefaultType(t);

    [Fact]
    public void SameSeedGivesIdenticalBytesWhateverTheThreadCount()
    {
        var a = new SynthOptions(SynthPreset.Tiny, SynthType.Q8_0, Out("a.gguf")) { Seed = 42, Threads = 1 };
        ModelSynthesizer.Write(a);
        ModelSynthesizer.Write(a with { Output = Out("b.gguf"), Threads = 4 });
        ModelSynthesizer.Write(a with { Output = Out("c.gguf"), Seed = 43 });
        Assert.Equal(Hash(Out("a.gguf")), Hash(Out("b.gguf")));
        Assert.NotEqual(Hash(Out("a.gguf")), Hash(Out("c.gguf")));
    }

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void HeaderOnly70BHasTheFullLogicalSizeAndTakesLittleDisk()
    {
        string path = Out("70b.gguf");
        var o = new SynthOptions(SynthPreset.Llama3_70B, SynthType.Q4_K_M, path) { HeaderOnly = true };
        ModelSynthesizer.Write(o);
        var layout = ModelSynthesizer.BuildHeader(o).Layout();
        using var f = GgufFile.Open(path);
        Assert.Equal(layout.FileSize, f.FileSize);
        Assert.InRange(f.FileSize, 42_000_000_000L, 43_000_000_000L);   // Llama 3.1 70B Q4_K_M files are ~42.5 GB
        Assert.Equal(2 + 80 * 9 + 2, f.Tensors.Count);
        Assert.Equal(80, f.GetInt(GgufKeys.BlockCount("llama")));
        Assert.Equal([8192L, 28672], f.FindTensor(TensorNames.FfnGate(79))!.Dims);
        Assert.Equal([8192L, 1024], f.FindTensor(TensorNames.AttnK(0))!.Dims);
        Assert.Equal([64L], f.FindTensor(TensorNames.RopeFreqs)!.Dims);
        Assert.Equal(GgmlType.Q5_K, f.FindTensor(TensorNames.AttnV(11))!.Type);   // 70B: attn_v Q4_K → Q5_K
        Assert.Equal(GgmlType.Q6_K, f.FindTensor(TensorNames.AttnV(0))!.Type);
        for (int i = 0; i < layout.Slots.Count; i++)
        {
            Assert.Equal(layout.Slots[i].FileOffset, f.Tensors[i].FileOffset);
            Assert.Equal(layout.Slots[i].ByteSize, f.Tensors[i].ByteSize);
        }
        Assert.True(AllocatedBytes(path) < 64L << 20, $"{AllocatedBytes(path)} bytes allocated");
    }

    /// <summary>Blocks actually allocated (st_blocks × 512), from `stat`.</summary>
    private static long AllocatedBytes(string path)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var parts = p.StandardOutput.ReadToEnd().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        p.WaitForExit();
        return long.Parse(parts[0]) * long.Parse(parts[1]);
    }

    [Fact]
    public void Llama3_1BIsTiedWithRopeFactorsAndTheVocabularyCopied()
    {
        string path = Out("1b.gguf");
        var o = new SynthOptions(SynthPreset.Llama3_1B, SynthType.Q4_K_M, path)
        {
            HeaderOnly = true, Layers = 2, VocabFrom = RepoPaths.Vocab("ggml-vocab-llama-bpe.gguf"),
        };
        ModelSynthesizer.Write(o);
        using var f = GgufFile.Open(path);
        using var v = GgufFile.Open(o.VocabFrom!);
        foreach (var key in v.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)))
            Assert.Equal(v.Metadata[key].Value is Array a ? a.Length : v.Metadata[key].Value, f.Metadata[key].Value is Array b ? b.Length : f.Metadata[key].Value);
        Assert.Null(f.FindTensor(TensorNames.Output));
        Assert.Equal(GgmlType.Q6_K, f.FindTensor(TensorNames.TokenEmbedding)!.Type);   // tied: quantized as output
        Assert.Equal([2048L, 128256], f.FindTensor(TensorNames.TokenEmbedding)!.Dims);
        Assert.Equal(2, f.GetInt(GgufKeys.BlockCount("llama")));
    }

    [Fact]
    public void RopeFactorsFollowTheLlama3Rule()
    {
        var r = RopeFactors.Llama3(128, 500000, 8);
        Assert.Equal(64, r.Length);
        Assert.Equal(1f, r[0]);
        Assert.Equal(8f, r[63]);
        // Wavelength 2π·500000^(2i/128): below 2048 → 1, above 8192 → 8, smooth and monotone between.
        for (int i = 1; i < 64; i++) Assert.True(r[i] >= r[i - 1]);
        Assert.Contains(r, x => x > 1f && x < 8f);
    }

    [Theory]
    [InlineData(0, 32, true)] [InlineData(3, 32, true)] [InlineData(4, 32, false)] [InlineData(6, 32, true)]
    [InlineData(28, 32, true)] [InlineData(26, 32, false)] [InlineData(27, 32, true)] [InlineData(1, 2, true)] [InlineData(0, 2, false)]
    public void UseMoreBitsAsLlamaQuant(int layer, int layers, bool expected) =>
        Assert.Equal(expected, TensorTypeRules.UseMoreBits(layer, layers));
}

using Engine.Plans.Gguf;
using Engine.Plans.Model;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Gguf;

/// <summary>The shipped models (models/MODELS.md) open, and re-writing one through the writer reproduces it.</summary>
public sealed class GgufModelsTests : IDisposable
{
    private readonly TempFiles _tmp = new();
    public void Dispose() => _tmp.Dispose();

    /// <summary>Every GGUF in models/ and models/vocab/, as paths relative to models/.</summary>
    public static IReadOnlyList<string> ModelNames() =>
        Directory.GetFiles(RepoPaths.Models, "*.gguf").Select(Path.GetFileName)
            .Concat(Directory.GetFiles(Path.Combine(RepoPaths.Models, "vocab"), "*.gguf").Select(p => "vocab/" + Path.GetFileName(p)))
            .Order(StringComparer.Ordinal).ToList()!;

    public static TheoryData<string> AllModels() => new(ModelNames());

    [Fact]
    public void The_model_list_is_complete()
    {
        Assert.Equal(14, AllModels().Count); // 11 models, 3 vocabularies (models/MODELS.md)
    }

    [Theory]
    [MemberData(nameof(AllModels))]
    public void Every_shipped_model_opens(string name)
    {
        using var f = GgufFile.Open(Path.Combine(RepoPaths.Models, name));
        Assert.Equal(3u, f.Version);
        Assert.Equal(32u, f.Alignment);
        var tok = TokenizerData.FromGguf(f);
        Assert.NotEmpty(tok.Tokens);
        if (name.StartsWith("vocab/", StringComparison.Ordinal))
        {
            Assert.Empty(f.Tensors);
            return;
        }
        var cfg = ModelConfig.FromGguf(f);
        Assert.Equal(cfg.VocabSize, tok.Tokens.Length);
        long end = f.DataOffset;
        foreach (var t in f.Tensors)
        {
            Assert.Equal(0, t.FileOffset % f.Alignment);
            Assert.True(t.FileOffset >= end, $"{t.Name} overlaps the tensor before it");
            end = t.FileOffset + t.ByteSize;
        }
        Assert.True(end <= f.FileSize);
        Assert.NotNull(f.FindTensor(TensorNames.TokenEmbedding));
        for (int l = 0; l < cfg.LayerCount; l++)
            foreach (string n in TensorNames.Layer(l)) Assert.True(f.FindTensor(n) != null, $"{name}: {n} missing");
    }

    [Theory]
    [InlineData("stories260K.gguf")]
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]
    [InlineData("vocab/ggml-vocab-llama-spm.gguf")]
    public void Rewriting_a_model_through_the_writer_reproduces_it_byte_for_byte(string name)
    {
        string source = Path.Combine(RepoPaths.Models, name);
        string copy = _tmp.Path("rewrite.gguf");
        using (var f = GgufFile.Open(source))
        {
            var w = new GgufWriter();
            foreach (string k in f.MetadataKeys) w.Set(k, f.Metadata[k]);
            foreach (var t in f.Tensors) w.AddTensor(t.Name, t.Type, t.Dims);
            w.Write(copy, i => f.TensorData(f.Tensors[i]).ToArray());
            using var back = GgufFile.Open(copy);
            GgufAssert.SameFile(f, back);
        }
        // llama.cpp (gguf.cpp gguf_write_to_buf, and gguf-py) lay a file out exactly as the writer does.
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(copy));
    }
}

using System.Diagnostics;
using System.Text.Json;
using Engine.Plans.Gguf;
using Engine.Plans.Model;
using Engine.Tests;
using Engine.Runtime.Tokenization;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Runtime.Tests.Tokenization;

/// <summary>Texts beyond llama.cpp's own vectors, tokenized by llama.cpp (peer-vectors.tsv, made by
/// make-peer-vectors.py), with every add_special / parse_special combination the runtime uses; and the prompt tokens
/// of the model goldens.</summary>
public sealed class PeerVectorTests(ITestOutputHelper log)
{
    public static TheoryData<string> PeerVocabs => new()
    {
        "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-gpt-2.gguf",
        // the same vocabularies without tokenizer.ggml.pre: llama.cpp's "default" pre-tokenizer
        "ggml-vocab-gpt-2.gguf+pre=default", "ggml-vocab-llama-bpe.gguf+pre=default",
    };

    [Theory]
    [MemberData(nameof(PeerVocabs))]
    public void Peer_vectors_match_llama_cpp(string vocab)
    {
        TokenizerData data;
        using (var f = GgufFile.Open(RepoPaths.Vocab(vocab.Split('+')[0])))
        {
            data = TokenizerData.FromGguf(f);
            // without a pre-tokenizer name llama.cpp adds BOS only when the file says so (no Llama 3 default)
            if (vocab.EndsWith("+pre=default", StringComparison.Ordinal))
                data = data with { Pre = "default", AddBos = f.GetBoolOr(GgufKeys.TokenizerAddBos, data.Model == "llama") };
        }
        var tok = Tokenizer.Create(data);
        string tsv = Path.Combine(RepoPaths.Root, "tests", "Engine.Runtime.Tests", "Tokenizer", "peer-vectors.tsv");
        var failures = new List<string>();
        int count = 0;
        foreach (var line in File.ReadLines(tsv))
        {
            if (line.StartsWith('#')) continue;
            var cols = line.Split('\t');
            if (cols[0] != vocab) continue;
            count++;
            bool addSpecial = cols[1] == "1", parseSpecial = cols[2] == "1";
            string text = JsonSerializer.Deserialize<string>(cols[3])!;
            var expected = cols[4].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            var got = tok.Encode(text, addSpecial, parseSpecial);
            if (!got.AsSpan().SequenceEqual(expected))
                failures.Add($"{cols[3]} add={addSpecial} parse={parseSpecial}: expected [{cols[4]}] got [{string.Join(' ', got)}]");
        }
        log.WriteLine($"{vocab}: {count - failures.Count}/{count} peer vectors match");
        Assert.True(count > 0);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData("stories260K.gguf")]
    [InlineData("llama-2-tiny-random.gguf")]
    public void Prompt_tokens_match_the_model_golden(string model)
    {
        var tok = VocabVectorTests.Load(RepoPaths.Model(model));
        string golden = File.ReadLines(RepoPaths.Model(Path.ChangeExtension(model, ".ref.txt")))
            .First(l => l.StartsWith("prompt_tokens:"))["prompt_tokens:".Length..].Trim();
        Assert.Equal(golden, string.Join(' ', tok.Encode("Once upon a time", addSpecial: true, parseSpecial: false)));
    }

}

/// <summary>Timed alone (no other test class runs beside it), so a busy CI box does not make it flaky.</summary>
[CollectionDefinition(nameof(LoadTiming), DisableParallelization = true)]
public sealed class LoadTimingCollection;

[Collection(nameof(LoadTiming))]
public sealed class LoadTiming(ITestOutputHelper log)
{
    [Fact]
    public void A_128k_vocabulary_loads_in_well_under_a_second()
    {
        var sw = Stopwatch.StartNew();
        TokenizerData data;
        using (var f = GgufFile.Open(RepoPaths.Vocab("ggml-vocab-llama-bpe.gguf"))) data = TokenizerData.FromGguf(f);
        double readMs = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        var tok = Tokenizer.Create(data);
        double loadMs = sw.Elapsed.TotalMilliseconds;
        string text = string.Concat(Enumerable.Repeat("The quick brown fox jumps over the lazy dog's 12345 Привет 🦙. ", 500));
        sw.Restart();
        int n = tok.Encode(text, true, false).Length;
        double encodeMs = sw.Elapsed.TotalMilliseconds;
        log.WriteLine($"GGUF read {readMs:F0} ms; Tokenizer.Create {loadMs:F0} ms ({tok.VocabSize} tokens); encode {text.Length} chars → {n} tokens in {encodeMs:F1} ms");
        Assert.True(loadMs < 1000, $"load took {loadMs:F0} ms");
    }
}

using System.Text;
using Engine.Plans.Gguf;
using Engine.Plans.Model;
using Engine.Tests;
using Engine.Runtime.Tokenization;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Runtime.Tests.Tokenization;

/// <summary>llama.cpp's tokenizer test vectors (models/vocab/*.inp/.out, as tests/test-tokenizer-0.cpp reads them):
/// every text must give exactly llama.cpp's ids, with add_special = false and parse_special = false.</summary>
public sealed class VocabVectorTests(ITestOutputHelper log)
{
    public static TheoryData<string> Vocabs => new() { "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-gpt-2.gguf" };

    internal static Tokenizer Load(string path)
    {
        using var f = GgufFile.Open(path);
        return Tokenizer.Create(TokenizerData.FromGguf(f));
    }

    /// <summary>test-tokenizer-0.cpp read_tests: the .inp file split on "\n__ggml_vocab_test__\n" (a text may be
    /// empty or end in newlines), one .out line of ids per text.</summary>
    internal static List<(string Text, int[] Ids)> ReadVectors(string vocab)
    {
        string raw = File.ReadAllText(RepoPaths.Vocab(vocab + ".inp"), new UTF8Encoding(false));
        const string sep = "\n__ggml_vocab_test__\n";
        var texts = new List<string>();
        for (int pos = 0; pos < raw.Length;)
        {
            int next = raw.IndexOf(sep, pos, StringComparison.Ordinal);
            if (next < 0) { texts.Add(raw[pos..]); break; }
            texts.Add(raw[pos..next]);
            pos = next + sep.Length;
        }
        var lines = File.ReadAllLines(RepoPaths.Vocab(vocab + ".out"));
        Assert.Equal(texts.Count, lines.Length);
        return texts.Select((t, i) => (t, lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray())).ToList();
    }

    [Theory]
    [MemberData(nameof(Vocabs))]
    public void Every_vector_matches_llama_cpp(string vocab)
    {
        var tok = Load(RepoPaths.Vocab(vocab));
        var vectors = ReadVectors(vocab);
        var failures = new List<string>();
        foreach (var (text, expected) in vectors)
        {
            var got = tok.Encode(text, addSpecial: false, parseSpecial: false);
            if (!got.AsSpan().SequenceEqual(expected))
                failures.Add($"'{text}': expected [{string.Join(' ', expected)}] got [{string.Join(' ', got)}]");
        }
        log.WriteLine($"{vocab}: {vectors.Count - failures.Count}/{vectors.Count} vectors match");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(Vocabs))]
    public void Pieces_round_trip_every_vector(string vocab)
    {
        // Concatenated pieces give the text back; SentencePiece adds one space in front (add_space_prefix), which
        // llama_detokenize removes again.
        var tok = Load(RepoPaths.Vocab(vocab));
        foreach (var (text, _) in ReadVectors(vocab))
        {
            string decoded = tok.Decode(tok.Encode(text, false, false));
            if (vocab.Contains("spm") && text.Length > 0)
            {
                Assert.StartsWith(" ", decoded);
                decoded = decoded[1..];
            }
            Assert.Equal(text, decoded);
        }
    }
}

using System.Text;
using Engine.Runtime.Tokenization;
using Engine.Tests;
using Xunit;

namespace Engine.Runtime.Tests.Tokenization;

public sealed class StreamingDecoderTests
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    [Theory]
    [InlineData("ggml-vocab-llama-spm.gguf")]
    [InlineData("ggml-vocab-llama-bpe.gguf")]
    [InlineData("ggml-vocab-gpt-2.gguf")]
    public void Chunks_are_valid_utf8_and_add_up_to_the_text(string vocab)
    {
        var tok = VocabVectorTests.Load(RepoPaths.Vocab(vocab));
        // 🦙 and ក are split over byte tokens in these vocabularies, so some tokens end mid-character
        const string text = "Hello 🦙 world កាន់តែ 日本語 done";
        var ids = tok.Encode(text, false, false);
        var decoder = new StreamingDecoder(tok);
        var sb = new StringBuilder();
        int heldBack = 0;
        foreach (int id in ids)
        {
            var chunk = decoder.Push(id);
            if (chunk.Length < tok.TokenBytes(id).Length) heldBack++;
            sb.Append(StrictUtf8.GetString(chunk)); // throws on invalid UTF-8
        }
        sb.Append(StrictUtf8.GetString(decoder.Flush()));
        string decoded = vocab.Contains("spm") ? sb.ToString()[1..] : sb.ToString(); // SPM's prefix space
        Assert.Equal(text, decoded);
        Assert.True(heldBack > 0, "the text should split a character over tokens somewhere");
    }

    [Fact]
    public void Broken_sequences_become_replacement_characters()
    {
        var tok = VocabVectorTests.Load(RepoPaths.Vocab("ggml-vocab-llama-spm.gguf"));
        int Byte(int b) => tok.FindToken($"<0x{b:X2}>");
        var decoder = new StreamingDecoder(tok);
        Assert.Equal(0, decoder.Push(Byte(0xE6)).Length);           // start of a 3-byte sequence: held
        Assert.Equal("\uFFFDA", Encoding.UTF8.GetString(decoder.Push(Byte(0x41)))); // cannot continue: U+FFFD, then 'A'
        Assert.Equal(0, decoder.Push(Byte(0xF0)).Length);
        Assert.Equal("\uFFFD", Encoding.UTF8.GetString(decoder.Flush()));       // unfinished at the end
    }

    [Fact]
    public void Push_does_not_allocate()
    {
        var tok = VocabVectorTests.Load(RepoPaths.Vocab("ggml-vocab-llama-bpe.gguf"));
        var ids = tok.Encode("Once upon a time 🦙 there was a llama. 日本語", false, false);
        var decoder = new StreamingDecoder(tok);
        foreach (int id in ids) decoder.Push(id); // warm up: buffers grow once
        decoder.Flush();
        long before = GC.GetAllocatedBytesForCurrentThread();
        int total = 0;
        for (int round = 0; round < 10; round++)
            foreach (int id in ids) total += decoder.Push(id).Length;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(total > 0);
        Assert.Equal(0, allocated);
    }
}

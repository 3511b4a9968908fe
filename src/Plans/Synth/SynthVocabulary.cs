using Engine.Plans.Gguf;

namespace Engine.Plans.Synth;

/// <summary>Tokenizer metadata for a synthesized model: copied from a vocabulary GGUF, or made up as a
/// SentencePiece-style ("llama") vocabulary that llama.cpp loads: &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, the 256
/// byte tokens &lt;0xXX&gt; (byte fallback, and llama_vocab looks up &lt;0x0A&gt; for the newline), "▁" and
/// the printable ASCII characters, then unique filler pieces "▁t{n}" up to the size asked for.</summary>
public static class SynthVocabulary
{
    private const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;   // llama_token_type

    public const int MinimumSize = 3 + 256 + 1 + 94;

    /// <summary>Sets the tokenizer.* keys of a made-up vocabulary of <paramref name="size"/> tokens.</summary>
    public static void Synthesize(GgufWriter w, int size)
    {
        if (size < MinimumSize) throw new ArgumentOutOfRangeException(nameof(size), size, $"a synthesized vocabulary needs at least {MinimumSize} tokens");
        var tokens = new string[size];
        var scores = new float[size];
        var types = new int[size];
        int n = 0;
        Add("<unk>", 0, Unknown);
        Add("<s>", 0, Control);
        Add("</s>", 0, Control);
        for (int b = 0; b < 256; b++) Add($"<0x{b:X2}>", 0, Byte);
        Add("\u2581", -1, Normal);
        for (char c = '!'; c <= '~'; c++) Add(c.ToString(), -2 - (c - '!'), Normal);
        for (int i = 0; n < size; i++) Add($"\u2581t{i}", -1000 - i, Normal);

        w.Set(GgufKeys.TokenizerModel, "llama");
        w.Set(GgufKeys.TokenizerTokens, tokens);
        w.Set(GgufKeys.TokenizerScores, scores);
        w.Set(GgufKeys.TokenizerTokenType, types);
        w.Set(GgufKeys.TokenizerBosId, 1u);
        w.Set(GgufKeys.TokenizerEosId, 2u);
        w.Set(GgufKeys.TokenizerUnknownId, 0u);
        w.Set(GgufKeys.TokenizerAddBos, true);
        w.Set(GgufKeys.TokenizerAddEos, false);

        void Add(string text, float score, int type)
        {
            tokens[n] = text; scores[n] = score; types[n] = type; n++;
        }
    }

    /// <summary>Copies every tokenizer.* key of <paramref name="vocab"/> and returns its token count.</summary>
    public static int CopyFrom(GgufWriter w, GgufFile vocab)
    {
        var tokens = vocab.GetArrayOrNull<string>(GgufKeys.TokenizerTokens)
            ?? throw new GgufException(vocab.Path, 0, GgufKeys.TokenizerTokens, "(missing)", "a vocabulary file must carry the token list");
        foreach (string key in vocab.MetadataKeys)
            if (key.StartsWith("tokenizer.", StringComparison.Ordinal)) w.Set(key, vocab.Metadata[key]);
        return tokens.Length;
    }
}

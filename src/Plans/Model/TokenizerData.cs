using Engine.Plans.Gguf;

namespace Engine.Plans.Model;

/// <summary>Everything a tokenizer needs, read once from GGUF metadata (tokenizer.ggml.*), so the runtime never
/// parses GGUF metadata itself. Token types follow llama.cpp's llama_token_type: 1 normal, 2 unknown, 3 control,
/// 4 user-defined, 5 unused, 6 byte.</summary>
public sealed record TokenizerData
{
    /// <summary>"llama" (SentencePiece) or "gpt2" (byte-level BPE).</summary>
    public required string Model { get; init; }
    /// <summary>Pre-tokenizer name ("llama-bpe", "gpt-2", "default", …); "default" when absent.</summary>
    public required string Pre { get; init; }
    public required string[] Tokens { get; init; }
    public float[]? Scores { get; init; }
    public int[]? TokenTypes { get; init; }
    public string[]? Merges { get; init; }
    public int BosId { get; init; } = -1;
    public int EosId { get; init; } = -1;
    public int EotId { get; init; } = -1;
    public int EomId { get; init; } = -1;
    public int UnknownId { get; init; } = -1;
    public int PaddingId { get; init; } = -1;
    public bool AddBos { get; init; }
    public bool AddEos { get; init; }
    public bool AddSpacePrefix { get; init; } = true;
    public string? ChatTemplate { get; init; }

    public static TokenizerData FromGguf(GgufFile f)
    {
        string model = f.GetString(GgufKeys.TokenizerModel);
        var tokens = f.GetArrayOrNull<string>(GgufKeys.TokenizerTokens)
            ?? throw new GgufException(f.Path, 0, GgufKeys.TokenizerTokens, "(missing)", "required string array");
        bool spm = model == "llama";
        string pre = f.GetStringOrNull(GgufKeys.TokenizerPre) ?? "default";
        // llama-vocab.cpp load(): the Llama 3 family of BPE pre-tokenizers adds BOS unless the file says otherwise
        bool llama3 = !spm && pre is "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "pixtral";
        int n = tokens.Length;
        // A default id outside the vocabulary is disabled; a stored id outside it is ignored (the default stays).
        int Id(string key, int fallback)
        {
            if (fallback >= n) fallback = -1;
            long id = f.GetIntOr(key, -1);
            return id >= 0 && id < n ? (int)id : fallback;
        }
        return new TokenizerData
        {
            Model = model,
            Pre = pre,
            Tokens = tokens,
            // llama.cpp also accepts integer scores
            Scores = f.GetArrayOrNull<float>(GgufKeys.TokenizerScores)
                ?? f.GetArrayOrNull<int>(GgufKeys.TokenizerScores)?.Select(x => (float)x).ToArray(),
            TokenTypes = f.GetArrayOrNull<int>(GgufKeys.TokenizerTokenType),
            Merges = f.GetArrayOrNull<string>(GgufKeys.TokenizerMerges),
            // llama.cpp's defaults per vocab type (llama-vocab.cpp load): SPM bos=1 eos=2 unk=0; BPE bos=eos=11.
            BosId = Id(GgufKeys.TokenizerBosId, spm ? 1 : 11),
            EosId = Id(GgufKeys.TokenizerEosId, spm ? 2 : 11),
            EotId = Id(GgufKeys.TokenizerEotId, -1),
            EomId = Id(GgufKeys.TokenizerEomId, -1),
            UnknownId = Id(GgufKeys.TokenizerUnknownId, spm ? 0 : -1),
            PaddingId = Id(GgufKeys.TokenizerPaddingId, -1),
            AddBos = f.GetBoolOr(GgufKeys.TokenizerAddBos, spm || llama3),
            AddEos = f.GetBoolOr(GgufKeys.TokenizerAddEos, false),
            AddSpacePrefix = f.GetBoolOr(GgufKeys.TokenizerAddSpacePrefix, spm),
            ChatTemplate = f.GetStringOrNull(GgufKeys.TokenizerChatTemplate),
        };
    }
}

using System.Text;
using Engine.Plans.Model;

namespace Engine.Runtime.Tokenization;

/// <summary>Text ↔ token ids for Llama-family vocabularies, exactly as llama.cpp's llama_tokenize and
/// llama_token_to_piece (llama-vocab.cpp, unicode.cpp at llama.cpp 80fb11ac): SentencePiece ("llama") and byte-level
/// BPE ("gpt2") with the "llama-bpe", "gpt-2" and "default" pre-tokenizers. Built once from
/// <see cref="TokenizerData"/>; every table is made at <see cref="Create"/>. Encode may be called from several
/// threads; it allocates its scratch per call.</summary>
public sealed class Tokenizer
{
    private readonly TokenizerData _data;
    private readonly bool _spm;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _tokenLookup;
    private readonly Dictionary<string, int>? _mergeRanks;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _mergeLookup;
    private readonly float[] _scores;
    private readonly TokenAttributes[] _attrs;
    private readonly int[] _spmByteTokens = new int[256];
    /// <summary>Control, user-defined and unknown tokens, longest text first: the order tokenizer_st_partition
    /// splits them out of the text.</summary>
    private readonly int[] _specialTokens;
    private readonly bool[] _endOfGeneration;
    private readonly byte[] _pieceBytes;
    private readonly int[] _pieceOffsets; // [VocabSize + 1]
    private readonly PreTokenizerKind _pre;
    private readonly bool _ignoreMerges;

    public int BosId { get; }
    public int EosId { get; }
    /// <summary>End of turn (&lt;|eot_id|&gt;), from the GGUF or found by name as llama.cpp does; -1 if none.</summary>
    public int EotId { get; }
    public int VocabSize => _attrs.Length;
    public bool AddBos { get; }
    public bool AddEos { get; }
    public string? ChatTemplate => _data.ChatTemplate;

    private Tokenizer(TokenizerData data)
    {
        _data = data;
        var tokens = data.Tokens;
        int n = tokens.Length;
        _spm = data.Model switch
        {
            "llama" => true,
            "gpt2" => false,
            _ => throw new NotSupportedException($"tokenizer.ggml.model = '{data.Model}' is not supported (supported: llama, gpt2)"),
        };

        _tokenToId = new Dictionary<string, int>(n, StringComparer.Ordinal);
        _scores = new float[n];
        _attrs = new TokenAttributes[n];
        var texts = new string[n];
        for (int i = 0; i < n; i++)
        {
            string word = tokens[i].Length == 0 ? $"[EMPTY_{i}]" : tokens[i];
            texts[i] = word;
            _tokenToId[word] = i; // duplicates: the last id wins, as llama.cpp's token_to_id map
            _scores[i] = data.Scores is { } s && i < s.Length ? s[i] : 0f;
            _attrs[i] = data.TokenTypes is { } t && i < t.Length ? FromTokenType(t[i]) : TokenAttributes.Normal;
        }
        _tokenLookup = _tokenToId.GetAlternateLookup<ReadOnlySpan<char>>();

        if (!_spm)
        {
            _pre = data.Pre switch
            {
                "default" or "" => PreTokenizerKind.Default,
                "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "pixtral" => PreTokenizerKind.Llama3,
                "gpt-2" or "phi-2" => PreTokenizerKind.Gpt2,
                _ => throw new NotSupportedException(
                    $"tokenizer.ggml.pre = '{data.Pre}' is not supported (supported: default, llama-bpe, llama3, gpt-2)"),
            };
            _ignoreMerges = _pre == PreTokenizerKind.Llama3;
            var merges = data.Merges ?? throw new NotSupportedException("tokenizer.ggml.merges is missing (required for a gpt2 tokenizer)");
            _mergeRanks = new Dictionary<string, int>(merges.Length, StringComparer.Ordinal);
            for (int i = 0; i < merges.Length; i++)
            {
                // llama.cpp splits at the first space after position 0 and keeps the first rank of a repeated pair
                if (merges[i].IndexOf(' ', Math.Min(1, merges[i].Length)) < 0) continue;
                _mergeRanks.TryAdd(merges[i], i);
            }
            _mergeLookup = _mergeRanks.GetAlternateLookup<ReadOnlySpan<char>>();
        }

        BosId = ValidId(data.BosId, n);
        EosId = ValidId(data.EosId, n);
        AddBos = data.AddBos;
        AddEos = data.AddEos;

        if (_spm)
        {
            int unk = ValidId(data.UnknownId, n);
            for (int b = 0; b < 256; b++)
            {
                // byte_to_token: "<0xXX>", else the byte itself as a one-character token; llama.cpp throws when neither
                // exists, here the unknown token stands in
                int id = TextToToken($"<0x{b:X2}>");
                if (id < 0 && b < 0x80) id = TextToToken(((char)b).ToString());
                _spmByteTokens[b] = id >= 0 ? id : unk;
            }
        }

        (EotId, _endOfGeneration) = FindEndOfGeneration(data, texts);

        var special = new List<int>();
        for (int i = 0; i < n; i++)
            if ((_attrs[i] & (TokenAttributes.Control | TokenAttributes.UserDefined | TokenAttributes.Unknown)) != 0) special.Add(i);
        // llama.cpp: std::sort by UTF-8 length, descending (unstable); equal lengths keep id order here
        var byteLength = new int[n];
        foreach (int id in special) byteLength[id] = Encoding.UTF8.GetByteCount(texts[id]);
        _specialTokens = special.OrderByDescending(id => byteLength[id]).ThenBy(id => id).ToArray();

        (_pieceBytes, _pieceOffsets) = BuildPieces(texts);
    }

    public static Tokenizer Create(TokenizerData data) => new(data);

    private static int ValidId(int id, int n) => id >= 0 && id < n ? id : -1;

    private static TokenAttributes FromTokenType(int type) => type switch
    {
        1 => TokenAttributes.Normal,
        2 => TokenAttributes.Unknown,
        3 => TokenAttributes.Control,
        4 => TokenAttributes.UserDefined,
        5 => TokenAttributes.Unused,
        6 => TokenAttributes.Byte,
        _ => TokenAttributes.Undefined,
    };

    internal int TextToToken(ReadOnlySpan<char> text) => _tokenLookup.TryGetValue(text, out int id) ? id : -1;
    internal int TextToToken(string text) => _tokenToId.TryGetValue(text, out int id) ? id : -1;
    internal int MergeRank(ReadOnlySpan<char> leftSpaceRight) => _mergeLookup.TryGetValue(leftSpaceRight, out int rank) ? rank : -1;
    internal float Score(int id) => _scores[id];
    internal int SpmByteToken(byte b) => _spmByteTokens[b];

    public bool IsEndOfGeneration(int id) => (uint)id < (uint)_endOfGeneration.Length && _endOfGeneration[id];

    /// <summary>True for control and unknown tokens: the ones llama_token_to_piece renders only when asked
    /// (special = true).</summary>
    public bool IsSpecial(int id) => (uint)id < (uint)_attrs.Length && (_attrs[id] & (TokenAttributes.Control | TokenAttributes.Unknown)) != 0;

    /// <summary>The piece's bytes as llama_token_to_piece(special: true) gives them: control and user-defined tokens
    /// as their text, normal tokens decoded (U+2581 → space for SentencePiece, GPT-2 bytes for BPE), byte tokens as
    /// their byte, unused and undefined tokens empty.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id) =>
        (uint)id < (uint)_attrs.Length ? _pieceBytes.AsSpan(_pieceOffsets[id], _pieceOffsets[id + 1] - _pieceOffsets[id]) : default;

    /// <summary>As llama_token_to_piece(id, special): with special = false control and unknown tokens give nothing.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, bool special) => !special && IsSpecial(id) ? default : TokenBytes(id);

    /// <summary>The id of the token whose vocabulary text is exactly <paramref name="text"/>, or -1.</summary>
    public int FindToken(string text) => TextToToken(text);

    /// <summary>The token's text as stored in the vocabulary (e.g. "▁Hello", "Ġworld", "&lt;s&gt;").</summary>
    public string TokenText(int id) => _data.Tokens[id];

    /// <summary>Concatenated pieces as UTF-8 text (invalid sequences become U+FFFD).</summary>
    public string Decode(ReadOnlySpan<int> ids, bool special = true)
    {
        var bytes = new List<byte>();
        foreach (int id in ids) bytes.AddRange(TokenBytes(id, special));
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>llama_tokenize(text, add_special, parse_special). addSpecial adds BOS and EOS as the vocabulary asks
    /// (tokenizer.ggml.add_bos_token / add_eos_token); parseSpecial lets control tokens in the text (e.g. "&lt;s&gt;",
    /// "&lt;|eot_id|&gt;") become their ids. User-defined tokens are split out of the text either way.</summary>
    public int[] Encode(string text, bool addSpecial, bool parseSpecial)
    {
        var output = new List<int>(text.Length / 3 + 4);
        var fragments = Partition(text, parseSpecial);
        if (_spm)
        {
            if (addSpecial && AddBos && BosId >= 0) output.Add(BosId);
            var encoder = new SpmEncoder(this);
            bool prevSpecial = true; // the first text fragment gets the space prefix
            var sb = new StringBuilder();
            foreach (var f in fragments)
            {
                if (f.Token >= 0) { output.Add(f.Token); prevSpecial = true; continue; }
                sb.Clear();
                if (_data.AddSpacePrefix && prevSpecial) sb.Append(' ');
                sb.Append(text, f.Start, f.Length);
                sb.Replace(' ', '\u2581'); // llama_escape_whitespace
                encoder.Encode(sb.ToString(), output);
                prevSpecial = false;
            }
            if (addSpecial && AddEos && EosId >= 0) output.Add(EosId);
        }
        else
        {
            if (addSpecial && AddBos && BosId >= 0) output.Add(BosId);
            var encoder = new BpeEncoder(this, _pre, _ignoreMerges);
            foreach (var f in fragments)
            {
                if (f.Token >= 0) output.Add(f.Token);
                else encoder.Encode(text.AsSpan(f.Start, f.Length), output);
            }
            if (addSpecial && AddEos && EosId >= 0) output.Add(EosId);
        }
        return output.ToArray();
    }

    /// <summary>A text fragment [Start, Start + Length) of the input, or a special token (Token ≥ 0).</summary>
    private readonly record struct Fragment(int Start, int Length, int Token);

    /// <summary>llama.cpp's tokenizer_st_partition: for each special token, longest first, every occurrence in every
    /// remaining text fragment is cut out. Without parseSpecial only user-defined tokens are cut out.</summary>
    private List<Fragment> Partition(string text, bool parseSpecial)
    {
        var fragments = new List<Fragment>();
        if (text.Length == 0) return fragments;
        fragments.Add(new Fragment(0, text.Length, -1));
        var next = new List<Fragment>();
        foreach (int id in _specialTokens)
        {
            if (!parseSpecial && (_attrs[id] & (TokenAttributes.Control | TokenAttributes.Unknown)) != 0) continue;
            string special = _data.Tokens[id];
            if (special.Length == 0) continue;
            bool found = false;
            foreach (var f in fragments)
            {
                if (f.Token >= 0 || f.Length < special.Length) { next.Add(f); continue; }
                int start = f.Start, end = f.Start + f.Length;
                while (true)
                {
                    int match = text.AsSpan(start, end - start).IndexOf(special.AsSpan(), StringComparison.Ordinal);
                    if (match < 0) break;
                    found = true;
                    match += start;
                    if (match > start) next.Add(new Fragment(start, match - start, -1));
                    next.Add(new Fragment(match, special.Length, id));
                    start = match + special.Length;
                }
                if (end > start) next.Add(new Fragment(start, end - start, -1));
            }
            if (found) (fragments, next) = (next, fragments);
            next.Clear();
        }
        return fragments;
    }

    private (byte[] Bytes, int[] Offsets) BuildPieces(string[] texts)
    {
        var offsets = new int[texts.Length + 1];
        var buffer = new List<byte>(texts.Length * 8);
        for (int id = 0; id < texts.Length; id++)
        {
            offsets[id] = buffer.Count;
            AppendPiece(id, texts[id], buffer);
        }
        offsets[texts.Length] = buffer.Count;
        return (buffer.ToArray(), offsets);
    }

    /// <summary>llama_vocab::impl::token_to_piece with special = true (the cache llama.cpp builds at load).</summary>
    private void AppendPiece(int id, string text, List<byte> into)
    {
        var attr = _attrs[id];
        if ((attr & (TokenAttributes.Unknown | TokenAttributes.Control | TokenAttributes.UserDefined)) != 0)
        {
            into.AddRange(Encoding.UTF8.GetBytes(text));
        }
        else if ((attr & TokenAttributes.Normal) != 0)
        {
            if (_spm)
            {
                into.AddRange(Encoding.UTF8.GetBytes(text.Replace('\u2581', ' ')));
            }
            else
            {
                // llama_decode_text: each code point back to its byte; one outside the map is spelled out
                Span<byte> utf8 = stackalloc byte[4];
                foreach (var rune in text.EnumerateRunes())
                {
                    int b = rune.Value < ByteLevel.CharToByte.Length ? ByteLevel.CharToByte[rune.Value] : -1;
                    if (b >= 0) { into.Add((byte)b); continue; }
                    var sb = new StringBuilder("[UNK_BYTE_0x");
                    int nb = rune.EncodeToUtf8(utf8);
                    for (int j = 0; j < nb; j++) sb.Append(utf8[j].ToString("x2"));
                    sb.Append(text).Append(']');
                    into.AddRange(Encoding.UTF8.GetBytes(sb.ToString()));
                }
            }
        }
        else if ((attr & TokenAttributes.Byte) != 0)
        {
            // token_to_byte: the two hex digits of "<0xXX>"
            if (text.Length >= 5 && byte.TryParse(text.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b))
                into.Add(b);
        }
    }

    /// <summary>The end-of-generation set llama.cpp builds in load(): EOS, EOT and EOM, tokens with the known
    /// end-of-turn names, and the FIM pad/repo/file-separator tokens. Also marks those tokens control, as llama.cpp
    /// does, so they are split out when parsing special tokens.</summary>
    private (int Eot, bool[] Eog) FindEndOfGeneration(TokenizerData data, string[] texts)
    {
        int n = texts.Length;
        int eot = ValidId(data.EotId, n), eom = ValidId(data.EomId, n);
        var eog = new bool[n];
        // llama.cpp walks its text → id map, so a text repeated in the vocabulary counts once, with its last id
        bool Canonical(int id) => _tokenToId.GetValueOrDefault(texts[id], -1) == id;
        for (int id = 0; id < n; id++)
        {
            string t = texts[id];
            if (t.Length < 5 || t[0] is not ('<' or '[' or '_')) continue; // every name below starts so
            if (!Canonical(id)) continue;
            if (eot < 0 && t is "<|eot_id|>" or "<|im_end|>" or "<|end|>" or "<end_of_turn>" or "<|endoftext|>"
                    or "<|end_of_text|>" or "<EOT>" or "_<EOT>" or "[EOT]" or "<｜end▁of▁sentence｜>" or "<end_of_utterance>")
            {
                eot = id;
                _attrs[id] |= TokenAttributes.Control;
            }
            if (eom < 0 && t == "<|eom_id|>") { eom = id; _attrs[id] |= TokenAttributes.Control; }
            if (t is "<|fim_pad|>" or "<fim-pad>" or "<fim_pad>" or "<PAD>" or "[PAD]"
                    or "<|fim_repo|>" or "<|repo_name|>" or "<fim-repo>" or "<REPO>" or "<reponame>" or "<|file_sep|>")
            {
                eog[id] = true;
                _attrs[id] |= TokenAttributes.Control;
            }
        }
        for (int id = 0; id < n; id++)
        {
            if (texts[id].Length < 4 || texts[id][0] is not ('<' or '[' or '_')) continue;
            if (!Canonical(id)) continue;
            if (texts[id] is "<|eot_id|>" or "<|im_end|>" or "<|end|>" or "<|return|>" or "<|call|>" or "<|flush|>"
                    or "<|calls|>" or "<end_of_turn>" or "<|endoftext|>" or "</s>" or "<|eom_id|>" or "<EOT>" or "_<EOT>"
                    or "[EOT]" or "[EOS]" or "<|end_of_text|>" or "<end_of_utterance>" or "<eos>" or "<turn|>"
                    or "<|tool_response>" or "<｜end▁of▁sentence｜>" or "[e~[")
            {
                eog[id] = true;
                _attrs[id] |= TokenAttributes.Control;
            }
        }
        int eos = ValidId(data.EosId, n);
        if (eos >= 0) eog[eos] = true;
        if (eot >= 0) eog[eot] = true;
        if (eom >= 0) eog[eom] = true;
        return (eot, eog);
    }
}

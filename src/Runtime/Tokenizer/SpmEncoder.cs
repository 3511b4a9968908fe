namespace Engine.Runtime.Tokenization;

/// <summary>SentencePiece BPE as llama.cpp's llm_tokenizer_spm_session does it (llama-vocab.cpp; originally
/// llama.cpp commit 074bea2): the text is split into code points, then the adjacent pair whose concatenation is the
/// highest-scoring vocabulary entry is merged, repeatedly (ties: leftmost). Each final symbol is its token, or, when it
/// is not in the vocabulary, its UTF-8 bytes as byte tokens &lt;0xXX&gt;. Works on UTF-16 spans of the escaped
/// text; a symbol is one code point (one char or a surrogate pair), as llama.cpp's is one UTF-8 sequence.</summary>
internal sealed class SpmEncoder(Tokenizer vocab)
{

    private readonly record struct Bigram(int Left, int Right, float Score, int Length);

    /// <summary>Highest score first; equal scores: smaller left index first (llm_bigram_spm::comparator).</summary>
    private sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();
        public int Compare(Bigram a, Bigram b) =>
            a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left);
    }

    private readonly List<TokenSymbol> _symbols = new();
    private readonly PriorityQueue<Bigram, Bigram> _queue = new(BigramOrder.Instance);

    /// <summary>Tokenizes <paramref name="text"/> (spaces already escaped to U+2581) and appends the ids.</summary>
    public void Encode(ReadOnlySpan<char> text, List<int> output)
    {
        _symbols.Clear();
        _queue.Clear();
        for (int offs = 0; offs < text.Length;)
        {
            int n = char.IsHighSurrogate(text[offs]) && offs + 1 < text.Length && char.IsLowSurrogate(text[offs + 1]) ? 2 : 1;
            int index = _symbols.Count;
            offs += n;
            _symbols.Add(new TokenSymbol { Start = offs - n, Length = n, Prev = index - 1, Next = offs == text.Length ? -1 : index + 1 });
        }
        for (int i = 1; i < _symbols.Count; i++) TryAddBigram(text, i - 1, i);

        while (_queue.TryDequeue(out var bigram, out _))
        {
            if (!TokenSymbols.TryMerge(_symbols, bigram.Left, bigram.Right, bigram.Length)) continue;
            var merged = _symbols[bigram.Left];
            TryAddBigram(text, merged.Prev, bigram.Left);
            TryAddBigram(text, bigram.Left, merged.Next);
        }

        if (_symbols.Count == 0) return;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i != -1; i = _symbols[i].Next)
        {
            var sym = _symbols[i];
            var piece = text.Slice(sym.Start, sym.Length);
            // llama.cpp's resegment(): a symbol is either a vocabulary entry (every merge result is one) or a single
            // code point that is not; the latter falls back to its bytes.
            int id = vocab.TextToToken(piece);
            if (id >= 0) { output.Add(id); continue; }
            int nBytes = System.Text.Encoding.UTF8.GetBytes(piece, utf8);
            for (int j = 0; j < nBytes; j++) output.Add(vocab.SpmByteToken(utf8[j]));
        }
    }

    private void TryAddBigram(ReadOnlySpan<char> text, int left, int right)
    {
        if (left == -1 || right == -1) return;
        var l = _symbols[left];
        int length = l.Length + _symbols[right].Length;
        int id = vocab.TextToToken(text.Slice(l.Start, length));
        if (id < 0) return;
        var bigram = new Bigram(left, right, vocab.Score(id), length);
        _queue.Enqueue(bigram, bigram);
    }
}

using System.Text;

namespace Engine.Runtime.Tokenization;

/// <summary>Byte-level BPE as llama.cpp's llm_tokenizer_bpe_session does it (llama-vocab.cpp): the pre-tokenizer
/// splits the text into words; each word's UTF-8 bytes are mapped to GPT-2's printable characters; inside a word the
/// adjacent pair with the lowest merge rank (order in tokenizer.ggml.merges) is merged, repeatedly (ties: leftmost).
/// With ignore_merges (Llama 3) a word that is itself a token is emitted whole.</summary>
internal sealed class BpeEncoder(Tokenizer vocab, PreTokenizerKind pre, bool ignoreMerges)
{

    private readonly record struct Bigram(int Left, int Right, int Rank, int Length);

    /// <summary>Lowest rank first; equal ranks: smaller left index first (llm_bigram_bpe::comparator).</summary>
    private sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();
        public int Compare(Bigram a, Bigram b) => a.Rank != b.Rank ? a.Rank.CompareTo(b.Rank) : a.Left.CompareTo(b.Left);
    }

    private readonly List<int> _codePoints = new();
    private readonly List<int> _words = new();
    private readonly List<TokenSymbol> _symbols = new();
    private readonly PriorityQueue<Bigram, Bigram> _queue = new(BigramOrder.Instance);
    private char[] _word = new char[64];
    private char[] _pair = new char[128];
    private readonly byte[] _utf8 = new byte[4];

    public void Encode(ReadOnlySpan<char> text, List<int> output)
    {
        _codePoints.Clear();
        UnicodeFlags.ToCodePoints(text, _codePoints);
        var cps = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_codePoints);
        PreTokenizer.Split(pre, cps, _words);
        int start = 0;
        foreach (int len in _words)
        {
            EncodeWord(cps.Slice(start, len), output);
            start += len;
        }
    }

    private void EncodeWord(ReadOnlySpan<int> cps, List<int> output)
    {
        // byte-level encoding: every UTF-8 byte becomes one printable char (unicode_byte_encoding_process)
        int n = 0;
        foreach (int cp in cps)
        {
            int nb = new Rune(cp).EncodeToUtf8(_utf8);
            if (n + nb > _word.Length) Array.Resize(ref _word, _word.Length * 2);
            for (int j = 0; j < nb; j++) _word[n++] = ByteLevel.ByteToChar[_utf8[j]];
        }
        var word = _word.AsSpan(0, n);

        if (ignoreMerges)
        {
            int whole = vocab.TextToToken(word);
            if (whole >= 0) { output.Add(whole); return; }
        }

        _symbols.Clear();
        _queue.Clear();
        for (int i = 0; i < n; i++)
            _symbols.Add(new TokenSymbol { Start = i, Length = 1, Prev = i - 1, Next = i + 1 == n ? -1 : i + 1 });
        for (int i = 1; i < n; i++) AddBigram(word, i - 1, i);

        while (_queue.TryDequeue(out var bigram, out _))
        {
            if (!TokenSymbols.TryMerge(_symbols, bigram.Left, bigram.Right, bigram.Length)) continue;
            var merged = _symbols[bigram.Left];
            AddBigram(word, merged.Prev, bigram.Left);
            AddBigram(word, bigram.Left, merged.Next);
        }

        foreach (var sym in _symbols)
        {
            if (sym.Length == 0) continue;
            var piece = word.Slice(sym.Start, sym.Length);
            int id = vocab.TextToToken(piece);
            if (id >= 0) { output.Add(id); continue; }
            // not a token: each UTF-8 byte of the (byte-encoded) piece as a one-byte token, skipping bytes without
            // one, as llama.cpp does; only ASCII can be a one-byte string here
            foreach (char c in piece)
            {
                int nb = new Rune(c).EncodeToUtf8(_utf8);
                for (int j = 0; j < nb; j++)
                {
                    if (_utf8[j] >= 0x80) continue;
                    char single = (char)_utf8[j];
                    int b = vocab.TextToToken(new ReadOnlySpan<char>(in single));
                    if (b >= 0) output.Add(b);
                }
            }
        }
    }

    private void AddBigram(ReadOnlySpan<char> word, int left, int right)
    {
        if (left == -1 || right == -1) return;
        var l = _symbols[left];
        var r = _symbols[right];
        int keyLength = l.Length + 1 + r.Length;
        if (keyLength > _pair.Length) _pair = new char[Math.Max(keyLength, _pair.Length * 2)];
        word.Slice(l.Start, l.Length).CopyTo(_pair);
        _pair[l.Length] = ' ';
        word.Slice(r.Start, r.Length).CopyTo(_pair.AsSpan(l.Length + 1));
        int rank = vocab.MergeRank(_pair.AsSpan(0, keyLength));
        if (rank < 0) return;
        var bigram = new Bigram(left, right, rank, l.Length + r.Length);
        _queue.Enqueue(bigram, bigram);
    }
}

namespace Engine.Runtime.Tokenization;

/// <summary>A piece of the word being merged: a span of the text linked to its neighbours (llama.cpp's llm_symbol).
/// Length 0 marks a symbol merged away.</summary>
internal struct TokenSymbol { public int Start, Length, Prev, Next; }

/// <summary>The merge step both SentencePiece and BPE encoders repeat: a queued pair of neighbours becomes one symbol.</summary>
internal static class TokenSymbols
{
    /// <summary>Merges <paramref name="right"/> into <paramref name="left"/>, unless the pair is stale: a side was merged
    /// away or grew since the pair (of total <paramref name="length"/>) was queued. llama.cpp compares the texts;
    /// lengths suffice because symbols only grow to the right. Returns false for a stale pair.</summary>
    public static bool TryMerge(List<TokenSymbol> symbols, int left, int right, int length)
    {
        var l = symbols[left];
        var r = symbols[right];
        if (l.Length == 0 || r.Length == 0 || l.Length + r.Length != length) return false;
        l.Length += r.Length;
        r.Length = 0;
        l.Next = r.Next;
        if (r.Next >= 0)
        {
            var after = symbols[r.Next];
            after.Prev = left;
            symbols[r.Next] = after;
        }
        symbols[left] = l;
        symbols[right] = r;
        return true;
    }
}

namespace Engine.Runtime.Tokenization;

/// <summary>Which word splitter a byte-level BPE vocabulary uses (tokenizer.ggml.pre), mapped as llama-vocab.cpp
/// load() maps the names it knows for Llama-family models.</summary>
internal enum PreTokenizerKind { Default, Gpt2, Llama3 }

/// <summary>Splits text into the words that BPE merges run inside, on code points, as llama.cpp's unicode.cpp does.
/// llama.cpp matches the two regexes below with hand-written splitters (unicode_regex_split_custom_gpt2 and
/// _llama3), which differ from a backtracking regex engine in corner cases; these follow those splitters step by
/// step so the words are the same. Output: word lengths in code points, in order, covering the input.</summary>
internal static class PreTokenizer
{
    public static void Split(PreTokenizerKind kind, ReadOnlySpan<int> cps, List<int> words)
    {
        words.Clear();
        if (cps.Length == 0) return;
        switch (kind)
        {
            case PreTokenizerKind.Llama3: SplitLlama3(cps, 0, cps.Length, words); break;
            case PreTokenizerKind.Gpt2: SplitGpt2(cps, 0, cps.Length, words); break;
            default: SplitDefault(cps, words); break;
        }
    }

    /// <summary>One segment [ini, end) of the code points: reads outside it look like "no character" (llama.cpp's
    /// OUT_OF_RANGE code point with all flags clear), which is what ends every run at the segment edge.</summary>
    private ref struct Segment(ReadOnlySpan<int> cps, int start, int end, List<int> words)
    {
        private readonly ReadOnlySpan<int> _cps = cps;
        private readonly int _start = start;
        private int _prevEnd = start;
        public const int OutOfRange = -1;

        public readonly int Cpt(int pos) => pos >= _start && pos < end ? _cps[pos] : OutOfRange;
        public readonly bool InRange(int pos) => pos >= _start && pos < end;
        public readonly bool Letter(int pos) => InRange(pos) && UnicodeFlags.IsLetter(_cps[pos]);
        public readonly bool Number(int pos) => InRange(pos) && UnicodeFlags.IsNumber(_cps[pos]);
        public readonly bool Space(int pos) => InRange(pos) && UnicodeFlags.IsWhitespace(_cps[pos]);
        /// <summary>[^\s\p{L}\p{N}] on a character that exists.</summary>
        public readonly bool Other(int pos) => InRange(pos) && !Space(pos) && !Letter(pos) && !Number(pos);

        public int AddWord(int wordEnd)
        {
            int len = wordEnd - _prevEnd;
            if (len > 0) words.Add(len);
            _prevEnd = wordEnd;
            return len;
        }
    }

    // GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    private static void SplitGpt2(ReadOnlySpan<int> cps, int ini, int end, List<int> words)
    {
        var s = new Segment(cps, ini, end, words);
        for (int pos = ini; pos < end;)
        {
            int cpt = s.Cpt(pos);
            if (cpt == '\'' && pos + 1 < end)
            {
                int next = s.Cpt(pos + 1);
                if (next is 's' or 't' or 'm' or 'd') { pos += s.AddWord(pos + 2); continue; }
                if (pos + 2 < end)
                {
                    int next2 = s.Cpt(pos + 2);
                    if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l'))
                    { pos += s.AddWord(pos + 3); continue; }
                }
            }
            int probe = cpt == ' ' ? pos + 1 : pos; // " ?" prefix: classify the character after a space
            if (s.Letter(probe))
            {
                pos = probe + 1;
                while (s.Letter(pos)) pos++;
                s.AddWord(pos);
                continue;
            }
            if (s.Number(probe))
            {
                pos = probe + 1;
                while (s.Number(pos)) pos++;
                s.AddWord(pos);
                continue;
            }
            if (s.Other(probe))
            {
                pos = probe + 1;
                while (s.Other(pos)) pos++;
                s.AddWord(pos);
                continue;
            }
            int spaces = 0;
            while (s.Space(pos + spaces)) spaces++;
            if (spaces > 1 && s.Cpt(pos + spaces) != Segment.OutOfRange) // \s+(?!\S): leave the last space to the next word
            {
                pos += spaces - 1;
                s.AddWord(pos);
                continue;
            }
            if (spaces > 0) { pos += spaces; s.AddWord(pos); continue; }
            s.AddWord(++pos);
        }
    }

    // Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    private static void SplitLlama3(ReadOnlySpan<int> cps, int ini, int end, List<int> words)
    {
        var s = new Segment(cps, ini, end, words);
        for (int pos = ini; pos < end;)
        {
            int cpt = s.Cpt(pos);
            if (cpt == '\'' && pos + 1 < end)
            {
                int next = AsciiLower(s.Cpt(pos + 1));
                if (next is 's' or 't' or 'm' or 'd') { pos += s.AddWord(pos + 2); continue; }
                if (pos + 2 < end)
                {
                    int next2 = AsciiLower(s.Cpt(pos + 2));
                    if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l'))
                    { pos += s.AddWord(pos + 3); continue; }
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+ (llama.cpp also takes a whitespace as the optional lead character)
            if (!(cpt == '\r' || cpt == '\n' || s.Number(pos)))
            {
                if (s.Letter(pos) || s.Letter(pos + 1))
                {
                    pos++;
                    while (s.Letter(pos)) pos++;
                    s.AddWord(pos);
                    continue;
                }
            }
            if (s.Number(pos)) // \p{N}{1,3}
            {
                int first = pos;
                while (s.Number(pos))
                {
                    if (++pos - first >= 3) { s.AddWord(pos); first = pos; }
                }
                s.AddWord(pos);
                continue;
            }
            // " ?[^\s\p{L}\p{N}]+[\r\n]*"; llama.cpp tests the character at pos for existence, the one after a space
            // for class
            int probe = cpt == ' ' ? pos + 1 : pos;
            if (s.Other(probe) && s.InRange(pos))
            {
                pos = probe + 1;
                while (s.Other(pos)) pos++;
                while (s.Cpt(pos) is '\r' or '\n') pos++;
                s.AddWord(pos);
                continue;
            }
            int spaces = 0, lastNewlineEnd = 0;
            while (s.Space(pos + spaces))
            {
                if (s.Cpt(pos + spaces) is '\r' or '\n') lastNewlineEnd = pos + spaces + 1;
                spaces++;
            }
            if (lastNewlineEnd > 0) { pos = lastNewlineEnd; s.AddWord(pos); continue; } // \s*[\r\n]+
            if (spaces > 1 && s.Cpt(pos + spaces) != Segment.OutOfRange) { pos += spaces - 1; s.AddWord(pos); continue; }
            if (spaces > 0) { pos += spaces; s.AddWord(pos); continue; }
            s.AddWord(++pos);
        }
    }

    private static int AsciiLower(int cp) => cp is >= 'A' and <= 'Z' ? cp + 32 : cp;

    /// <summary>llama.cpp's "default" BPE pre-tokenizer (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_DEFAULT), four regexes
    /// applied one after another, each splitting the words of the previous into matches and the gaps between:
    /// [\p{P}\$\+&lt;=&gt;\^~\|]+ , the GPT-2 regex, \p{N}+ , [0-9][0-9][0-9]. llama.cpp runs the first, third and fourth
    /// through std::regex on a "collapsed" text (every non-ASCII code point replaced by one byte per category),
    /// which is what the predicates below test.</summary>
    private static void SplitDefault(ReadOnlySpan<int> cps, List<int> words)
    {
        var current = new List<int> { cps.Length };
        var next = new List<int>();

        SplitRuns(cps, current, next, IsDefaultPunctuation);
        (current, next) = (next, current);

        next.Clear();
        int start = 0;
        foreach (int len in current) { SplitGpt2(cps, start, start + len, next); start += len; }
        (current, next) = (next, current);

        SplitRuns(cps, current, next, cp => cp < 0x80 ? (uint)(cp - '0') <= 9 : !UnicodeFlags.IsWhitespace(cp) && IsOnlyNumber(cp));
        (current, next) = (next, current);

        // [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits
        next.Clear();
        start = 0;
        foreach (int len in current)
        {
            int end = start + len, gapStart = start;
            for (int i = start; i + 3 <= end;)
            {
                if (IsAsciiDigit(cps[i]) && IsAsciiDigit(cps[i + 1]) && IsAsciiDigit(cps[i + 2]))
                {
                    if (i > gapStart) next.Add(i - gapStart);
                    next.Add(3);
                    i += 3;
                    gapStart = i;
                }
                else i++;
            }
            if (end > gapStart) next.Add(end - gapStart);
            start = end;
        }
        words.AddRange(next);
    }

    private static bool IsAsciiDigit(int cp) => (uint)(cp - '0') <= 9;

    // In the collapsed text a non-ASCII code point matches a category class only when whitespace is not set and that
    // category is its only one (unicode.cpp k_ucat_cpt); letters, numbers and punctuation are disjoint categories.
    private static bool IsOnlyNumber(int cp) => UnicodeFlags.IsNumber(cp);

    private static bool IsDefaultPunctuation(int cp)
    {
        if (cp < 0x80) return cp is (>= '!' and <= '#') or (>= '%' and <= '*') or (>= ',' and <= '/') or ':' or ';'
            or '?' or '@' or (>= '[' and <= ']') or '_' or '{' or '}' or '$' or '+' or '<' or '=' or '>' or '^' or '~' or '|';
        return !UnicodeFlags.IsWhitespace(cp) && UnicodeFlags.IsPunctuation(cp);
    }

    /// <summary>Splits every word of <paramref name="current"/> into maximal runs of characters matching
    /// <paramref name="inClass"/> and the gaps between them.</summary>
    private static void SplitRuns(ReadOnlySpan<int> cps, List<int> current, List<int> next, Func<int, bool> inClass)
    {
        next.Clear();
        int start = 0;
        foreach (int len in current)
        {
            int end = start + len, runStart = start;
            bool inRun = len > 0 && inClass(cps[start]);
            for (int i = start + 1; i <= end; i++)
            {
                bool atEnd = i == end;
                bool match = !atEnd && inClass(cps[i]);
                if (atEnd || match != inRun)
                {
                    next.Add(i - runStart);
                    runStart = i;
                    inRun = match;
                }
            }
            start = end;
        }
    }
}

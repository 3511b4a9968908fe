using System.Globalization;

namespace Engine.Runtime.Tokenizer;

/// <summary>The code-point classes llama.cpp's pre-tokenizers test (unicode.h unicode_cpt_flags): letter \p{L},
/// number \p{N}, punctuation \p{P}, and whitespace. Whitespace is llama.cpp's fixed set (unicode-data.cpp
/// unicode_set_whitespace: Unicode White_Space), not .NET's char.IsWhiteSpace, which also takes U+001C..U+001F.
/// Categories come from .NET's Unicode tables; llama.cpp generated its own from UnicodeData.txt, so the two agree
/// except on code points assigned in one Unicode version and not the other.</summary>
internal static class UnicodeFlags
{
    public static bool IsWhitespace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D => true,
        0x20 or 0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A => true,
        0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    public static bool IsLetter(int cp)
    {
        if (cp < 0x80) return (uint)((cp | 0x20) - 'a') <= 'z' - 'a';
        return Category(cp) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter;
    }

    public static bool IsNumber(int cp)
    {
        if (cp < 0x80) return (uint)(cp - '0') <= 9;
        return Category(cp) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
            or UnicodeCategory.OtherNumber;
    }

    public static bool IsPunctuation(int cp) => Category(cp) is UnicodeCategory.ConnectorPunctuation
        or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
        or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
        or UnicodeCategory.OtherPunctuation;

    private static UnicodeCategory Category(int cp) =>
        cp > 0x10FFFF ? UnicodeCategory.OtherNotAssigned : CharUnicodeInfo.GetUnicodeCategory(cp);

    /// <summary>Code points of a UTF-16 string; a lone surrogate becomes U+FFFD, as UTF-8 encoding would make it.</summary>
    public static int ToCodePoints(ReadOnlySpan<char> text, List<int> into)
    {
        int start = into.Count;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                into.Add(char.ConvertToUtf32(c, text[i + 1]));
                i++;
            }
            else into.Add(char.IsSurrogate(c) ? 0xFFFD : c);
        }
        return into.Count - start;
    }
}

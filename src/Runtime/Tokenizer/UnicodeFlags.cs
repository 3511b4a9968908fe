using System.Globalization;

namespace Engine.Runtime.Tokenization;

/// <summary>The code-point classes llama.cpp's pre-tokenizers test (unicode.h unicode_cpt_flags): letter \p{L},
/// number \p{N}, punctuation \p{P}, and whitespace. Whitespace is llama.cpp's fixed set (unicode-data.cpp
/// unicode_set_whitespace: Unicode White_Space), not .NET's char.IsWhiteSpace, which also takes U+001C..U+001F.
/// Categories come from .NET's Unicode tables (Unicode 16.0 in .NET 10); llama.cpp's (unicode-data.cpp at 80fb11ac)
/// were generated from an earlier UnicodeData.txt and leave the letters, digits and punctuation that Unicode 16.0
/// added undefined, so those code points are masked out below. The mask was computed by comparing every code point
/// of the two tables; it is the whole difference in the \p{L}, \p{N} and \p{P} classes.</summary>
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

    /// <summary>Inclusive ranges: assigned as L, N or P by .NET's Unicode, undefined in llama.cpp's table.</summary>
    private static readonly (int First, int Last)[] NewerThanLlamaCpp =
    [
        (0x1B4E, 0x1B4F), (0x1B7F, 0x1B7F), (0x1C89, 0x1C8A), (0xA7CB, 0xA7CD),
        (0xA7DA, 0xA7DC), (0x105C0, 0x105F3), (0x10D40, 0x10D65), (0x10D6E, 0x10D85),
        (0x10EC2, 0x10EC4), (0x11380, 0x11389), (0x1138B, 0x1138B), (0x1138E, 0x1138E),
        (0x11390, 0x113B5), (0x113B7, 0x113B7), (0x113D1, 0x113D1), (0x113D3, 0x113D5),
        (0x113D7, 0x113D8), (0x116D0, 0x116E3), (0x11BC0, 0x11BE1), (0x11BF0, 0x11BF9),
        (0x13460, 0x143FA), (0x16100, 0x1611D), (0x16130, 0x16139), (0x16D40, 0x16D79),
        (0x18CFF, 0x18CFF), (0x1CCF0, 0x1CCF9), (0x1E5D0, 0x1E5ED), (0x1E5F0, 0x1E5FA),
        (0x1E5FF, 0x1E5FF)
    ];

    private static bool IsNewerThanLlamaCpp(int cp)
    {
        if (cp < NewerThanLlamaCpp[0].First) return false;
        foreach (var (first, last) in NewerThanLlamaCpp)
        {
            if (cp < first) return false;
            if (cp <= last) return true;
        }
        return false;
    }

    public static bool IsLetter(int cp)
    {
        if (cp < 0x80) return (uint)((cp | 0x20) - 'a') <= 'z' - 'a';
        return !IsNewerThanLlamaCpp(cp) && Category(cp) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter;
    }

    public static bool IsNumber(int cp)
    {
        if (cp < 0x80) return (uint)(cp - '0') <= 9;
        return !IsNewerThanLlamaCpp(cp) && Category(cp) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber
            or UnicodeCategory.OtherNumber;
    }

    public static bool IsPunctuation(int cp) => !IsNewerThanLlamaCpp(cp) && Category(cp) is UnicodeCategory.ConnectorPunctuation
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

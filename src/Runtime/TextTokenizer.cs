using Engine.Plans.Model;

namespace Engine.Runtime;

/// <summary>What ntrun needs from a tokenizer (the Engine.Runtime.Tokenizer API: Encode, TokenBytes, BosId,
/// IsEndOfGeneration, a streaming decoder). The tokenizer lives in another area; <see cref="TextTokenizers"/>
/// is where it is plugged in.</summary>
public interface ITextTokenizer
{
    int BosId { get; }
    int[] Encode(string text, bool addSpecial, bool parseSpecial);
    bool IsEndOfGeneration(int id);
    /// <summary>Appends the text of <paramref name="id"/> (UTF-8 split across tokens completed) to the output.</summary>
    string DecodeStreaming(int id);
    /// <summary>Any bytes the streaming decoder still holds, at the end of generation.</summary>
    string Flush();
}

/// <summary>The factory ntrun uses for text; null until a tokenizer is linked in.</summary>
public static class TextTokenizers
{
    public static Func<TokenizerData, ITextTokenizer>? Factory { get; set; }
}

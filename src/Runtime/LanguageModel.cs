using Engine.Plans.Model;

namespace Engine.Runtime;

/// <summary>The forward pass every backend offers to a <see cref="Session"/>.</summary>
public interface ILanguageModel
{
    ModelConfig Config { get; }
    int MaxContext { get; }
    /// <summary>Evaluates <paramref name="tokens"/> at positions startPos.. and writes logits: one row
    /// (n_vocab, the last token's) or one row per token (tokens.Length × n_vocab), chosen by the span's length.</summary>
    void Forward(ReadOnlySpan<int> tokens, int startPos, Span<float> logits);
}

/// <summary>A backend that can decode greedily on its device: each step's argmax (the plan's argmax op) becomes the
/// next step's input there, so no logits cross to the host and the next step is queued before the host has read the
/// token (<see cref="Session.Generate"/> takes this path for plain greedy sampling when nobody reads the logits).</summary>
public interface IGreedyDecoder
{
    /// <summary>Whether <see cref="DecodeGreedy"/> runs on the device for this plan (else sample on the host).</summary>
    bool CanDecodeGreedy { get; }

    /// <summary>Evaluates <paramref name="token"/> at <paramref name="startPos"/>, then each step's argmax at the
    /// following positions, for at most <paramref name="maxSteps"/> steps (positions must stay inside the context);
    /// calls <paramref name="onToken"/> with each step's argmax in order until it returns false. Steps after the one
    /// whose token ended it may have run (their cache rows lie past the delivered history: the next evaluation
    /// overwrites them). Returns the number of tokens delivered.</summary>
    int DecodeGreedy(int token, int startPos, int maxSteps, Func<int, bool> onToken);
}

/// <summary>The argument checks every backend's <see cref="ILanguageModel.Forward"/> makes before touching a buffer
/// (validate at the edge: the kernels behind it trust their inputs).</summary>
public static class ForwardArguments
{
    /// <summary>Throws on an empty batch, positions past the context, a logits span of the wrong size or a token id
    /// outside the vocabulary; returns true when <paramref name="logits"/> wants one row per token.</summary>
    public static bool Check(ILanguageModel model, ReadOnlySpan<int> tokens, int startPos, Span<float> logits)
    {
        int n = tokens.Length, vocab = model.Config.VocabSize, context = model.MaxContext;
        if (n == 0) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        if (startPos < 0 || startPos > context - n)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions {startPos}..{startPos + n - 1} exceed the context of {context}");
        bool all = logits.Length == (long)n * vocab;
        if (!all && logits.Length != vocab)
            throw new ArgumentException($"logits span holds {logits.Length} floats: expected {vocab} (last token) or {(long)n * vocab} (every token)", nameof(logits));
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), t, $"token id outside the vocabulary (0..{vocab - 1})");
        return all;
    }

    /// <summary>The checks of <see cref="IGreedyDecoder.DecodeGreedy"/>: a token inside the vocabulary, and every step's
    /// position (startPos .. startPos + maxSteps − 1) inside the context.</summary>
    public static void CheckGreedy(ILanguageModel model, int token, int startPos, int maxSteps)
    {
        int vocab = model.Config.VocabSize, context = model.MaxContext;
        if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{vocab - 1})");
        if (startPos < 0 || maxSteps < 0 || startPos > context - maxSteps)
            throw new ArgumentOutOfRangeException(nameof(maxSteps), $"positions {startPos}..{startPos + maxSteps - 1} exceed the context of {context}");
    }
}

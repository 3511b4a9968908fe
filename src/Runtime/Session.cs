using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;

namespace Engine.Runtime;

/// <summary>One conversation with a model: feed a prompt, then sample and feed tokens one at a time. Owns the
/// token history and one row of logits; generation allocates nothing per token.</summary>
public sealed class Session
{
    private readonly ILanguageModel _model;
    private readonly Sampler _sampler;
    private readonly float[] _logits;   // [n_vocab] logits after the last evaluated token
    private readonly int[] _history;    // [MaxContext] every token evaluated so far

    public int Position { get; private set; }
    public ReadOnlySpan<float> Logits => _logits;
    public ReadOnlySpan<int> History => _history.AsSpan(0, Position);
    public ILanguageModel Model => _model;
    public int ContextRemaining => _model.MaxContext - Position;

    public Session(ILanguageModel model, SamplerSettings sampling)
    {
        _model = model;
        _sampler = new Sampler(model.Config.VocabSize, sampling);
        _logits = new float[model.Config.VocabSize];
        _history = new int[model.MaxContext];
    }

    /// <summary>Forgets the history; the KV cache is overwritten from position 0 on.</summary>
    public void Reset() => Position = 0;

    /// <summary>Evaluates tokens (a prompt in one batched pass, or one generated token) after the history.</summary>
    public void Feed(ReadOnlySpan<int> tokens)
    {
        if (tokens.Length > ContextRemaining)
            throw new InvalidOperationException($"{tokens.Length} more tokens exceed the context ({Position} of {_model.MaxContext} used)");
        _model.Forward(tokens, Position, _logits);
        tokens.CopyTo(_history.AsSpan(Position));
        Position += tokens.Length;
    }

    /// <summary>Evaluates tokens and writes the logits of every one of them into <paramref name="allLogits"/>
    /// (tokens.Length × n_vocab), for teacher forcing and perplexity.</summary>
    public void Feed(ReadOnlySpan<int> tokens, Span<float> allLogits)
    {
        int vocab = _logits.Length;
        if (allLogits.Length != (long)tokens.Length * vocab)
            throw new ArgumentException($"expected {(long)tokens.Length * vocab} floats for {tokens.Length} rows of logits", nameof(allLogits));
        if (tokens.Length > ContextRemaining)
            throw new InvalidOperationException($"{tokens.Length} more tokens exceed the context ({Position} of {_model.MaxContext} used)");
        _model.Forward(tokens, Position, allLogits);
        allLogits.Slice((tokens.Length - 1) * vocab, vocab).CopyTo(_logits);
        tokens.CopyTo(_history.AsSpan(Position));
        Position += tokens.Length;
    }

    /// <summary>Evaluates one token.</summary>
    public void Feed(int token) => Feed([token]);

    /// <summary>Samples the next token from the current logits (the history feeds the repetition penalty).</summary>
    public int Sample() => _sampler.Sample(_logits, History);

    /// <summary>Samples up to <paramref name="maxTokens"/> tokens, feeding each back, and calls
    /// <paramref name="onToken"/> with each one (and the logits it was sampled from) before it is fed. Stops at an
    /// end-of-generation token (not fed), a full context, or cancellation. Returns the number of tokens produced.
    /// Where the sampling is plain greedy (<see cref="SamplerSettings.IsPlainGreedy"/>), the caller does not want the
    /// logits (<paramref name="withLogits"/> false: onToken then gets an empty span) and the model decodes greedily
    /// on its device (<see cref="IGreedyDecoder"/>), the tokens after the first come from the device's argmax: the
    /// same tokens, with no logits copied out; <see cref="Logits"/> then keep the row the first token was sampled from.</summary>
    public int Generate(int maxTokens, Func<int, bool> isEndOfGeneration, TokenCallback onToken, CancellationToken cancel = default,
        bool withLogits = true)
    {
        if (!withLogits && _sampler.Settings.IsPlainGreedy && _model is IGreedyDecoder { CanDecodeGreedy: true } device)
            return GenerateOnDevice(device, maxTokens, isEndOfGeneration, onToken, cancel);
        int produced = 0;
        while (produced < maxTokens && !cancel.IsCancellationRequested)
        {
            int token = Sample();
            bool end = isEndOfGeneration(token);
            onToken(token, _logits);
            produced++;
            if (end || produced == maxTokens || ContextRemaining == 0) break;
            Feed(token);
        }
        return produced;
    }

    /// <summary><see cref="Generate"/> with the device's argmax: the first token from the current logits, then every
    /// device step feeds the token before and yields the next. Each delivered token accounts for the one its step fed
    /// (history, position), as <see cref="Feed(int)"/> would have.</summary>
    private int GenerateOnDevice(IGreedyDecoder device, int maxTokens, Func<int, bool> isEndOfGeneration, TokenCallback onToken,
        CancellationToken cancel)
    {
        if (maxTokens <= 0 || cancel.IsCancellationRequested) return 0;
        int token = Sample();
        bool end = isEndOfGeneration(token);
        onToken(token, default);
        int produced = 1;
        if (end || produced == maxTokens || ContextRemaining == 0) return produced;
        device.DecodeGreedy(token, Position, Math.Min(maxTokens - 1, ContextRemaining), next =>
        {
            _history[Position++] = token;
            token = next;
            bool stop = isEndOfGeneration(next);
            onToken(next, default);
            produced++;
            return !(stop || produced == maxTokens || ContextRemaining == 0 || cancel.IsCancellationRequested);
        });
        return produced;
    }
}

/// <summary>Receives a generated token and the logits it was sampled from.</summary>
public delegate void TokenCallback(int token, ReadOnlySpan<float> logits);

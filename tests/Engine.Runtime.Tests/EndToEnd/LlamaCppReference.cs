using System.Globalization;
using System.Runtime.InteropServices;
using Engine.Runtime.Sampling;
using Engine.Tests;

namespace Engine.Runtime.Tests.EndToEnd;

/// <summary>A llama.cpp golden from models/ (MODELS.md): prompt ids, greedy ids and, for NAME.ref.txt, the full
/// logits of every generated position.</summary>
public sealed record LlamaCppReference(int[] PromptTokens, int[] GenTokens)
{
    public static LlamaCppReference Load(string file)
    {
        int[]? prompt = null, gen = null;
        foreach (var line in File.ReadLines(RepoPaths.Model(file)))
        {
            if (line.StartsWith("prompt_tokens:", StringComparison.Ordinal)) prompt = Ids(line);
            else if (line.StartsWith("gen_tokens:", StringComparison.Ordinal)) gen = Ids(line);
        }
        return new(prompt ?? throw new InvalidDataException(file + ": no prompt_tokens"),
            gen ?? throw new InvalidDataException(file + ": no gen_tokens"));
    }

    public static float[] Logits(string file) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(RepoPaths.Model(file))).ToArray();

    /// <summary>The prompt and the reference's own tokens but the last: fed in one pass, row np − 1 + i of its logits is
    /// the reference's generated position i (teacher forcing).</summary>
    public int[] TeacherForcedSequence => [.. PromptTokens, .. GenTokens[..^1]];

    /// <summary>The model's logits at the reference's generated positions (GenTokens.Length rows of n_vocab), from one
    /// teacher-forced pass of <see cref="TeacherForcedSequence"/>.</summary>
    public float[] TeacherForcedLogits(ILanguageModel model)
    {
        int vocab = model.Config.VocabSize;
        int[] sequence = TeacherForcedSequence;
        var all = new float[(long)sequence.Length * vocab];
        model.Forward(sequence, 0, all);
        return all.AsSpan((PromptTokens.Length - 1) * vocab, GenTokens.Length * vocab).ToArray();
    }

    /// <summary>NMSE of <paramref name="actual"/> against <paramref name="expected"/> over <paramref name="steps"/> rows
    /// of <paramref name="vocab"/> logits, and the rows whose argmax agree.</summary>
    public static (double Nmse, int Agree) Compare(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, int vocab, int steps)
    {
        double err = 0, norm = 0;
        int agree = 0;
        for (int i = 0; i < steps; i++)
        {
            var a = actual.Slice(i * vocab, vocab);
            var e = expected.Slice(i * vocab, vocab);
            for (int j = 0; j < vocab; j++) { double d = a[j] - e[j]; err += d * d; norm += (double)e[j] * e[j]; }
            if (Sampler.ArgMax(a) == Sampler.ArgMax(e)) agree++;
        }
        return (err / norm, agree);
    }

    private static int[] Ids(string line) => line[(line.IndexOf(':') + 1)..]
        .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
}

using System.Globalization;

namespace Engine.Runtime.Cli;

/// <summary>Perplexity of a text file as llama.cpp's perplexity tool measures it (tools/perplexity, perplexity()):
/// the text tokenized once with BOS, cut into chunks of n_ctx tokens, each chunk evaluated from an empty cache with
/// its first token replaced by BOS when the vocabulary adds one, and only the second half of each chunk scored (every
/// scored token has at least n_ctx/2 tokens of context). Prints the running estimate per chunk and the final
/// PPL with its standard error (from the variance of the per-token negative log-likelihoods).</summary>
public static class Perplexity
{
    internal static int Run(LoadedPlan loaded, string path, TextWriter output)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--perplexity {path}: cannot read: {e.Message}");
        }
        var tokenizer = loaded.Tokenizer;
        int[] tokens = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        int nCtx = loaded.Context;
        int chunks = tokens.Length / nCtx;
        if (chunks < 1 || tokens.Length < 2 * nCtx)
            throw new UsageException($"--perplexity {path}: {tokens.Length} tokens; needs at least 2 × the plan's context ({2 * nCtx}): use a longer text or re-plan with a smaller --ctx");

        var model = loaded.Model;
        int vocab = model.Config.VocabSize;
        var logits = new float[(long)nCtx * vocab];
        var chunk = new int[nCtx];
        int first = nCtx / 2;
        double nll = 0, nll2 = 0;
        long count = 0;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"perplexity: {tokens.Length} tokens, {chunks} chunks of {nCtx}, scoring the last {nCtx - 1 - first} of each"));
        for (int c = 0; c < chunks; c++)
        {
            Array.Copy(tokens, (long)c * nCtx, chunk, 0, nCtx);
            if (tokenizer.AddBos) chunk[0] = tokenizer.BosId;
            model.Forward(chunk, 0, logits);
            for (int j = first; j < nCtx - 1; j++)
            {
                double v = -LogSoftmaxAt(logits.AsSpan(j * vocab, vocab), chunk[j + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
            output.Write(string.Create(CultureInfo.InvariantCulture, $"[{c + 1}]{Math.Exp(nll / count):F4},"));
            output.Flush();
        }
        double mean = nll / count;
        double variance = Math.Max(0, nll2 / count - mean * mean);
        double se = count > 1 ? Math.Sqrt(variance / (count - 1)) : 0;
        double ppl = Math.Exp(mean);
        output.WriteLine();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Final estimate: PPL = {ppl:F4} +/- {ppl * se:F5}"));
        return 0;
    }

    /// <summary>log softmax(row)[target], in double (llama.cpp accumulates this in double too).</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> row, int target)
    {
        float max = float.NegativeInfinity;
        foreach (float x in row) if (x > max) max = x;
        double sum = 0;
        foreach (float x in row) sum += Math.Exp(x - max);
        return row[target] - max - Math.Log(sum);
    }
}

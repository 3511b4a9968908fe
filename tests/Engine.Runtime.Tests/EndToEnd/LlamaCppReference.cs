using System.Globalization;
using System.Runtime.InteropServices;
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

    private static int[] Ids(string line) => line[(line.IndexOf(':') + 1)..]
        .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
}

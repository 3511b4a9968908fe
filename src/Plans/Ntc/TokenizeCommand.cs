using Engine.Plans.Gguf;
using Engine.Plans.Model;
using Engine.Runtime.Tokenization;

namespace Engine.Plans.Cli;

/// <summary><c>ntc tokenize MODEL.gguf TEXT [--no-bos] [--parse-special]</c>: the token ids of TEXT, space-separated
/// on one line, as llama_tokenize gives them. Reads only the tokenizer metadata, so vocabulary-only GGUFs work.
/// --no-bos: add_special = false (no BOS/EOS); --parse-special: control tokens written in TEXT become their ids.</summary>
public static class TokenizeCommand
{
    private const string Usage = "usage: ntc tokenize MODEL.gguf TEXT [--no-bos] [--parse-special]";

    public static int Run(string[] args)
    {
        bool addSpecial = true, parseSpecial = false;
        var positional = new List<string>();
        foreach (var a in args)
        {
            if (a == "--no-bos") addSpecial = false;
            else if (a == "--parse-special") parseSpecial = true;
            else if (a.StartsWith("--", StringComparison.Ordinal)) return Fail($"ntc tokenize: unknown option '{a}'; {Usage}");
            else positional.Add(a);
        }
        if (positional.Count != 2) return Fail($"ntc tokenize: expected MODEL.gguf and TEXT, got {positional.Count} arguments; {Usage}");
        string path = positional[0], text = positional[1];
        if (!File.Exists(path)) return Fail($"ntc tokenize: {path}: file not found");

        Tokenizer tokenizer;
        try
        {
            using var gguf = GgufFile.Open(path);
            tokenizer = Tokenizer.Create(TokenizerData.FromGguf(gguf));
        }
        catch (GgufException e) { return Fail($"ntc tokenize: {e.Message}"); }
        catch (NotSupportedException e) { return Fail($"ntc tokenize: {path}: {e.Message}"); }
        catch (IOException e) { return Fail($"ntc tokenize: {path}: {e.Message}"); }

        Console.Out.WriteLine(string.Join(' ', tokenizer.Encode(text, addSpecial, parseSpecial)));
        return 0;
    }

    private static int Fail(string line)
    {
        Console.Error.WriteLine(line);
        return 2;
    }
}

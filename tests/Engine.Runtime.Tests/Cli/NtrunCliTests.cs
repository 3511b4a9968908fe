using Engine.Runtime.Cli;
using Engine.Tests;
using Engine.Runtime.Tests.EndToEnd;
using System.Runtime.InteropServices;
using Xunit;

namespace Engine.Runtime.Tests.Cli;

/// <summary>ntrun in-process: arguments, ids out, logits dumps, teacher forcing and one-line errors.
/// Console is process-wide, so these run in one collection, not in parallel with each other.</summary>
[Collection("Console")]
public sealed class NtrunCliTests
{
    private static (int Code, string Out, string Err) Ntrun(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void Greedy_ids_match_llama_cpp()
    {
        var reference = LlamaCppReference.Load("stories260K.ref-kvf32.txt");
        var (code, output, _) = Ntrun(RepoPaths.Model("stories260K.gguf"), "--prompt-ids", string.Join(' ', reference.PromptTokens),
            "-n", "32", "--temp", "0", "--ids", "-t", "2");
        Assert.Equal(0, code);
        Assert.Equal(string.Join(' ', reference.GenTokens), output.Trim());
    }

    [Fact]
    public void Teacher_forced_dump_has_one_row_per_forced_token_plus_one_and_matches_generation()
    {
        var reference = LlamaCppReference.Load("stories260K.ref-kvf32.txt");
        string dir = Directory.CreateTempSubdirectory("ntrun").FullName;
        try
        {
            string forced = Path.Combine(dir, "forced.f32"), generated = Path.Combine(dir, "gen.f32");
            int k = reference.PromptTokens.Length, m = 5;
            string ids = string.Join(' ', reference.PromptTokens.Concat(reference.GenTokens.Take(m)));
            Assert.Equal(0, Ntrun("--model", RepoPaths.Model("stories260K.gguf"), "--prompt-ids", ids, "--n-prompt", k.ToString(),
                "-n", "0", "--dump-logits", forced).Code);
            Assert.Equal(0, Ntrun("--model", RepoPaths.Model("stories260K.gguf"), "--prompt-ids", string.Join(' ', reference.PromptTokens),
                "-n", (m + 1).ToString(), "--temp", "0", "--ids", "--dump-logits", generated).Code);
            var a = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(forced)).ToArray();
            var b = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(generated)).ToArray();
            Assert.Equal((m + 1) * 512, a.Length);
            Assert.Equal(a.Length, b.Length);
            for (int i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 1e-3f);
            Assert.False(File.Exists(forced + ".part"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Seeded_sampling_repeats()
    {
        string[] args = [RepoPaths.Model("stories260K.gguf"), "--prompt-ids", "1 403 407", "-n", "20", "--temp", "1", "--seed", "5", "--ids"];
        var first = Ntrun(args);
        Assert.Equal(0, first.Code);
        Assert.Equal(first.Out, Ntrun(args).Out);
    }

    [Theory]
    [InlineData("no-such-file.gguf")]
    [InlineData("--bogus")]
    [InlineData("-n")]
    [InlineData("--temp", "hot")]
    public void Bad_input_is_one_line_and_a_non_zero_exit(params string[] args)
    {
        var (code, _, err) = Ntrun([.. args, "--prompt-ids", "1"]);
        Assert.NotEqual(0, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.StartsWith("ntrun: ", err);
    }

    [Fact]
    public void Text_prompt_without_a_tokenizer_says_so_in_one_line()
    {
        var (code, _, err) = Ntrun(RepoPaths.Model("stories260K.gguf"), "-p", "Once upon a time");
        Assert.Equal(1, code);
        Assert.Contains("--prompt-ids", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void Out_of_vocabulary_prompt_id_is_rejected()
    {
        var (code, _, err) = Ntrun(RepoPaths.Model("stories260K.gguf"), "--prompt-ids", "1 512");
        Assert.NotEqual(0, code);
        Assert.Contains("512", err);
    }

    [Fact]
    public void Benchmark_prints_pp_and_tg_rows()
    {
        var (code, output, _) = Ntrun(RepoPaths.Model("stories260K.gguf"), "--benchmark", "-n", "8", "-r", "1", "-t", "1");
        Assert.Equal(0, code);
        Assert.Contains("| pp128 |", output);
        Assert.Contains("| tg8 |", output);
    }
}

using System.Runtime.InteropServices;
using Engine.Runtime.Chat;
using Engine.Runtime.Cli;
using Engine.Runtime.Tests.EndToEnd;
using Engine.Tests;
using Xunit;

namespace Engine.Runtime.Tests.Cli;

/// <summary>ntrun PLAN in-process: text and ids in and out, logits dumps, teacher forcing, chat over redirected
/// stdin, the benchmark, and one-line errors. Plans come from <see cref="TestPlans"/> (cpu-only profile). Console is
/// process-wide, so these run in one collection, not in parallel with each other.</summary>
[Collection("Console")]
public sealed class NtrunCliTests
{
    private static (int Code, string Out, string Err) Ntrun(params string[] args) => NtrunWithInput("", args);

    private static (int Code, string Out, string Err) NtrunWithInput(string stdin, params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Run(args, new StringReader(stdin)), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    private static string Stories => TestPlans.For("stories260K");

    [Fact]
    public void Text_prompt_gives_llama_cpp_prompt_tokens_greedy_tokens_and_text()
    {
        var reference = LlamaCppReference.Load("stories260K.ref-kvf32.txt");
        using (var plan = TestPlans.Load("stories260K"))
            Assert.Equal(reference.PromptTokens, plan.Tokenizer.Encode("Once upon a time", addSpecial: true, parseSpecial: true));

        var ids = Ntrun(Stories, "-p", "Once upon a time", "-n", "32", "--temp", "0", "--ids", "-t", "2");
        Assert.Equal(0, ids.Code);
        Assert.Equal(string.Join(' ', reference.GenTokens), ids.Out.Trim());

        // llama-simple's output: the prompt echoed (BOS not rendered), then the generated text.
        var text = Ntrun(Stories, "-p", "Once upon a time", "-n", "32", "--temp", "0");
        Assert.Equal(0, text.Code);
        Assert.Equal(" Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw\n",
            text.Out.ReplaceLineEndings("\n"));
        Assert.Contains("generated 32 tokens", text.Err);
    }

    [Fact]
    public void Prompt_file_is_the_same_as_the_prompt_text()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "Once upon a time");
            var a = Ntrun(Stories, "-f", file, "-n", "8", "--temp", "0", "--ids");
            Assert.Equal(0, a.Code);
            Assert.Equal(Ntrun(Stories, "-p", "Once upon a time", "-n", "8", "--temp", "0", "--ids").Out, a.Out);
        }
        finally { File.Delete(file); }
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
            Assert.Equal(0, Ntrun(Stories, "--prompt-ids", ids, "--n-prompt", k.ToString(), "-n", "0", "--dump-logits", forced).Code);
            Assert.Equal(0, Ntrun(Stories, "--prompt-ids", string.Join(' ', reference.PromptTokens),
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
        string[] args = [Stories, "--prompt-ids", "1 403 407", "-n", "20", "--temp", "1", "--seed", "5", "--ids"];
        var first = Ntrun(args);
        Assert.Equal(0, first.Code);
        Assert.Equal(first.Out, Ntrun(args).Out);
    }

    [Fact]
    public void Chat_keeps_the_cache_across_turns_and_equals_one_pass_over_the_conversation()
    {
        // stories260K has no chat template: name one. Replies are cut by -n (no EOS in 6 tokens on this model), so
        // the second reply is the greedy continuation of turn 1's tokens + reply 1 + the new turn's text only.
        const int n = 6;
        var chat = NtrunWithInput("Hello there\nTell me a story\n", Stories, "--chat-format", "llama2", "-n", n.ToString(), "--temp", "0");
        Assert.Equal(0, chat.Code);
        var lines = chat.Out.ReplaceLineEndings("\n").Split('\n');
        Assert.Equal("> Hello there", lines[0]);
        Assert.Equal("> Tell me a story", lines[2]);

        using var plan = TestPlans.Load("stories260K");
        var tok = plan.Tokenizer;
        var format = ChatFormat.FromName("llama2");
        var messages = new List<ChatMessage> { new("user", "Hello there") };
        int[] turn1 = tok.Encode(format.Apply(messages), addSpecial: true, parseSpecial: true);
        int[] reply1 = Ids(Ntrun(Stories, "--prompt-ids", string.Join(' ', turn1), "-n", n.ToString(), "--temp", "0", "--ids").Out);
        Assert.Equal(n, reply1.Length);
        Assert.Equal(lines[1], tok.Decode(reply1, special: false));
        messages.Add(new("assistant", lines[1]));
        int before = format.Apply(messages, addAssistantPrompt: false).Length;
        messages.Add(new("user", "Tell me a story"));
        int[] turn2 = tok.Encode(format.Apply(messages)[before..], addSpecial: false, parseSpecial: true);
        int[] reply2 = Ids(Ntrun(Stories, "--prompt-ids", string.Join(' ', turn1.Concat(reply1).Concat(turn2)), "-n", n.ToString(), "--temp", "0", "--ids").Out);
        Assert.Equal(lines[3], tok.Decode(reply2, special: false));
    }

    private static int[] Ids(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

    [Fact]
    public void Benchmark_prints_pp_and_tg_rows_beside_the_prediction()
    {
        var (code, output, _) = Ntrun(Stories, "--benchmark", "-n", "8", "-r", "1", "-t", "1");
        Assert.Equal(0, code);
        Assert.Contains("| predicted t/s | measured/predicted |", output);
        Assert.Contains("| pp128 |", output);
        Assert.Matches(@"\| tg8 \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", output);
    }

    /// <summary>--depth N (llama-bench's -d): the tg row decodes after N context tokens; it has no prediction (the plan
    /// predicts the weights' bytes, not the KV cache's). Depth plus -n past the context, or --depth without
    /// --benchmark, is one usage line.</summary>
    [Fact]
    public void Benchmark_depth_decodes_after_that_many_context_tokens()
    {
        var (code, output, _) = Ntrun(Stories, "--benchmark", "-n", "8", "-r", "1", "-t", "1", "-d", "40");
        Assert.Equal(0, code);
        Assert.Matches(@"\| tg8 @ d40 \| [0-9.]+ ± [0-9.]+ \| - \| - \|", output);
        var (tooDeep, _, err) = Ntrun(TestPlans.For("stories260K", ctx: 32), "--benchmark", "-n", "8", "-r", "1", "-t", "1", "--depth", "30");
        AssertOneLine(1, tooDeep, err, "after --depth 30: more than the context of 32");
        var (alone, _, err2) = Ntrun(Stories, "-p", "x", "--depth", "4");
        AssertOneLine(2, alone, err2, "--depth is a --benchmark option");
    }

    [Fact]
    public void A_plan_used_with_another_model_is_refused_in_one_line()
    {
        var (code, output, err) = Ntrun(TestPlans.For("stories260K-Q8_0"), "--model", RepoPaths.Model("stories260K-Q4_0.gguf"), "-p", "x");
        AssertOneLine(1, code, err, "made for stories260K-Q8_0.gguf");
        Assert.Contains("ntc plan", err);
        Assert.Empty(output);
    }

    [Fact]
    public void A_prompt_longer_than_the_plans_context_is_refused_in_one_line()
    {
        var (code, _, err) = Ntrun(TestPlans.For("stories260K", ctx: 8), "-p", "Once upon a time there was a big red dog");
        AssertOneLine(1, code, err, "more than the context of 8");
    }

    [Fact]
    public void A_missing_model_is_refused_in_one_line()
    {
        var (code, _, err) = Ntrun(Stories, "--model", "no-such.gguf", "-p", "x");
        AssertOneLine(1, code, err, "no-such.gguf is missing");
    }

    [Theory]
    [InlineData("--chat-format", "chatml")]
    [InlineData("--chat")]
    public void An_unknown_or_undetectable_chat_format_is_refused_with_the_known_ones(params string[] args)
    {
        var (code, _, err) = NtrunWithInput("hi\n", [Stories, .. args]);
        AssertOneLine(1, code, err, "known chat formats: llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, llama3");
    }

    [Fact]
    public void A_gguf_given_as_the_plan_gets_the_command_that_plans_it()
    {
        var (code, _, err) = Ntrun(RepoPaths.Model("stories260K.gguf"), "-p", "x");
        AssertOneLine(1, code, err, "is a GGUF model, not a plan: run `ntc plan");
    }

    [Theory]
    [InlineData("no-such-file.plan")]
    [InlineData("--bogus")]
    [InlineData("-n")]
    [InlineData("--temp", "hot")]
    [InlineData("-c", "64")]
    public void Bad_input_is_one_line_and_a_non_zero_exit(params string[] args)
    {
        var (code, _, err) = Ntrun([.. args, "--prompt-ids", "1"]);
        Assert.NotEqual(0, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.StartsWith("ntrun: ", err);
    }

    [Fact]
    public void Out_of_vocabulary_prompt_id_is_rejected()
    {
        var (code, _, err) = Ntrun(Stories, "--prompt-ids", "1 512");
        AssertOneLine(1, code, err, "512");
    }

    private static void AssertOneLine(int expectedCode, int code, string err, string expected)
    {
        Assert.Equal(expectedCode, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.StartsWith("ntrun: ", err);
        Assert.Contains(expected, err);
    }
}

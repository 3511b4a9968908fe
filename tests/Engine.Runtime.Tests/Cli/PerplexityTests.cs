using System.Globalization;
using System.Text.RegularExpressions;
using Engine.Runtime.Cli;
using Engine.Runtime.Sampling;
using Engine.Runtime.Tests.EndToEnd;
using Xunit;

namespace Engine.Runtime.Tests.Cli;

/// <summary>ntrun --perplexity: the figure equals the same negative log-likelihoods computed one token at a time
/// through a session (a different path: decode steps instead of one batched pass per chunk), the model's own story
/// scores far better than the same words shuffled, and a text shorter than two contexts is one error line.</summary>
[Collection("Console")]
public sealed class PerplexityTests
{
    private static (int Code, string Out, string Err) Ntrun(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Run(args, new StringReader("")), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    private static double Ppl(string output) =>
        double.Parse(Regex.Match(output, @"Final estimate: PPL = ([0-9.]+)").Groups[1].Value, CultureInfo.InvariantCulture);

    [Fact]
    public void Perplexity_matches_token_by_token_scoring_and_separates_real_from_shuffled_text()
    {
        const int ctx = 32;
        var story = Ntrun(TestPlans.For("stories260K", 256), "-p", "Once upon a time", "-n", "200", "--temp", "0",
            "--ignore-eos", "-t", "2");
        Assert.Equal(0, story.Code);
        string dir = Directory.CreateTempSubdirectory("ppl").FullName;
        try
        {
            string real = Path.Combine(dir, "story.txt"), shuffled = Path.Combine(dir, "shuffled.txt");
            File.WriteAllText(real, story.Out.Trim());
            var words = story.Out.Trim().Split(' ');
            new Random(7).Shuffle(words);
            File.WriteAllText(shuffled, string.Join(' ', words));

            string plan = TestPlans.For("stories260K", ctx);
            var a = Ntrun(plan, "--perplexity", real, "-t", "2");
            var b = Ntrun(plan, "--perplexity", shuffled, "-t", "2");
            Assert.Equal(0, a.Code);
            Assert.Equal(0, b.Code);
            double pa = Ppl(a.Out), pb = Ppl(b.Out);
            Assert.InRange(pa, 1.0, 4.0);
            Assert.True(pb > 3 * pa, $"shuffled {pb} vs own story {pa}");

            // The same figure, one decode step at a time.
            using var loaded = TestPlans.Load("stories260K", ctx);
            int[] tokens = loaded.Tokenizer.Encode(File.ReadAllText(real), addSpecial: true, parseSpecial: false);
            var session = loaded.OpenSession(new SamplerSettings { Temperature = 0 });
            double nll = 0;
            int count = 0;
            for (int c = 0; c < tokens.Length / ctx; c++)
            {
                session.Reset();
                for (int j = 0; j < ctx - 1; j++)
                {
                    int t = j == 0 && loaded.Tokenizer.AddBos ? loaded.Tokenizer.BosId : tokens[c * ctx + j];
                    session.Feed(t);
                    if (j < ctx / 2) continue;
                    nll -= Perplexity.LogSoftmaxAt(session.Logits, tokens[c * ctx + j + 1]);
                    count++;
                }
            }
            Assert.Equal(Math.Exp(nll / count), pa, 3);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_text_shorter_than_two_contexts_is_one_error_line()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "Once upon a time");
            var r = Ntrun(TestPlans.For("stories260K", 32), "--perplexity", file);
            Assert.Equal(1, r.Code);
            Assert.Single(r.Err.Trim().Split('\n'));
            Assert.Contains("needs at least 2 × the plan's context (64)", r.Err);
        }
        finally { File.Delete(file); }
    }
}

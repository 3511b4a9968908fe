using Engine.Plans.Cli;
using Xunit;

namespace Engine.Plans.Tests.Ntc;

/// <summary>Runs <c>ntc</c> in-process with the console captured. The console is process-wide, so every test class
/// that calls <see cref="Run"/> joins the "Console" collection, which xunit runs with nothing beside it.</summary>
public static class NtcCli
{
    public sealed record Result(int Exit, string Out, string Err);

    private static readonly object Gate = new();

    public static Result Run(params string[] args)
    {
        lock (Gate)
        {
            var (oldOut, oldErr) = (Console.Out, Console.Error);
            var (o, e) = (new StringWriter { NewLine = "\n" }, new StringWriter { NewLine = "\n" });
            Console.SetOut(o);
            Console.SetError(e);
            try { return new Result(Program.Main(args), o.ToString(), e.ToString()); }
            finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
        }
    }

    /// <summary>Asserts the one-line error contract: exit 1, nothing on stdout, <c>ntc: …</c> as one line on stderr.</summary>
    public static string Fails(Result r)
    {
        Assert.True(r.Exit == 1, $"exit {r.Exit}, stderr: {r.Err}");
        Assert.Equal("", r.Out);
        Assert.StartsWith("ntc: ", r.Err);
        Assert.EndsWith("\n", r.Err);
        Assert.True(r.Err.Count(ch => ch == '\n') == 1, "more than one line on stderr: " + r.Err);
        return r.Err.TrimEnd('\n');
    }
}

[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

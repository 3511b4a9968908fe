namespace Engine.Plans.Cli;

public static class Program
{
    /// <summary>Commands by name; each gets the arguments after its name.</summary>
    private static readonly Dictionary<string, Func<string[], int>> Commands = new()
    {
        ["synth"] = SynthCommand.Run,
    };

    public static int Main(string[] args)
    {
        if (args.Length == 0 || !Commands.TryGetValue(args[0], out var run))
        {
            Console.Error.WriteLine($"ntc: {(args.Length == 0 ? "no command" : $"unknown command \"{args[0]}\"")} (commands: {string.Join(", ", Commands.Keys)})");
            return 2;
        }
        return run(args[1..]);
    }
}

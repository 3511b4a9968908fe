namespace Engine.Plans.Cli;

public static class Program
{
    // Command table (another helper owns it; the merge reconciles): name → entry point.
    private static readonly (string Name, Func<string[], int> Run)[] Commands =
    [
        ("plan", PlanCommand.Run),
        ("explain", ExplainCommand.Run),
    ];

    public static int Main(string[] args)
    {
        if (args.Length > 0)
            foreach (var (name, run) in Commands)
                if (args[0] == name) return run(args[1..]);
        Console.Error.WriteLine("usage: ntc <" + string.Join("|", Commands.Select(c => c.Name)) + "> ...");
        return 2;
    }
}

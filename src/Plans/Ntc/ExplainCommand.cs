using Engine.Plans.PlanFile;

namespace Engine.Plans.Cli;

/// <summary><c>ntc explain PLAN [--json]</c>: the plan as deterministic text (or JSON) on stdout.</summary>
public static class ExplainCommand
{
    public const string Usage = "usage: ntc explain PLAN [--json]";

    public static int Run(string[] args)
    {
        bool json = args.Contains("--json");
        var rest = args.Where(a => a != "--json").ToArray();
        if (rest.Length != 1 || rest[0].StartsWith('-')) { Console.Error.WriteLine("ntc explain: " + Usage); return 2; }
        try
        {
            var plan = PlanReader.Load(rest[0]);
            Console.Out.Write(json ? PlanExplainer.Json(plan) : PlanExplainer.Text(plan));
            return 0;
        }
        catch (PlanException e)
        {
            Console.Error.WriteLine("ntc explain: " + e.Message);
            return 1;
        }
    }
}

namespace Engine.Plans.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("ntc: no command yet");
        return 2;
    }
}

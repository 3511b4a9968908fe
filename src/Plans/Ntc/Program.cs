namespace Engine.Plans.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["tokenize", ..]) return TokenizeCommand.Run(args[1..]);
        Console.Error.WriteLine("ntc: no command yet");
        return 2;
    }
}

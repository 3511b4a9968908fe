namespace Engine.Runtime.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["--version"]) { Console.WriteLine("ntrun " + typeof(Program).Assembly.GetName().Version); return 0; }
        Console.Error.WriteLine("ntrun: no runtime yet");
        return 2;
    }
}

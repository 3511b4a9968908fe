using System.Runtime.CompilerServices;

namespace Engine.Tests;

/// <summary>Paths inside the repository, found from this source file's location, so tests run from any directory.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Models => Path.Combine(Root, "models");

    public static string Model(string file) => Path.Combine(Models, file);

    public static string Vocab(string file) => Path.Combine(Models, "vocab", file);

    private static string FindRoot([CallerFilePath] string here = "")
    {
        var dir = Path.GetDirectoryName(here);
        while (dir != null && !File.Exists(Path.Combine(dir, "Engine.sln"))) dir = Path.GetDirectoryName(dir);
        if (dir != null) return dir;
        dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Engine.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? throw new InvalidOperationException("Engine.sln not found above " + here);
    }
}

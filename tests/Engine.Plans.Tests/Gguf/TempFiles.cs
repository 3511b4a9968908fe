namespace Engine.Plans.Tests.Gguf;

/// <summary>A scratch directory for one test class, removed when the class is done.</summary>
public sealed class TempFiles : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("engine-gguf-").FullName;
    private int _next;

    public string Path(string name) => System.IO.Path.Combine(Dir, name);

    /// <summary>Writes <paramref name="bytes"/> to a fresh file and returns its path.</summary>
    public string Write(ReadOnlySpan<byte> bytes, string stem = "t")
    {
        string p = Path($"{stem}-{Interlocked.Increment(ref _next)}.gguf");
        using (var fs = File.Create(p)) fs.Write(bytes);
        return p;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

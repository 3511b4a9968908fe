using System.Runtime.CompilerServices;

namespace Engine.Tests;

/// <summary>Snapshot assertions in Verify's conventions (Verify.Xunit cannot be restored here):
/// <c>{Class}.{Method}[_{suffix}].verified.txt</c> beside the test source is committed and reviewed in diffs;
/// on a mismatch <c>.received.txt</c> is written next to it and the test fails. A missing snapshot fails too,
/// except outside CI when <c>ENGINE_ACCEPT_SNAPSHOTS=1</c> is set, which writes it for review.</summary>
public static class Snapshot
{
    public static void Verify(string actual, string? suffix = null,
        [CallerFilePath] string sourceFile = "", [CallerMemberName] string method = "")
    {
        string dir = Path.Combine(Path.GetDirectoryName(sourceFile)!, "snapshots");
        string cls = Path.GetFileNameWithoutExtension(sourceFile);
        string stem = Path.Combine(dir, suffix == null ? $"{cls}.{method}" : $"{cls}.{method}_{suffix}");
        string verified = stem + ".verified.txt", received = stem + ".received.txt";
        string text = actual.Replace("\r\n", "\n");
        if (!text.EndsWith('\n')) text += "\n";

        bool ci = Environment.GetEnvironmentVariable("CI") is { Length: > 0 } v && v != "false";
        bool accept = !ci && Environment.GetEnvironmentVariable("ENGINE_ACCEPT_SNAPSHOTS") == "1";
        if (!File.Exists(verified))
        {
            Directory.CreateDirectory(dir);
            if (accept) { File.WriteAllText(verified, text); return; }
            File.WriteAllText(received, text);
            throw new Xunit.Sdk.XunitException($"snapshot missing: {verified} (received written to {received}; review it and rename to .verified.txt)");
        }
        string expected = File.ReadAllText(verified).Replace("\r\n", "\n");
        if (expected == text) { if (File.Exists(received)) File.Delete(received); return; }
        if (accept) { File.WriteAllText(verified, text); return; }
        File.WriteAllText(received, text);
        throw new Xunit.Sdk.XunitException($"snapshot differs: {verified} vs {received}\n{FirstDifference(expected, text)}");
    }

    private static string FirstDifference(string a, string b)
    {
        var la = a.Split('\n'); var lb = b.Split('\n');
        for (int i = 0; i < Math.Max(la.Length, lb.Length); i++)
        {
            string x = i < la.Length ? la[i] : "<end>", y = i < lb.Length ? lb[i] : "<end>";
            if (x != y) return $"line {i + 1}:\n  verified: {x}\n  received: {y}";
        }
        return "";
    }
}

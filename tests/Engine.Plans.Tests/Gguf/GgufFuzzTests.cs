using Engine.Plans.Gguf;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Gguf;

/// <summary>Single-byte mutations and truncations of a real model's header: each file either opens or is refused
/// with a <see cref="GgufException"/>; no other exception escapes the reader.</summary>
public sealed class GgufFuzzTests : IDisposable
{
    private readonly TempFiles _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Mutated_and_truncated_headers_open_or_throw_GgufException()
    {
        byte[] original = File.ReadAllBytes(RepoPaths.Model("stories260K.gguf"));
        long header;
        var tensorFields = new List<long>();
        using (var f = GgufFile.Open(RepoPaths.Model("stories260K.gguf")))
        {
            header = f.DataOffset;
            foreach (var t in f.Tensors) tensorFields.Add(t.FileOffset);
        }
        // The tensor-info table is the densest structure: it starts after the last metadata value, about
        // 48 infos of ~50 bytes before the data section.
        long infoStart = Math.Max(0, header - 48 * 64);

        var rng = new Random(20261126);
        string path = _tmp.Path("fuzz.gguf");
        File.WriteAllBytes(path, original);
        int opened = 0, refused = 0;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
        {
            for (int i = 0; i < 3000; i++)
            {
                // A third of the mutations in the fixed header (magic, version, counts, first key), a third in the
                // tensor infos, a third anywhere before the data.
                long at = (i % 3) switch
                {
                    0 => rng.Next(0, 64),
                    1 => infoStart + rng.NextInt64(header - infoStart),
                    _ => rng.NextInt64(header),
                };
                byte value = (i % 7) switch
                {
                    0 => 0, 1 => 0xFF, 2 => (byte)(original[at] ^ 0x80), 3 => (byte)(original[at] + 1),
                    _ => (byte)rng.Next(256),
                };
                fs.Position = at; fs.WriteByte(value); fs.Flush();
                if (OpenOrRefuse(path, $"byte {at} = {value}")) opened++; else refused++;
                fs.Position = at; fs.WriteByte(original[at]); fs.Flush();
            }
        }
        Assert.True(refused > 500, $"{refused} of 3000 mutations refused: the mutations miss the structure");
        Assert.True(opened > 100, $"{opened} of 3000 mutations opened: the mutations only hit the structure");

        for (int i = 0; i < 300; i++)
        {
            int length = i < 100 ? i : (int)rng.NextInt64(header + 64);
            File.WriteAllBytes(path, original.AsSpan(0, length).ToArray());
            Assert.False(OpenOrRefuse(path, $"cut at {length}"), $"cut at {length} of {original.Length} opened");
        }
    }

    /// <summary>True when the file opens (and its metadata readers run), false when it is refused with one line.</summary>
    private static bool OpenOrRefuse(string path, string what)
    {
        try
        {
            using var f = GgufFile.Open(path);
            foreach (var t in f.Tensors) _ = f.TensorData(t).Length;
            return true;
        }
        catch (GgufException e)
        {
            Assert.DoesNotContain('\n', e.Message);
            return false;
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name} escaped the reader: {e.Message}");
            return false;
        }
    }
}

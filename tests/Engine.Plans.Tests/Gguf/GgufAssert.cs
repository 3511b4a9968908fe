using Engine.Plans.Gguf;
using Xunit;

namespace Engine.Plans.Tests.Gguf;

internal static class GgufAssert
{
    /// <summary>Same type, same element type for arrays, same values (nested arrays compared recursively).</summary>
    public static void SameValue(GgufValue expected, GgufValue actual, string where)
    {
        Assert.True(expected.Type == actual.Type, $"{where}: type {actual.Type}, expected {expected.Type}");
        if (expected.Value is not Array ea)
        {
            Assert.True(Equals(expected.Value, actual.Value), $"{where}: {actual.Value}, expected {expected.Value}");
            return;
        }
        Assert.True(expected.ElementType == actual.ElementType, $"{where}: element type {actual.ElementType}, expected {expected.ElementType}");
        var aa = Assert.IsAssignableFrom<Array>(actual.Value);
        Assert.Equal(ea.GetType(), aa.GetType());
        Assert.True(ea.Length == aa.Length, $"{where}: {aa.Length} elements, expected {ea.Length}");
        for (int i = 0; i < ea.Length; i++)
        {
            object e = ea.GetValue(i)!, a = aa.GetValue(i)!;
            if (e is GgufValue ev) SameValue(ev, (GgufValue)a, $"{where}[{i}]");
            else Assert.True(Equals(e, a), $"{where}[{i}]: {a}, expected {e}");
        }
    }

    /// <summary>Same keys in the same order with the same values, same tensor infos and the same tensor bytes.</summary>
    public static void SameFile(GgufFile expected, GgufFile actual)
    {
        Assert.Equal(expected.MetadataKeys, actual.MetadataKeys);
        foreach (string k in expected.MetadataKeys) SameValue(expected.Metadata[k], actual.Metadata[k], k);
        Assert.Equal(expected.Alignment, actual.Alignment);
        Assert.Equal(expected.Tensors.Count, actual.Tensors.Count);
        for (int i = 0; i < expected.Tensors.Count; i++)
        {
            var e = expected.Tensors[i];
            var a = actual.Tensors[i];
            Assert.Equal(e.Name, a.Name);
            Assert.Equal(e.Type, a.Type);
            Assert.Equal(e.Dims, a.Dims);
            Assert.Equal(e.ByteSize, a.ByteSize);
            Assert.True(expected.TensorData(e).SequenceEqual(actual.TensorData(a)), $"{e.Name}: tensor bytes differ");
        }
    }

    /// <summary>Opening <paramref name="path"/> fails with one GgufException line naming the field and value.</summary>
    public static GgufException Rejects(string path, string field, string? value = null, string? reason = null)
    {
        var e = Assert.Throws<GgufException>(() => GgufFile.Open(path).Dispose());
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith(path + ": offset ", e.Message);
        Assert.Equal(field, e.Field);
        string fragment = value == null ? $": {field} = " : $": {field} = {value}: ";
        Assert.Contains(fragment, e.Message);
        if (reason != null) Assert.Contains(reason, e.Message);
        return e;
    }
}

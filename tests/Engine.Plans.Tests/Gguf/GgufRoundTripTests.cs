using Engine.Plans.Gguf;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Gguf;

/// <summary>Reader and writer agree: what the writer writes reads back the same, at v1, v2 and v3.</summary>
public sealed class GgufRoundTripTests : IDisposable
{
    private readonly TempFiles _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Writer_output_reads_back_every_value_type_nested_and_empty_arrays()
    {
        var w = new GgufWriter();
        foreach (var (k, v) in GgufBytes.AllValueTypes()) w.Set(k, v);
        var tensors = GgufBytes.SampleTensors();
        foreach (var t in tensors) w.AddTensor(t.Name, t.Type, t.Dims);
        string path = _tmp.Path("roundtrip.gguf");
        w.Write(path, i => tensors[i].Data);

        using var f = GgufFile.Open(path);
        Assert.Equal(3u, f.Version);
        Assert.Equal(GgufBytes.AllValueTypes().Select(x => x.Key), f.MetadataKeys);
        foreach (var (k, v) in GgufBytes.AllValueTypes()) GgufAssert.SameValue(v, f.Metadata[k], k);
        AssertSampleTensors(f);
        Assert.False(File.Exists(path + ".part"));
    }

    [Fact]
    public void Writer_bytes_equal_the_hand_written_v3_file()
    {
        // The writer and the field-by-field sample follow the same layout (gguf.cpp gguf_write_to_buf), so the
        // writer's bytes are checked independently of the reader.
        var w = new GgufWriter();
        foreach (var (k, v) in GgufBytes.AllValueTypes()) w.Set(k, v);
        var tensors = GgufBytes.SampleTensors();
        foreach (var t in tensors) w.AddTensor(t.Name, t.Type, t.Dims);
        string path = _tmp.Path("layout.gguf");
        w.Write(path, i => tensors[i].Data);
        Assert.Equal(GgufBytes.Sample(3).ToArray(), File.ReadAllBytes(path));
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    public void Hand_written_file_of_each_version_reads_correctly(uint version)
    {
        var bytes = GgufBytes.Sample(version);
        using var f = GgufFile.Open(_tmp.Write(bytes.ToArray()));
        Assert.Equal(version, f.Version);
        foreach (var (k, v) in GgufBytes.AllValueTypes()) GgufAssert.SameValue(v, f.Metadata[k], k);
        Assert.Equal(32u, f.Alignment);
        Assert.Equal(GgufWriter.Align(bytes.Find("b.offset").End, 32), f.DataOffset); // first "b.offset" is its info field
        AssertSampleTensors(f);
    }

    [Fact]
    public void V1_file_uses_uint32_counts_and_lengths()
    {
        // Same content, v1 narrower by 4 bytes per count, length and dimension (ggml's GGUFv2 change, PR #2821).
        long v1 = GgufBytes.Sample(1).Position, v2 = GgufBytes.Sample(2).Position;
        Assert.True(v1 < v2, $"v1 {v1} bytes, v2 {v2}");
    }

    [Fact]
    public void Header_only_file_has_the_full_size_and_real_offsets()
    {
        var w = new GgufWriter().Set(GgufKeys.Architecture, "llama");
        w.AddTensor("big", GgmlType.Q8_0, 4096, 4096);
        w.AddTensor("small", GgmlType.F32, 4096);
        string path = _tmp.Path("sparse.gguf");
        w.WriteHeaderOnly(path);
        using var f = GgufFile.Open(path);
        Assert.Equal(w.Layout().FileSize, f.FileSize);
        Assert.Equal(4096L * 4096 / 32 * 34, f.Tensors[0].ByteSize);
        Assert.Equal(w.Layout().Slots[1].FileOffset, f.Tensors[1].FileOffset);
        Assert.Equal(0, f.Tensors[1].FileOffset % 32);
    }

    private static void AssertSampleTensors(GgufFile f)
    {
        var tensors = GgufBytes.SampleTensors();
        Assert.Equal(tensors.Length, f.Tensors.Count);
        for (int i = 0; i < tensors.Length; i++)
        {
            var t = f.Tensors[i];
            Assert.Equal(tensors[i].Name, t.Name);
            Assert.Equal(tensors[i].Type, t.Type);
            Assert.Equal(tensors[i].Dims, t.Dims);
            Assert.Equal(0, t.FileOffset % 32);
            Assert.Equal(f.DataOffset + t.Offset, t.FileOffset);
            Assert.Equal(tensors[i].Data, f.TensorData(t).ToArray());
        }
        Assert.Equal(64, f.Tensors[1].Offset);
    }
}

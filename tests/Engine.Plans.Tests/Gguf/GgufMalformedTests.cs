using Engine.Plans.Gguf;
using Xunit;

namespace Engine.Plans.Tests.Gguf;

/// <summary>A corpus of broken files built from the hand-written sample: each is refused with one
/// <see cref="GgufException"/> naming the field and the value it found.</summary>
public sealed class GgufMalformedTests : IDisposable
{
    private readonly TempFiles _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    public void Every_truncation_names_the_field_it_cuts(uint version)
    {
        var g = GgufBytes.Sample(version);
        byte[] whole = g.ToArray();
        string path = _tmp.Path($"cut-v{version}.gguf");
        for (int length = 0; length < whole.Length; length++)
        {
            File.WriteAllBytes(path, whole.AsSpan(0, length).ToArray());
            string? field = g.ExpectedTruncationField(length);
            Assert.True(field != null, $"cut at {length}: the sample must end with tensor data");
            var e = Assert.Throws<GgufException>(() => GgufFile.Open(path).Dispose());
            Assert.True(e.Field == field, $"cut at {length} of {whole.Length}: expected field {field}, got: {e.Message}");
            Assert.DoesNotContain('\n', e.Message);
            Assert.Matches("truncated|past the end|than the file can hold|empty", e.Message);
        }
    }

    [Fact]
    public void Truncation_messages_at_structural_boundaries()
    {
        var g = GgufBytes.Sample(3);
        byte[] whole = g.ToArray();
        string Cut(long n) => _tmp.Write(whole.AsSpan(0, (int)n));
        GgufAssert.Rejects(Cut(0), "magic", "(empty file)", "the file is empty");
        GgufAssert.Rejects(Cut(2), "magic", "-", "truncated: needs 4 bytes, 2 remain");
        GgufAssert.Rejects(Cut(4), "version", "-", "truncated");
        GgufAssert.Rejects(Cut(8), "tensor_count", "-", "truncated");
        GgufAssert.Rejects(Cut(20), "metadata_kv_count", "-", "truncated: needs 8 bytes, 4 remain");
        GgufAssert.Rejects(Cut(24), "metadata_kv_count", "30", "more key-value pairs than the file can hold (0 bytes remain)");
        // The first key-value pairs lie inside the metadata_kv_count guard (30 pairs need at least 390 bytes).
        GgufAssert.Rejects(Cut(g.Find("t.u32.type").Start + 1), "metadata_kv_count", "30", "more key-value pairs than the file can hold");
        GgufAssert.Rejects(Cut(g.Fields.Last(f => f.Name == "t.arr_str[2].length").End - 1), "t.arr_str[2].length", "2", "string runs past the end");
        GgufAssert.Rejects(Cut(g.Find("t.arr_i32.element_type").Start), "t.arr_i32.element_type", "-", "truncated");
        GgufAssert.Rejects(Cut(g.Find("t.arr_i32.count").Start + 3), "t.arr_i32.count", "-", "truncated");
        GgufAssert.Rejects(Cut(g.Find("t.arr_i32").End - 1), "t.arr_i32.count", "3", "array longer than the file can hold");
        GgufAssert.Rejects(Cut(g.Fields.Last(f => f.Name == "t.nested[2][1].length").End - 1), "t.nested[2][1].length", "2", "string runs past the end");
        GgufAssert.Rejects(Cut(g.Find("t.nested[3][0].count").Start), "t.nested[3].count", "1", "array longer than the file can hold");
        GgufAssert.Rejects(Cut(g.Find("tensor[0].name.length").Start), "tensor_count", "2", "more tensors than the file can hold (0 bytes remain)");
        // Two tensor infos need at least 64 bytes: cuts inside the first 64 name the count.
        GgufAssert.Rejects(Cut(g.Find("a.n_dims").Start + 2), "tensor_count", "2", "more tensors than the file can hold");
        GgufAssert.Rejects(Cut(g.Find("b.offset").Start + 7), "b.offset", "-", "truncated");
        GgufAssert.Rejects(Cut(whole.Length - 1), "b.offset", "64", $"tensor data (34 bytes at {whole.Length - 34}) runs past the end of the file ({whole.Length - 1} bytes)");
    }

    [Fact]
    public void Bad_magic()
    {
        var b = GgufBytes.Sample(3).ToArray();
        b[3] = (byte)'X';
        GgufAssert.Rejects(_tmp.Write(b), "magic", "0x58554747", "not a GGUF file");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(4u)]
    [InlineData(0x03000000u)] // a big-endian v3 file
    public void Unsupported_version(uint version)
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, "version", version), "version", version.ToString(), "unsupported GGUF version (supported: 1, 2, 3)");
    }

    [Fact]
    public void Absurd_counts()
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, "metadata_kv_count", 1UL << 40), "metadata_kv_count", "1099511627776", "more key-value pairs than the file can hold");
        GgufAssert.Rejects(Patched(g, "metadata_kv_count", ulong.MaxValue), "metadata_kv_count", ulong.MaxValue.ToString(), "count exceeds int64");
        GgufAssert.Rejects(Patched(g, "tensor_count", 1UL << 40), "tensor_count", "1099511627776", "more tensors than the file can hold");
        GgufAssert.Rejects(Patched(GgufBytes.Sample(1), "tensor_count", uint.MaxValue), "tensor_count", uint.MaxValue.ToString(), "more tensors than the file can hold");
    }

    [Fact]
    public void Absurd_string_and_array_lengths()
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, "metadata[0].key.length", 1UL << 40), "metadata[0].key.length", "1099511627776", "string longer than 1073741824 bytes");
        GgufAssert.Rejects(Patched(g, "t.str.length", 100_000), "t.str.length", "100000", "string runs past the end of the file");
        GgufAssert.Rejects(Patched(g, "t.arr_f64.count", 1UL << 60), "t.arr_f64.count", (1UL << 60).ToString(), "array longer than the file can hold");
        GgufAssert.Rejects(Patched(g, "t.arr_str.count", 1UL << 33), "t.arr_str.count", (1UL << 33).ToString(), "array longer than the file can hold");
        GgufAssert.Rejects(Patched(g, "t.nested.count", 1UL << 33), "t.nested.count", (1UL << 33).ToString(), "array longer than the file can hold");
        GgufAssert.Rejects(Patched(g, "tensor[1].name.length", 1UL << 50), "tensor[1].name.length", (1UL << 50).ToString(), "string longer than");
    }

    [Fact]
    public void Unknown_value_types()
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, "t.u8.type", 13), "t.u8.type", "13", "unknown metadata value type (valid: 0..12)");
        GgufAssert.Rejects(Patched(g, "t.arr_i32.element_type", 99), "t.arr_i32.element_type", "99", "unknown array element type");
        GgufAssert.Rejects(Patched(g, "t.nested[1].element_type", 0xFFFFFFFF), "t.nested[1].element_type", "4294967295", "unknown array element type");
        GgufAssert.Rejects(Patched(g, "t.bool", 2), "t.bool", "2", "bool must be 0 or 1");
        var arrBool = g.Find("t.arr_bool");
        var b = g.ToArray();
        b[arrBool.Start + 1] = 7;
        GgufAssert.Rejects(_tmp.Write(b), "t.arr_bool[1]", "7", "bool must be 0 or 1");
    }

    [Fact]
    public void Unknown_and_unsupported_tensor_types()
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, "a.type", 3), "a.type", "3", "unsupported tensor type"); // Q4_1
        GgufAssert.Rejects(Patched(g, "b.type", 1000), "b.type", "1000", "unsupported tensor type (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
    }

    [Fact]
    public void Bad_dimensions()
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, "a.n_dims", 0), "a.n_dims", "0", "must be 1..4");
        GgufAssert.Rejects(Patched(g, "a.n_dims", 5), "a.n_dims", "5", "must be 1..4");
        GgufAssert.Rejects(Patched(g, "a.ne[0]", 0), "a.ne[0]", "0", "dimension must be positive");
        GgufAssert.Rejects(Patched(g, "a.ne[1]", 0), "a.ne[1]", "0", "dimension must be positive");
        GgufAssert.Rejects(Patched(g, "a.ne[1]", ulong.MaxValue), "a.ne[1]", ulong.MaxValue.ToString(), "dimension must be positive");
        GgufAssert.Rejects(Patched(g, "b.ne[0]", 33), "b.ne[0]", "33", "row length is not a multiple of the Q8_0 block (32)");
        var huge = Patch(Patch(g.ToArray(), g.Find("a.ne[0]"), 1UL << 32), g.Find("a.ne[1]"), 1UL << 32);
        GgufAssert.Rejects(_tmp.Write(huge), "a.ne[1]", "4294967296", "element count overflows int64");
        // 2^62 F32 elements: the element count fits int64 but the byte count does not.
        var hugeBytes = Patch(Patch(g.ToArray(), g.Find("a.ne[0]"), 1UL << 31), g.Find("a.ne[1]"), 1UL << 31);
        GgufAssert.Rejects(_tmp.Write(hugeBytes), "a.offset", "0", "tensor data (over 2^63 bytes at");
    }

    [Fact]
    public void Bad_tensor_offsets()
    {
        var g = GgufBytes.Sample(3);
        long size = g.Position;
        GgufAssert.Rejects(Patched(g, "a.offset", 4), "a.offset", "4", "not a multiple of the alignment (32)");
        GgufAssert.Rejects(Patched(g, "b.offset", 1UL << 20), "b.offset", "1048576", $"offset past the end of the file ({size} bytes)");
        GgufAssert.Rejects(Patched(g, "b.offset", ulong.MaxValue - 31), "b.offset", (ulong.MaxValue - 31).ToString(), "offset past the end");
        GgufAssert.Rejects(Patched(g, "b.offset", 96), "b.offset", "96", "runs past the end of the file");
    }

    [Fact]
    public void Bad_alignment()
    {
        var g = GgufBytes.Sample(3);
        GgufAssert.Rejects(Patched(g, GgufKeys.Alignment, 48), GgufKeys.Alignment, "48", "must be a non-zero power of two");
        GgufAssert.Rejects(Patched(g, GgufKeys.Alignment, 0), GgufKeys.Alignment, "0", "must be a non-zero power of two");
        var wrongType = new GgufBytes(3).Header(0, 1).Kv(GgufKeys.Alignment, 0, new GgufValue(GgufValueType.Int32, 32));
        GgufAssert.Rejects(_tmp.Write(wrongType.ToArray()), GgufKeys.Alignment, "i32 32", "must be a u32");
    }

    [Fact]
    public void Duplicate_keys_and_tensor_names()
    {
        var keys = new GgufBytes(3).Header(0, 2)
            .Kv("k", 0, new GgufValue(GgufValueType.UInt8, (byte)1))
            .Kv("k", 1, new GgufValue(GgufValueType.UInt8, (byte)2));
        GgufAssert.Rejects(_tmp.Write(keys.ToArray()), "metadata[1].key", "\"k\"", "duplicate key");

        var tensors = new GgufBytes(3).Header(2, 0)
            .TensorInfo("w", 0, GgmlType.F32, [4], 0)
            .TensorInfo("w", 1, GgmlType.F32, [4], 32)
            .Pad(32, "pad").Raw(new byte[48], "data");
        GgufAssert.Rejects(_tmp.Write(tensors.ToArray()), "tensor[1].name", "\"w\"", "duplicate tensor name");
    }

    [Fact]
    public void Arrays_nested_too_deeply()
    {
        GgufValue v = new(GgufValueType.Array, new[] { 1 }, GgufValueType.Int32);
        for (int i = 0; i < 12; i++) v = new GgufValue(GgufValueType.Array, new[] { v }, GgufValueType.Array);
        var g = new GgufBytes(3).Header(0, 1).Kv("deep", 0, v);
        GgufAssert.Rejects(_tmp.Write(g.ToArray()), "deep[0][0][0][0][0][0][0][0][0]", "depth 9", "arrays nested too deeply");
    }

    [Fact]
    public void Missing_file_and_not_a_file()
    {
        string missing = _tmp.Path("absent.gguf");
        GgufAssert.Rejects(missing, "file", "-", "cannot open: no such file");
        GgufAssert.Rejects(_tmp.Dir, "file", "-", "cannot open: no such file");
    }

    private string Patched(GgufBytes g, string field, ulong value) => _tmp.Write(Patch(g.ToArray(), g.Find(field), value));

    /// <summary>Overwrites a 1-, 4- or 8-byte field in place, little-endian.</summary>
    private static byte[] Patch(byte[] b, GgufBytes.Field f, ulong value)
    {
        int width = (int)(f.End - f.Start);
        Assert.True(width is 1 or 4 or 8, $"{f.Name} is {width} bytes wide");
        if (width < 8) Assert.True(value < 1UL << (8 * width), $"{value} does not fit {f.Name}");
        for (int i = 0; i < width; i++) b[f.Start + i] = (byte)(value >> (8 * i));
        return b;
    }
}

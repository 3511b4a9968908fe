using System.Text;
using Engine.Plans.Gguf;

namespace Engine.Plans.Tests.Gguf;

/// <summary>GGUF bytes written field by field for the reader's tests, at any version (v1 stored counts, string
/// lengths and dimensions as uint32). Every field is recorded with the name the reader gives it in errors, and
/// every count guard (the reader's "more X than the file can hold" check) with where it runs, so a test can cut
/// the file at any byte and know which field the error must name.</summary>
internal sealed class GgufBytes(uint version)
{
    public sealed record Field(long Start, long End, string Name);

    /// <summary>A count the reader checks against the bytes that remain at <paramref name="At"/>.</summary>
    public sealed record Guard(long At, string CountField, long Count, int MinItemBytes);

    private readonly MemoryStream _ms = new();
    public uint Version { get; } = version;
    public List<Field> Fields { get; } = new();
    public List<Guard> Guards { get; } = new();
    public long Position => _ms.Length;
    private bool Wide => Version >= 2;

    public GgufBytes Raw(ReadOnlySpan<byte> bytes, string field)
    {
        long at = Position;
        _ms.Write(bytes);
        if (bytes.Length > 0) Fields.Add(new Field(at, Position, field));
        return this;
    }

    public GgufBytes U8(byte v, string field) => Raw([v], field);
    public GgufBytes U32(uint v, string field) => Raw(BitConverter.GetBytes(v), field);
    public GgufBytes U64(ulong v, string field) => Raw(BitConverter.GetBytes(v), field);

    /// <summary>A count or length: uint64 from v2 on, uint32 in v1.</summary>
    public GgufBytes Count(ulong v, string field) => Wide ? U64(v, field) : U32(checked((uint)v), field);

    public GgufBytes Str(string s, string field)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Count((ulong)b.Length, field + ".length");
        return Raw(b, field + ".length"); // the reader names the length when the bytes run short
    }

    public GgufBytes GuardHere(string countField, long count, int minItemBytes)
    {
        Guards.Add(new Guard(Position, countField, count, minItemBytes));
        return this;
    }

    /// <summary>Zero bytes up to the next multiple of <paramref name="align"/>.</summary>
    public GgufBytes Pad(int align, string field)
    {
        int n = (int)(GgufWriter.Align(Position, align) - Position);
        return Raw(new byte[n], field);
    }

    public GgufBytes Header(ulong tensors, ulong kvs)
    {
        Raw("GGUF"u8, "magic").U32(Version, "version").Count(tensors, "tensor_count").Count(kvs, "metadata_kv_count");
        return GuardHere("metadata_kv_count", (long)kvs, Wide ? 13 : 9);
    }

    public GgufBytes Kv(string key, int index, GgufValue v)
    {
        Str(key, $"metadata[{index}].key");
        U32((uint)v.Type, key + ".type");
        return Value(v, key);
    }

    public GgufBytes Value(GgufValue v, string field)
    {
        switch (v.Value)
        {
            case string s: return Str(s, field);
            case Array a:
                U32((uint)v.ElementType, field + ".element_type");
                Count((ulong)a.Length, field + ".count");
                GuardHere(field + ".count", a.Length, MinElementBytes(v.ElementType));
                switch (a)
                {
                    case string[] ss: for (int i = 0; i < ss.Length; i++) Str(ss[i], $"{field}[{i}]"); break;
                    case GgufValue[] vs: for (int i = 0; i < vs.Length; i++) Value(vs[i], $"{field}[{i}]"); break;
                    default:
                        var body = new List<byte>();
                        foreach (object o in a) body.AddRange(ScalarBytes(o));
                        Raw(body.ToArray(), field);
                        break;
                }
                return this;
            default: return Raw(ScalarBytes(v.Value), field);
        }
    }

    public GgufBytes TensorInfo(string name, int index, GgmlType type, long[] dims, ulong offset)
    {
        Str(name, $"tensor[{index}].name");
        U32((uint)dims.Length, name + ".n_dims");
        for (int d = 0; d < dims.Length; d++)
            if (Wide) U64((ulong)dims[d], $"{name}.ne[{d}]"); else U32((uint)dims[d], $"{name}.ne[{d}]");
        U32((uint)type, name + ".type");
        return U64(offset, name + ".offset");
    }

    public byte[] ToArray() => _ms.ToArray();

    public Field Find(string name) => Fields.First(f => f.Name == name);

    /// <summary>The field the reader must name when the file is cut to <paramref name="length"/> bytes, or null
    /// when that prefix is still a whole file: the first event in reading order among a count guard that fails
    /// and the field that the cut falls inside.</summary>
    public string? ExpectedTruncationField(long length)
    {
        var failedGuard = Guards.Where(g => g.At <= length && g.Count * g.MinItemBytes > length - g.At)
            .Select(g => (Pos: g.At, Rank: 0, Name: g.CountField));
        var cutField = Fields.Where(f => f.Start <= length && length < f.End).Select(f => (Pos: f.Start, Rank: 1, f.Name));
        var first = failedGuard.Concat(cutField).OrderBy(e => e.Pos).ThenBy(e => e.Rank).FirstOrDefault();
        return first.Name;
    }

    private int MinElementBytes(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        GgufValueType.String => Wide ? 8 : 4,
        _ => Wide ? 12 : 8,
    };

    private static byte[] ScalarBytes(object o) => o switch
    {
        byte b => [b],
        sbyte sb => [(byte)sb],
        ushort us => BitConverter.GetBytes(us),
        short s => BitConverter.GetBytes(s),
        uint ui => BitConverter.GetBytes(ui),
        int i => BitConverter.GetBytes(i),
        float f => BitConverter.GetBytes(f),
        bool bo => [bo ? (byte)1 : (byte)0],
        ulong ul => BitConverter.GetBytes(ul),
        long l => BitConverter.GetBytes(l),
        double d => BitConverter.GetBytes(d),
        _ => throw new ArgumentException("not a GGUF scalar: " + o.GetType()),
    };

    /// <summary>Metadata of every value type, nested and empty arrays included (the sample's key-value pairs).</summary>
    public static (string Key, GgufValue Value)[] AllValueTypes() =>
    [
        (GgufKeys.Architecture, new(GgufValueType.String, "llama")),
        (GgufKeys.Alignment, new(GgufValueType.UInt32, 32u)),
        ("t.u8", new(GgufValueType.UInt8, (byte)200)),
        ("t.i8", new(GgufValueType.Int8, (sbyte)-100)),
        ("t.u16", new(GgufValueType.UInt16, (ushort)60000)),
        ("t.i16", new(GgufValueType.Int16, (short)-30000)),
        ("t.u32", new(GgufValueType.UInt32, 4_000_000_000u)),
        ("t.i32", new(GgufValueType.Int32, -2_000_000_000)),
        ("t.f32", new(GgufValueType.Float32, 1.5f)),
        ("t.bool", new(GgufValueType.Bool, true)),
        ("t.str", new(GgufValueType.String, "héllo ✓")),
        ("t.u64", new(GgufValueType.UInt64, ulong.MaxValue)),
        ("t.i64", new(GgufValueType.Int64, long.MinValue)),
        ("t.f64", new(GgufValueType.Float64, -0.125)),
        ("t.arr_u8", new(GgufValueType.Array, new byte[] { 1, 2, 255 }, GgufValueType.UInt8)),
        ("t.arr_i8", new(GgufValueType.Array, new sbyte[] { -1, 2 }, GgufValueType.Int8)),
        ("t.arr_u16", new(GgufValueType.Array, new ushort[] { 1, 65535 }, GgufValueType.UInt16)),
        ("t.arr_i16", new(GgufValueType.Array, new short[] { -1, 7 }, GgufValueType.Int16)),
        ("t.arr_u32", new(GgufValueType.Array, new uint[] { 1, uint.MaxValue }, GgufValueType.UInt32)),
        ("t.arr_i32", new(GgufValueType.Array, new[] { 1, -2, 3 }, GgufValueType.Int32)),
        ("t.arr_f32", new(GgufValueType.Array, new[] { 0.5f, float.NegativeInfinity }, GgufValueType.Float32)),
        ("t.arr_bool", new(GgufValueType.Array, new[] { true, false }, GgufValueType.Bool)),
        ("t.arr_str", new(GgufValueType.Array, new[] { "a", "", "bc" }, GgufValueType.String)),
        ("t.arr_u64", new(GgufValueType.Array, new ulong[] { 0, ulong.MaxValue }, GgufValueType.UInt64)),
        ("t.arr_i64", new(GgufValueType.Array, new long[] { long.MinValue, 5 }, GgufValueType.Int64)),
        ("t.arr_f64", new(GgufValueType.Array, new[] { 1e300, -2.5 }, GgufValueType.Float64)),
        ("t.arr_empty", new(GgufValueType.Array, Array.Empty<float>(), GgufValueType.Float32)),
        ("t.arr_empty_str", new(GgufValueType.Array, Array.Empty<string>(), GgufValueType.String)),
        ("t.nested", new(GgufValueType.Array, new GgufValue[]
        {
            new(GgufValueType.Array, new byte[] { 1, 2 }, GgufValueType.UInt8),
            new(GgufValueType.Array, Array.Empty<int>(), GgufValueType.Int32),
            new(GgufValueType.Array, new[] { "x", "yz" }, GgufValueType.String),
            new(GgufValueType.Array, new GgufValue[] { new(GgufValueType.Array, new[] { 9L }, GgufValueType.Int64) }, GgufValueType.Array),
        }, GgufValueType.Array)),
        ("t.nested_empty", new(GgufValueType.Array, Array.Empty<GgufValue>(), GgufValueType.Array)),
    ];

    /// <summary>The sample tensors: an F32 matrix and a Q8_0 row, with recognisable data.</summary>
    public static (string Name, GgmlType Type, long[] Dims, byte[] Data)[] SampleTensors() =>
    [
        ("a", GgmlType.F32, [8, 2], Enumerable.Range(0, 64).Select(i => (byte)i).ToArray()),
        ("b", GgmlType.Q8_0, [32], Enumerable.Range(0, 34).Select(i => (byte)(200 - i)).ToArray()),
    ];

    /// <summary>A whole file: every value type, two tensors at 32-byte aligned offsets, no padding after the
    /// last tensor (so every shorter prefix is a truncated file).</summary>
    public static GgufBytes Sample(uint version)
    {
        var kvs = AllValueTypes();
        var tensors = SampleTensors();
        var g = new GgufBytes(version).Header((ulong)tensors.Length, (ulong)kvs.Length);
        for (int i = 0; i < kvs.Length; i++) g.Kv(kvs[i].Key, i, kvs[i].Value);
        g.GuardHere("tensor_count", tensors.Length, version >= 2 ? 32 : 24);
        ulong offset = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            g.TensorInfo(tensors[i].Name, i, tensors[i].Type, tensors[i].Dims, offset);
            offset = (ulong)GgufWriter.Align((long)offset + tensors[i].Data.Length, 32);
        }
        g.Pad(32, tensors[0].Name + ".offset");
        for (int i = 0; i < tensors.Length; i++)
        {
            if (i > 0) g.Pad(32, tensors[i].Name + ".offset");
            g.Raw(tensors[i].Data, tensors[i].Name + ".offset");
        }
        return g;
    }
}

using System.Text;

namespace Engine.Plans.Gguf;

/// <summary>Builds GGUF v3 files that llama.cpp loads: metadata in insertion order, tensor infos in insertion
/// order, each tensor's data at the next multiple of the alignment (gguf.cpp gguf_write_to_buf is the model).
/// <see cref="Layout"/> gives every offset up front, so large files can be filled in parallel.</summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _kv = new();
    private readonly List<(string Name, GgmlType Type, long[] Dims)> _tensors = new();

    public uint Alignment { get; private set; } = 32;

    public GgufWriter Set(string key, GgufValue value)
    {
        int i = _kv.FindIndex(x => x.Key == key);
        if (i >= 0) _kv[i] = (key, value); else _kv.Add((key, value));
        if (key == GgufKeys.Alignment) Alignment = value.Value is uint a ? a : throw new ArgumentException("general.alignment must be u32");
        return this;
    }

    public GgufWriter Set(string key, string v) => Set(key, new GgufValue(GgufValueType.String, v));
    public GgufWriter Set(string key, uint v) => Set(key, new GgufValue(GgufValueType.UInt32, v));
    public GgufWriter Set(string key, int v) => Set(key, new GgufValue(GgufValueType.Int32, v));
    public GgufWriter Set(string key, float v) => Set(key, new GgufValue(GgufValueType.Float32, v));
    public GgufWriter Set(string key, bool v) => Set(key, new GgufValue(GgufValueType.Bool, v));
    public GgufWriter Set(string key, string[] v) => Set(key, new GgufValue(GgufValueType.Array, v, GgufValueType.String));
    public GgufWriter Set(string key, float[] v) => Set(key, new GgufValue(GgufValueType.Array, v, GgufValueType.Float32));
    public GgufWriter Set(string key, int[] v) => Set(key, new GgufValue(GgufValueType.Array, v, GgufValueType.Int32));

    /// <summary>Adds a tensor info; dims in GGUF order (row length first). Returns its index.</summary>
    public int AddTensor(string name, GgmlType type, params long[] dims)
    {
        if (dims.Length is 0 or > 4) throw new ArgumentException($"{name}: 1..4 dims");
        if (dims[0] % GgmlTypeInfo.BlockElements(type) != 0) throw new ArgumentException($"{name}: ne[0]={dims[0]} not a multiple of the {type} block");
        _tensors.Add((name, type, (long[])dims.Clone()));
        return _tensors.Count - 1;
    }

    public IReadOnlyList<(string Name, GgmlType Type, long[] Dims)> Tensors => _tensors;

    public sealed record TensorSlot(string Name, GgmlType Type, long[] Dims, long FileOffset, long ByteSize);

    /// <summary>The encoded header (padded to the data section) and the absolute place of every tensor.</summary>
    public sealed record FileLayout(byte[] Header, IReadOnlyList<TensorSlot> Slots, long FileSize);

    public FileLayout Layout()
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true);
        w.Write(0x46554747u);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_kv.Count);
        foreach (var (k, v) in _kv)
        {
            WriteString(w, k);
            w.Write((uint)v.Type);
            WriteValue(w, v);
        }
        long rel = 0;
        var rels = new long[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (name, type, dims) = _tensors[i];
            WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (long d in dims) w.Write((ulong)d);
            w.Write((uint)type);
            w.Write((ulong)rel);
            rels[i] = rel;
            rel = Align(rel + Bytes(type, dims), Alignment);
        }
        w.Flush();
        // The data section starts at the next multiple of the alignment; a file without tensors (a vocabulary-only
        // GGUF) ends with its header, unpadded, as llama.cpp's files in models/vocab do.
        long dataStart = _tensors.Count == 0 ? ms.Length : Align(ms.Length, Alignment);
        ms.SetLength(dataStart);
        var slots = new TensorSlot[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var (name, type, dims) = _tensors[i];
            slots[i] = new TensorSlot(name, type, dims, dataStart + rels[i], Bytes(type, dims));
        }
        long end = slots.Length == 0 ? dataStart : slots[^1].FileOffset + slots[^1].ByteSize;
        return new FileLayout(ms.ToArray(), slots, end);
    }

    /// <summary>Writes the whole file to <paramref name="path"/>.part, then renames it: a crash leaves no
    /// partial file under the final name. <paramref name="data"/> gives each tensor's bytes.</summary>
    public void Write(string path, Func<int, ReadOnlyMemory<byte>> data)
    {
        var layout = Layout();
        string part = path + ".part";
        try
        {
            using (var fs = new FileStream(part, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(layout.Header);
                for (int i = 0; i < layout.Slots.Count; i++)
                {
                    var s = layout.Slots[i];
                    var bytes = data(i);
                    if (bytes.Length != s.ByteSize) throw new ArgumentException($"{s.Name}: {bytes.Length} bytes given, {s.ByteSize} expected");
                    if (fs.Position < s.FileOffset) fs.Write(new byte[s.FileOffset - fs.Position]);
                    fs.Write(bytes.Span);
                }
                if (fs.Length < layout.FileSize) fs.SetLength(layout.FileSize);
            }
            File.Move(part, path, overwrite: true);
        }
        catch
        {
            TryDelete(part);
            throw;
        }
    }

    /// <summary>Writes metadata and tensor infos with a sparse (unwritten) data region of the full size, so a
    /// 70B-shaped file costs a few MB of disk and the planner sees real offsets.</summary>
    public void WriteHeaderOnly(string path)
    {
        var layout = Layout();
        string part = path + ".part";
        try
        {
            using (var fs = new FileStream(part, FileMode.Create, FileAccess.Write))
            {
                fs.Write(layout.Header);
                fs.SetLength(layout.FileSize);
            }
            File.Move(part, path, overwrite: true);
        }
        catch
        {
            TryDelete(part);
            throw;
        }
    }

    public static long Align(long x, long a) => (x + a - 1) / a * a;

    private static long Bytes(GgmlType t, long[] dims)
    {
        long n = 1; foreach (long d in dims) n *= d;
        return n / GgmlTypeInfo.BlockElements(t) * GgmlTypeInfo.BlockBytes(t);
    }

    private static void TryDelete(string p) { try { File.Delete(p); } catch (IOException) { } }

    private static void WriteString(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    private static void WriteValue(BinaryWriter w, GgufValue v)
    {
        switch (v.Type)
        {
            case GgufValueType.Array:
                w.Write((uint)v.ElementType);
                var arr = (Array)v.Value;
                w.Write((ulong)arr.Length);
                switch (arr)
                {
                    case string[] ss: foreach (var s in ss) WriteString(w, s); break;
                    case GgufValue[] vs:
                        foreach (var x in vs) WriteValue(w, x);
                        break;
                    default:
                        foreach (var o in arr) WriteScalar(w, v.ElementType, o!);
                        break;
                }
                break;
            default:
                WriteScalar(w, v.Type, v.Value);
                break;
        }
    }

    private static void WriteScalar(BinaryWriter w, GgufValueType t, object o)
    {
        switch (t)
        {
            case GgufValueType.UInt8: w.Write(Convert.ToByte(o)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(o)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(o)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(o)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(o)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(o)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(o)); break;
            case GgufValueType.Bool: w.Write((bool)o ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)o); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(o)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(o)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(o)); break;
            default: throw new ArgumentException("cannot write value type " + t);
        }
    }
}

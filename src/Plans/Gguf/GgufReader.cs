using System.IO.MemoryMappedFiles;
using System.Text;

namespace Engine.Plans.Gguf;

/// <summary>A GGUF file (v1, v2, v3) read over a memory map. Every length, count and offset is checked against
/// the bytes that remain before it is used (gguf.cpp's gguf_init_from_file_impl is the model); a malformed file
/// throws one <see cref="GgufException"/> naming the file, offset, field and value.</summary>
public sealed unsafe class GgufFile : IDisposable
{
    /// <summary>Largest string the reader accepts (1 GiB): a larger length is treated as corrupt, as in gguf.cpp.</summary>
    public const long MaxStringLength = 1L << 30;

    public string Path { get; }
    public uint Version { get; }
    public long FileSize { get; }
    public uint Alignment { get; }
    /// <summary>Absolute file offset of the tensor data section.</summary>
    public long DataOffset { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> MetadataKeys => _keys;
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;

    private readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);
    private readonly List<string> _keys = new();
    private readonly List<GgufTensorInfo> _tensors = new();
    private readonly Dictionary<string, GgufTensorInfo> _byName = new(StringComparer.Ordinal);
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;

    private GgufFile(string path)
    {
        Path = path;
        string shown = System.IO.Path.GetFileName(path);
        FileInfo fi;
        try { fi = new FileInfo(path); if (!fi.Exists) throw new FileNotFoundException(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GgufException(path, 0, "file", "-", "cannot open: " + (e is FileNotFoundException ? "no such file" : e.Message));
        }
        FileSize = fi.Length;
        if (FileSize == 0) throw new GgufException(path, 0, "magic", "(empty file)", "not a GGUF file: the file is empty");
        try
        {
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw new GgufException(path, 0, "file", "-", "cannot map: " + e.Message);
        }

        var c = new Cursor(_base, FileSize, path);
        try
        {
            uint magic = c.U32("magic");
            if (magic != 0x46554747u)
                throw c.Error(0, "magic", $"0x{magic:X8}", "not a GGUF file (expected \"GGUF\")");
            long vpos = c.Pos;
            Version = c.U32("version");
            if (Version is < 1 or > 3)
                throw c.Error(vpos, "version", Version.ToString(), "unsupported GGUF version (supported: 1, 2, 3)");
            bool wide = Version >= 2; // v1 stored counts and string lengths as uint32
            c.Wide = wide;
            long tpos = c.Pos;
            long nTensors = c.Count("tensor_count");
            long kpos = c.Pos;
            long nKv = c.Count("metadata_kv_count");
            // Guards against absurd counts, each checked against the bytes that remain where its section starts:
            // a key-value pair needs at least a key length, a type and one value byte (8+4+1; 4+4+1 in v1).
            if (nKv > c.Remaining / (wide ? 13 : 9))
                throw c.Error(kpos, "metadata_kv_count", nKv.ToString(), $"more key-value pairs than the file can hold ({c.Remaining} bytes remain)");

            long alignPos = -1;
            for (long i = 0; i < nKv; i++)
            {
                long at = c.Pos;
                string key = c.Str($"metadata[{i}].key");
                if (_metadata.ContainsKey(key))
                    throw c.Error(at, $"metadata[{i}].key", Quote(key), "duplicate key");
                long typePos = c.Pos;
                uint t = c.U32($"{key}.type");
                if (t > 12) throw c.Error(typePos, $"{key}.type", t.ToString(), "unknown metadata value type (valid: 0..12)");
                if (key == GgufKeys.Alignment) alignPos = c.Pos;
                var v = ReadValue(ref c, (GgufValueType)t, key, depth: 0);
                _metadata.Add(key, v);
                _keys.Add(key);
            }

            // A tensor info needs at least a name length, n_dims, one dimension, a type and an offset
            // (8+4+8+4+8; 4+4+4+4+8 in v1, whose dimensions were uint32).
            if (nTensors > c.Remaining / (wide ? 32 : 24))
                throw c.Error(tpos, "tensor_count", nTensors.ToString(), $"more tensors than the file can hold ({c.Remaining} bytes remain)");

            uint align = 32;
            if (_metadata.TryGetValue(GgufKeys.Alignment, out var av))
            {
                if (av.Value is not uint a)
                    throw c.Error(alignPos, GgufKeys.Alignment, $"{GgufValue.TypeName(av.Type)} {Shown(av)}", "must be a u32");
                if (a == 0 || (a & (a - 1)) != 0)
                    throw c.Error(alignPos, GgufKeys.Alignment, a.ToString(), "must be a non-zero power of two");
                align = a;
            }
            Alignment = align;

            var infos = new List<(string name, GgmlType type, long[] dims, long off, long at)>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (long i = 0; i < nTensors; i++)
            {
                long at = c.Pos;
                string name = c.Str($"tensor[{i}].name");
                if (!names.Add(name))
                    throw c.Error(at, $"tensor[{i}].name", Quote(name), "duplicate tensor name");
                long dpos = c.Pos;
                uint nd = c.U32($"{name}.n_dims");
                if (nd is 0 or > 4) throw c.Error(dpos, $"{name}.n_dims", nd.ToString(), "must be 1..4 (GGML_MAX_DIMS)");
                var dims = new long[nd];
                long elements = 1;
                for (int d = 0; d < nd; d++)
                {
                    long dp = c.Pos;
                    ulong raw = wide ? c.U64($"{name}.ne[{d}]") : c.U32($"{name}.ne[{d}]");
                    if (raw == 0 || raw > long.MaxValue)
                        throw c.Error(dp, $"{name}.ne[{d}]", raw.ToString(), "dimension must be positive and below 2^63");
                    dims[d] = (long)raw;
                    if (elements > long.MaxValue / dims[d])
                        throw c.Error(dp, $"{name}.ne[{d}]", raw.ToString(), "element count overflows int64");
                    elements *= dims[d];
                }
                long typos = c.Pos;
                uint ty = c.U32($"{name}.type");
                if (!GgmlTypeInfo.IsKnown(ty))
                    throw c.Error(typos, $"{name}.type", ty.ToString(), "unsupported tensor type (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
                var type = (GgmlType)ty;
                int be = GgmlTypeInfo.BlockElements(type);
                if (dims[0] % be != 0)
                    throw c.Error(dpos, $"{name}.ne[0]", dims[0].ToString(), $"row length is not a multiple of the {type} block ({be})");
                long opos = c.Pos;
                ulong off = c.U64($"{name}.offset");
                if (off % align != 0)
                    throw c.Error(opos, $"{name}.offset", off.ToString(), $"not a multiple of the alignment ({align})");
                if (off > (ulong)FileSize) throw c.Error(opos, $"{name}.offset", off.ToString(), $"offset past the end of the file ({FileSize} bytes)");
                infos.Add((name, type, dims, (long)off, opos));
            }

            long dataStart = (c.Pos + align - 1) / align * align;
            DataOffset = dataStart;
            foreach (var (name, type, dims, off, at) in infos)
            {
                long elements = 1; foreach (long d in dims) elements *= d;
                long blocks = elements / GgmlTypeInfo.BlockElements(type);
                int blockBytes = GgmlTypeInfo.BlockBytes(type);
                long start = dataStart + off; // both at most FileSize: no overflow
                // Compare in blocks first: blocks * blockBytes can overflow int64 for absurd dimensions.
                if (start > FileSize || blocks > (FileSize - start) / blockBytes)
                    throw c.Error(at, $"{name}.offset", off.ToString(),
                        $"tensor data ({(blocks > long.MaxValue / blockBytes ? "over 2^63" : (blocks * blockBytes).ToString())} bytes at {start}) runs past the end of the file ({FileSize} bytes)");
                var info = new GgufTensorInfo(name, type, dims, off, start, blocks * blockBytes);
                _tensors.Add(info);
                _byName.Add(name, info);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens and validates a GGUF file; throws <see cref="GgufException"/> on any defect.</summary>
    public static GgufFile Open(string path) => new(path);

    public bool TryGetTensor(string name, out GgufTensorInfo info) => _byName.TryGetValue(name, out info!);

    public GgufTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The bytes of a tensor, straight from the map (valid until the file is disposed).</summary>
    public ReadOnlySpan<byte> TensorData(GgufTensorInfo t) => new(_base + t.FileOffset, checked((int)t.ByteSize));

    /// <summary>Pointer to a tensor's first byte in the map, for tensors over 2 GiB and for native copies.</summary>
    public byte* TensorPointer(GgufTensorInfo t) => _base + t.FileOffset;

    public byte* BasePointer => _base;

    public void Dispose()
    {
        if (_view != null)
        {
            if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }

    private static string Shown(GgufValue v) => v.Value is Array a ? $"[{a.Length} elements]" : v.Value.ToString() ?? "?";

    private static string Quote(string s) => "\"" + (s.Length > 64 ? s[..64] + "…" : s) + "\"";

    private static GgufValue ReadValue(ref Cursor c, GgufValueType t, string field, int depth)
    {
        switch (t)
        {
            case GgufValueType.UInt8: return new(t, c.U8(field));
            case GgufValueType.Int8: return new(t, (sbyte)c.U8(field));
            case GgufValueType.UInt16: return new(t, c.U16(field));
            case GgufValueType.Int16: return new(t, (short)c.U16(field));
            case GgufValueType.UInt32: return new(t, c.U32(field));
            case GgufValueType.Int32: return new(t, (int)c.U32(field));
            case GgufValueType.Float32: return new(t, BitConverter.UInt32BitsToSingle(c.U32(field)));
            case GgufValueType.Bool:
            {
                long at = c.Pos;
                byte b = c.U8(field);
                if (b > 1) throw c.Error(at, field, b.ToString(), "bool must be 0 or 1");
                return new(t, b == 1);
            }
            case GgufValueType.String: return new(t, c.Str(field));
            case GgufValueType.UInt64: return new(t, c.U64(field));
            case GgufValueType.Int64: return new(t, (long)c.U64(field));
            case GgufValueType.Float64: return new(t, BitConverter.UInt64BitsToDouble(c.U64(field)));
            case GgufValueType.Array:
            {
                long at = c.Pos;
                uint et = c.U32(field + ".element_type");
                if (et > 12) throw c.Error(at, field + ".element_type", et.ToString(), "unknown array element type (valid: 0..12)");
                if (depth > 8) throw c.Error(at, field, "depth " + depth, "arrays nested too deeply");
                var e = (GgufValueType)et;
                long cpos = c.Pos;
                long n = c.Count(field + ".count");
                int min = e switch
                {
                    GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                    GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                    GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                    GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
                    GgufValueType.String => c.Wide ? 8 : 4, // the length alone
                    _ => c.Wide ? 12 : 8, // nested array: type + count
                };
                if (n > c.Remaining / min || n > int.MaxValue)
                    throw c.Error(cpos, field + ".count", n.ToString(), $"array longer than the file can hold ({c.Remaining} bytes remain)");
                int count = (int)n;
                object arr = e switch
                {
                    GgufValueType.UInt8 => c.Bytes(count, field).ToArray(),
                    GgufValueType.Int8 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(c.Bytes(count, field)).ToArray(),
                    GgufValueType.UInt16 => Prim<ushort>(ref c, count, field),
                    GgufValueType.Int16 => Prim<short>(ref c, count, field),
                    GgufValueType.UInt32 => Prim<uint>(ref c, count, field),
                    GgufValueType.Int32 => Prim<int>(ref c, count, field),
                    GgufValueType.Float32 => Prim<float>(ref c, count, field),
                    GgufValueType.UInt64 => Prim<ulong>(ref c, count, field),
                    GgufValueType.Int64 => Prim<long>(ref c, count, field),
                    GgufValueType.Float64 => Prim<double>(ref c, count, field),
                    GgufValueType.Bool => Bools(ref c, count, field),
                    GgufValueType.String => Strings(ref c, count, field),
                    _ => Nested(ref c, count, field, depth),
                };
                return new(t, arr, e);
            }
            default:
                throw c.Error(c.Pos, field, ((uint)t).ToString(), "unknown metadata value type");
        }
    }

    private static T[] Prim<T>(ref Cursor c, int count, string field) where T : unmanaged
    {
        var span = c.Bytes(checked(count * sizeof(T)), field);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(span).ToArray();
    }

    private static bool[] Bools(ref Cursor c, int count, string field)
    {
        long at = c.Pos;
        var span = c.Bytes(count, field);
        var r = new bool[count];
        for (int i = 0; i < count; i++)
        {
            if (span[i] > 1) throw c.Error(at + i, $"{field}[{i}]", span[i].ToString(), "bool must be 0 or 1");
            r[i] = span[i] == 1;
        }
        return r;
    }

    private static string[] Strings(ref Cursor c, int count, string field)
    {
        var r = new string[count];
        for (int i = 0; i < count; i++) r[i] = c.Str(field + "[" + i + "]");
        return r;
    }

    private static GgufValue[] Nested(ref Cursor c, int count, string field, int depth)
    {
        var r = new GgufValue[count];
        for (int i = 0; i < count; i++) r[i] = ReadValue(ref c, GgufValueType.Array, $"{field}[{i}]", depth + 1);
        return r;
    }

    /// <summary>A bounds-checked little-endian reader over the mapped header.</summary>
    private struct Cursor(byte* p, long length, string file)
    {
        public long Pos;
        public bool Wide = true;
        public readonly long Remaining => length - Pos;

        public readonly GgufException Error(long at, string field, string value, string reason) => new(file, at, field, value, reason);

        private readonly void Need(long n, string field)
        {
            if (n > length - Pos)
                throw Error(Pos, field, "-", $"truncated: needs {n} bytes, {length - Pos} remain");
        }

        public byte U8(string f) { Need(1, f); return p[Pos++]; }
        public ushort U16(string f) { Need(2, f); ushort v = *(ushort*)(p + Pos); Pos += 2; return v; }
        public uint U32(string f) { Need(4, f); uint v = *(uint*)(p + Pos); Pos += 4; return v; }
        public ulong U64(string f) { Need(8, f); ulong v = *(ulong*)(p + Pos); Pos += 8; return v; }

        /// <summary>A count or length: uint64 in v2+, uint32 in v1.</summary>
        public long Count(string f)
        {
            long at = Pos;
            ulong v = Wide ? U64(f) : U32(f);
            if (v > long.MaxValue) throw Error(at, f, v.ToString(), "count exceeds int64");
            return (long)v;
        }

        public ReadOnlySpan<byte> Bytes(int n, string f) { Need(n, f); var s = new ReadOnlySpan<byte>(p + Pos, n); Pos += n; return s; }

        public string Str(string f)
        {
            long at = Pos;
            long n = Count(f + ".length");
            if (n > MaxStringLength) throw Error(at, f + ".length", n.ToString(), $"string longer than {MaxStringLength} bytes");
            if (n > Remaining) throw Error(at, f + ".length", n.ToString(), $"string runs past the end of the file ({Remaining} bytes remain)");
            var s = Encoding.UTF8.GetString(p + Pos, (int)n);
            Pos += n;
            return s;
        }
    }
}

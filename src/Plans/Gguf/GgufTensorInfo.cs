namespace Engine.Plans.Gguf;

/// <summary>One tensor info record. <see cref="Dims"/> is in GGUF order (ne[0] first: the row length).
/// <see cref="Offset"/> is relative to the data section; <see cref="FileOffset"/> is absolute.</summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dims, long Offset, long FileOffset, long ByteSize)
{
    public long Elements
    {
        get { long n = 1; foreach (long d in Dims) n *= d; return n; }
    }

    /// <summary>Row length (ne[0]) and row count (product of the other dims).</summary>
    public long Columns => Dims.Length > 0 ? Dims[0] : 1;
    public long Rows => Dims.Length > 0 ? Elements / Dims[0] : 1;

    public string Shape => "[" + string.Join(", ", Dims) + "]";
}

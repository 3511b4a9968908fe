namespace Engine.Plans.Gguf;

/// <summary>Tensor element types, numbered as in ggml.h (enum ggml_type). Only the types the engine
/// reads are listed by name; any other id is rejected by the reader with the id it found.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    BF16 = 30,
}

/// <summary>Block geometry of each type: elements per block and bytes per block (ggml's type_traits).</summary>
public static class GgmlTypeInfo
{
    public static bool IsKnown(uint id) => id is 0 or 1 or 2 or 8 or 12 or 13 or 14 or 30;

    public static int BlockElements(GgmlType t) => t switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 => 1,
        GgmlType.Q4_0 or GgmlType.Q8_0 => 32,
        GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K => 256,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown ggml type"),
    };

    public static int BlockBytes(GgmlType t) => t switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q4_0 => 18,
        GgmlType.Q8_0 => 34,
        GgmlType.Q4_K => 144,
        GgmlType.Q5_K => 176,
        GgmlType.Q6_K => 210,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown ggml type"),
    };

    /// <summary>Bytes of a row of <paramref name="elements"/> elements; the caller has checked divisibility.</summary>
    public static long RowBytes(GgmlType t, long elements) => elements / BlockElements(t) * BlockBytes(t);

    public static string Name(GgmlType t) => t.ToString();
}

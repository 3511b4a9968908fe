namespace Engine.Plans.Gguf;

/// <summary>GGUF metadata value types (gguf.h, enum gguf_type).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>One metadata value. Scalars are boxed .NET primitives; strings are <see cref="string"/>;
/// arrays are typed .NET arrays (byte[], sbyte[], ushort[], short[], uint[], int[], float[], bool[], string[],
/// ulong[], long[], double[]) or, for arrays of arrays, <see cref="GgufValue"/>[].</summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public bool IsArray => Type == GgufValueType.Array;

    public int ArrayLength => Value is Array a ? a.Length : throw new InvalidOperationException("not an array");

    /// <summary>Integer view of any integer-typed scalar (and bool), for keys whose writers disagree on width.</summary>
    public bool TryGetInt64(out long v)
    {
        switch (Value)
        {
            case byte b: v = b; return true;
            case sbyte sb: v = sb; return true;
            case ushort us: v = us; return true;
            case short s: v = s; return true;
            case uint ui: v = ui; return true;
            case int i: v = i; return true;
            case ulong ul when ul <= long.MaxValue: v = (long)ul; return true;
            case long l: v = l; return true;
            case bool bo: v = bo ? 1 : 0; return true;
            default: v = 0; return false;
        }
    }

    public bool TryGetDouble(out double v)
    {
        switch (Value)
        {
            case float f: v = f; return true;
            case double d: v = d; return true;
            default:
                if (TryGetInt64(out long l)) { v = l; return true; }
                v = 0; return false;
        }
    }

    public static string TypeName(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => "u8", GgufValueType.Int8 => "i8", GgufValueType.UInt16 => "u16",
        GgufValueType.Int16 => "i16", GgufValueType.UInt32 => "u32", GgufValueType.Int32 => "i32",
        GgufValueType.Float32 => "f32", GgufValueType.Bool => "bool", GgufValueType.String => "str",
        GgufValueType.Array => "arr", GgufValueType.UInt64 => "u64", GgufValueType.Int64 => "i64",
        GgufValueType.Float64 => "f64", _ => $"type{(uint)t}",
    };
}

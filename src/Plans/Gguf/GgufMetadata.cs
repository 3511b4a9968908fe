namespace Engine.Plans.Gguf;

/// <summary>Typed metadata look-ups. A missing or mistyped required key is a <see cref="GgufException"/>
/// naming the key and what was found.</summary>
public static class GgufMetadata
{
    public static bool Has(this GgufFile f, string key) => f.Metadata.ContainsKey(key);

    public static string GetString(this GgufFile f, string key) =>
        f.Metadata.TryGetValue(key, out var v) && v.Value is string s ? s : throw Missing(f, key, v, "a string");

    public static string? GetStringOrNull(this GgufFile f, string key) =>
        f.Metadata.TryGetValue(key, out var v) && v.Value is string s ? s : null;

    public static long GetInt(this GgufFile f, string key) =>
        f.Metadata.TryGetValue(key, out var v) && v.TryGetInt64(out long l) ? l : throw Missing(f, key, v, "an integer");

    public static long GetIntOr(this GgufFile f, string key, long fallback) =>
        f.Metadata.TryGetValue(key, out var v) && v.TryGetInt64(out long l) ? l : fallback;

    public static double GetFloat(this GgufFile f, string key) =>
        f.Metadata.TryGetValue(key, out var v) && v.TryGetDouble(out double d) ? d : throw Missing(f, key, v, "a number");

    public static double GetFloatOr(this GgufFile f, string key, double fallback) =>
        f.Metadata.TryGetValue(key, out var v) && v.TryGetDouble(out double d) ? d : fallback;

    public static bool GetBoolOr(this GgufFile f, string key, bool fallback) =>
        f.Metadata.TryGetValue(key, out var v) && v.Value is bool b ? b : fallback;

    public static T[]? GetArrayOrNull<T>(this GgufFile f, string key) =>
        f.Metadata.TryGetValue(key, out var v) && v.Value is T[] a ? a : null;

    private static GgufException Missing(GgufFile f, string key, GgufValue? v, string wanted) =>
        new(f.Path, 0, key, v == null ? "(missing)" : $"{GgufValue.TypeName(v.Type)} {v.Value}", $"required key must be {wanted}");
}

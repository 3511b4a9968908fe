namespace Engine.Generators.Model;

/// <summary>A tensor: role (input, weight, activation, kv_cache, output), shape as normalised expressions (row length
/// first), element type, whether it exists per layer, optional with a fallback, and its first/last use as op
/// indices in program order (-1 when unused).</summary>
public sealed record TensorSpec(
    string Name,
    string Role,
    EquatableArray<string> Shape,
    string ElementType,
    bool PerLayer,
    bool Optional,
    string? Fallback,
    int FirstUse,
    int LastUse);

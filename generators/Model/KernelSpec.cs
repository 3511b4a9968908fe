namespace Engine.Generators.Model;

/// <summary>A kernel family: body class in kernels/, grouping, formats it is specialised for (empty: format-free),
/// arguments in C# order, block size, and the grid (explicit) or extent (implicit) as expressions over its scalar
/// arguments.</summary>
public sealed record KernelSpec(
    string Name,
    string Body,
    bool Implicit,
    EquatableArray<string> Formats,
    EquatableArray<ArgSpec> Args,
    int Block,
    EquatableArray<string> Grid,
    string? Extent)
{
    /// <summary>Formats (a subset of <see cref="Formats"/>) that get a second entry point reading f32 activations
    /// (spec attribute f32act=; named Body_Format_F32Act, generic over Engine.Kernels.Formats.F32Act&lt;Format&gt;).</summary>
    public EquatableArray<string> F32ActFormats { get; init; } = EquatableArray<string>.Empty;
}

/// <summary>A kernel argument: view&lt;u8|i32|f32|f16&gt; or a scalar i32/f32.</summary>
public sealed record ArgSpec(string Name, string Type)
{
    public bool IsView => Type.StartsWith("view<", System.StringComparison.Ordinal);

    /// <summary>Element type of a view ("u8", "f32"…).</summary>
    public string ElementType => IsView ? Type.Substring(5, Type.Length - 6) : Type;
}

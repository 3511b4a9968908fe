namespace Engine.Generators.Model;

/// <summary>A parsed, validated .graph file. Pure data (no Roslyn symbols or locations), equatable, so an unchanged
/// spec leaves every later pipeline step cached.</summary>
public sealed record GraphSpec(
    string Name,
    EquatableArray<string> Parameters,
    EquatableArray<string> Formats,
    EquatableArray<KernelSpec> Kernels,
    EquatableArray<TensorSpec> Tensors,
    EquatableArray<OpSpec> Ops);

/// <summary>The parser's result: a spec when the file had no errors, and the diagnostics it found.</summary>
public sealed record ParseResult(GraphSpec? Spec, EquatableArray<DiagnosticSpec> Diagnostics);

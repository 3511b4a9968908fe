namespace Engine.Generators.Model;

/// <summary>An op in program order: section (prologue, layer, epilogue), kind, tensors in and out, the kernel family,
/// the weight that picks the family's format (null for format-free families) and, for a fused op, the kinds it
/// replaces, the kernel family for steps of many tokens (batch=, null when none) and the one for one-token steps of
/// short contexts (short=, null when none).</summary>
public sealed record OpSpec(
    string Name,
    string Section,
    string Kind,
    EquatableArray<string> Inputs,
    EquatableArray<string> Outputs,
    string Kernel,
    string? Weight,
    EquatableArray<string> Fuses,
    string? Batch = null,
    string? Short = null);

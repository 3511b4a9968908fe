namespace Engine.Generators.Model;

/// <summary>A diagnostic as data: id, message and a span in the spec file (0-based line and column, absolute start),
/// turned into a Roslyn Diagnostic only when reported.</summary>
public sealed record DiagnosticSpec(string Id, string Message, string Path, int Start, int Line, int Column, int Length);

using Microsoft.CodeAnalysis;

namespace Engine.Generators;

/// <summary>Diagnostics of the layer-graph spec. Ids are stable: tests and docs/graph-spec.md refer to them; add new
/// ones at the end, never renumber.</summary>
internal static class Diagnostics
{
    private const string Category = "Engine.Graph";

    public static readonly DiagnosticDescriptor Syntax = Error("ENG001", "Syntax error in graph spec");
    public static readonly DiagnosticDescriptor UnknownName = Error("ENG002", "Unknown name in expression");
    public static readonly DiagnosticDescriptor Duplicate = Error("ENG003", "Duplicate declaration");
    public static readonly DiagnosticDescriptor UnknownTensor = Error("ENG004", "Unknown tensor");
    public static readonly DiagnosticDescriptor UnknownKernel = Error("ENG005", "Unknown kernel family");
    public static readonly DiagnosticDescriptor UnknownFormat = Error("ENG006", "Unknown weight format");
    public static readonly DiagnosticDescriptor UnknownType = Error("ENG007", "Unknown type");
    public static readonly DiagnosticDescriptor UnknownOpKind = Error("ENG008", "Unknown op kind");
    public static readonly DiagnosticDescriptor MissingWeight = Error("ENG009", "Format-specialised op without a weight");
    public static readonly DiagnosticDescriptor UnknownRole = Error("ENG010", "Unknown tensor role");
    public static readonly DiagnosticDescriptor UnusedTensor = Error("ENG011", "Tensor used by no op");
    public static readonly DiagnosticDescriptor BatchMismatch = Error("ENG012", "Batch kernel does not match the op's kernel");
    public static readonly DiagnosticDescriptor ShortMismatch = Error("ENG013", "Short kernel does not match the op's kernel");

    public static DiagnosticDescriptor ById(string id) => id switch
    {
        "ENG001" => Syntax, "ENG002" => UnknownName, "ENG003" => Duplicate, "ENG004" => UnknownTensor,
        "ENG005" => UnknownKernel, "ENG006" => UnknownFormat, "ENG007" => UnknownType, "ENG008" => UnknownOpKind,
        "ENG009" => MissingWeight, "ENG010" => UnknownRole, "ENG012" => BatchMismatch, "ENG013" => ShortMismatch, _ => UnusedTensor,
    };

    private static DiagnosticDescriptor Error(string id, string title) =>
        new(id, title, "{0}", Category, DiagnosticSeverity.Error, isEnabledByDefault: true);
}

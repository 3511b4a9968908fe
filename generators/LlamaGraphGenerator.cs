using System;
using System.Linq;
using Engine.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Engine.Generators;

/// <summary>Reads the layer-graph spec (AdditionalFiles *.graph) and emits, per the project's EngineGraphEmit
/// property: <c>program</c> (the LayerProgram the planner consumes), <c>kernels</c> (ILGPU entry points + table),
/// <c>table</c> (the entry-point table alone), <c>launchers</c> (PTX argument blocks, grid rules, CPU dispatch
/// keys for the runtime). Pipeline: parse → equatable model → emit; diagnostics are reported separately.</summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class LlamaGraphGenerator : IIncrementalGenerator
{
    public const string EmitProperty = "build_property.EngineGraphEmit";
    public const string NamespaceProperty = "build_property.RootNamespace";

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var parsed = context.AdditionalTextsProvider
            .Where(static file => file.Path.EndsWith(".graph", StringComparison.OrdinalIgnoreCase))
            .Select(static (file, ct) => Parser.Parse(file.Path, file.GetText(ct)?.ToString() ?? ""))
            .WithTrackingName(TrackingNames.Parse);

        var diagnostics = parsed.Select(static (result, _) => result.Diagnostics).WithTrackingName(TrackingNames.Diagnostics);

        var options = context.AnalyzerConfigOptionsProvider
            .Select(static (provider, _) => new EmitOptions(
                provider.GlobalOptions.TryGetValue(EmitProperty, out var emit) ? emit : "",
                provider.GlobalOptions.TryGetValue(NamespaceProperty, out var ns) && ns.Length > 0 ? ns : "Engine"))
            .WithTrackingName(TrackingNames.Options);

        var specs = parsed
            .Select(static (result, _) => result.Spec)
            .Where(static spec => spec != null)
            .Select(static (spec, _) => spec!)
            .Combine(options)
            .WithTrackingName(TrackingNames.Model);

        context.RegisterSourceOutput(diagnostics, static (spc, list) =>
        {
            foreach (var d in list) spc.ReportDiagnostic(ToDiagnostic(d));
        });

        context.RegisterSourceOutput(specs, static (spc, pair) =>
        {
            foreach (var (hint, source) in Emitter.Emit(pair.Left, pair.Right))
                spc.AddSource(hint, source);
        });
    }

    private static Diagnostic ToDiagnostic(DiagnosticSpec d)
    {
        var start = new LinePosition(d.Line, d.Column);
        var location = Location.Create(d.Path, new TextSpan(d.Start, d.Length),
            new LinePositionSpan(start, new LinePosition(d.Line, d.Column + d.Length)));
        return Diagnostic.Create(Diagnostics.ById(d.Id), location, d.Message);
    }

    /// <summary>Step names, so tests can check every step is cached on a second run.</summary>
    public static class TrackingNames
    {
        public const string Parse = "Parse";
        public const string Diagnostics = "Diagnostics";
        public const string Options = "Options";
        public const string Model = "Model";
    }
}

/// <summary>What to emit (comma-separated: program, kernels, table, launchers) and the target project's root
/// namespace (generated code goes to ROOT.Generated).</summary>
public sealed record EmitOptions(string Emit, string RootNamespace)
{
    public bool Has(string part) => Emit.Split(',').Any(p => p.Trim() == part);
}

using System.Collections.Immutable;
using Engine.Generators;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;

namespace Engine.Generators.Tests;

/// <summary>Runs <see cref="LlamaGraphGenerator"/> in a GeneratorDriver over an in-memory spec, as a project with
/// the given EngineGraphEmit would.</summary>
internal static class GeneratorHarness
{
    public static GeneratorDriver Driver(string emit, string rootNamespace = "Engine") =>
        CSharpGeneratorDriver.Create(
            [new LlamaGraphGenerator().AsSourceGenerator()],
            optionsProvider: new Options(emit, rootNamespace),
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    public static CSharpCompilation EmptyCompilation() =>
        CSharpCompilation.Create("Test", [], [], new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));

    public static GeneratorDriver Run(GeneratorDriver driver, params AdditionalText[] specs) =>
        driver.AddAdditionalTexts([.. specs]).RunGenerators(EmptyCompilation());

    public static AdditionalText Spec(string path, string text) => new InMemoryText(path, text);

    public static string RepoSpecText => File.ReadAllText(Path.Combine(Engine.Tests.RepoPaths.Root, "src", "Graph", "llama.graph"));

    private sealed class InMemoryText(string path, string text) : AdditionalText
    {
        public override string Path => path;
        public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(text);
    }

    private sealed class Options(string emit, string rootNamespace) : AnalyzerConfigOptionsProvider
    {
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Values(new Dictionary<string, string>
        {
            [LlamaGraphGenerator.EmitProperty] = emit,
            [LlamaGraphGenerator.NamespaceProperty] = rootNamespace,
        });
        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => Values.Empty;
        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => Values.Empty;
    }

    private sealed class Values(Dictionary<string, string> values) : AnalyzerConfigOptions
    {
        public static readonly Values Empty = new([]);
        public override bool TryGetValue(string key, out string value) => values.TryGetValue(key, out value!);
    }
}

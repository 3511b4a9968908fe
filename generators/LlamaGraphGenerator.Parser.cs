using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using System.Text;
using Engine.Generators.Model;

namespace Engine.Generators;

public sealed partial class LlamaGraphGenerator
{
    /// <summary>Parses and validates a .graph file (grammar: docs/graph-spec.md). Every problem becomes a
    /// diagnostic at the offending token; a spec is returned only when there were no errors.</summary>
    internal static class Parser
    {
        public static readonly ImmutableArray<string> KnownFormats =
            ImmutableArray.Create("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K");

        // op kind (spec spelling) → Engine.Graph.OpKind member
        public static readonly ImmutableDictionary<string, string> OpKinds = new Dictionary<string, string>
        {
            ["embedding"] = "Embedding", ["rms_norm"] = "RmsNorm", ["matmul"] = "MatMul", ["rope"] = "Rope",
            ["kv_store"] = "KvStore", ["attention"] = "Attention", ["add"] = "Add", ["swiglu"] = "SwiGlu",
            ["matmul_swiglu"] = "MatMulSwiGlu", ["copy"] = "Copy", ["quantize"] = "Quantize", ["matmul_add"] = "MatMulAdd",
            ["rope_kv_store"] = "RopeKvStore", ["attention_quantize"] = "AttentionQuantize", ["matmul_qkv"] = "MatMulQkv",
            ["argmax"] = "ArgMax",
        }.ToImmutableDictionary();

        public static readonly ImmutableDictionary<string, string> TensorRoles = new Dictionary<string, string>
        {
            ["input"] = "Input", ["weight"] = "Weight", ["activation"] = "Activation", ["kv_cache"] = "KvCache",
            ["output"] = "Output",
        }.ToImmutableDictionary();

        private static readonly ImmutableArray<string> ArgTypes =
            ImmutableArray.Create("view<u8>", "view<i32>", "view<f32>", "view<f16>", "i32", "f32");

        private static readonly ImmutableArray<string> TensorTypes = ImmutableArray.Create("f32", "f16", "i32", "u8", "any");

        private static readonly ImmutableArray<string> Sections = ImmutableArray.Create("prologue", "layer", "epilogue");

        public static ParseResult Parse(string path, string text)
        {
            var state = new State(path);
            foreach (var statement in Statements(path, text, state)) state.Statement(statement);
            return state.Finish(text);
        }

        // ---------------------------------------------------------------- lexing

        internal enum TokenKind { Ident, Number, Punct }

        internal readonly struct Token
        {
            public Token(TokenKind kind, string text, int line, int column, int start)
            { Kind = kind; Text = text; Line = line; Column = column; Start = start; }
            public TokenKind Kind { get; }
            public string Text { get; }
            public int Line { get; }
            public int Column { get; }
            public int Start { get; }
            public bool Is(string text) => Text == text && Kind != TokenKind.Number;
        }

        /// <summary>Logical statements: a line, plus following lines that start with whitespace (continuations).
        /// '#' starts a comment.</summary>
        private static IEnumerable<List<Token>> Statements(string path, string text, State state)
        {
            List<Token>? current = null;
            int line = 0, lineStart = 0;
            while (lineStart <= text.Length)
            {
                int end = text.IndexOf('\n', lineStart);
                if (end < 0) end = text.Length;
                string raw = text.Substring(lineStart, end - lineStart).TrimEnd('\r');
                int hash = raw.IndexOf('#');
                string code = hash >= 0 ? raw.Substring(0, hash) : raw;
                bool continuation = code.Length > 0 && char.IsWhiteSpace(code[0]);
                var tokens = Lex(code, line, lineStart, state);
                if (tokens.Count > 0)
                {
                    if (continuation && current != null) current.AddRange(tokens);
                    else
                    {
                        if (current != null) yield return current;
                        current = tokens;
                    }
                }
                line++;
                lineStart = end + 1;
            }
            if (current != null) yield return current;
        }

        private static List<Token> Lex(string code, int line, int lineStart, State state)
        {
            var tokens = new List<Token>();
            int i = 0;
            while (i < code.Length)
            {
                char c = code[i];
                if (char.IsWhiteSpace(c)) { i++; continue; }
                int begin = i;
                if (char.IsLetter(c) || c == '_')
                {
                    while (i < code.Length && (char.IsLetterOrDigit(code[i]) || code[i] == '_')) i++;
                    tokens.Add(new Token(TokenKind.Ident, code.Substring(begin, i - begin), line, begin, lineStart + begin));
                }
                else if (char.IsDigit(c))
                {
                    while (i < code.Length && char.IsDigit(code[i])) i++;
                    tokens.Add(new Token(TokenKind.Number, code.Substring(begin, i - begin), line, begin, lineStart + begin));
                }
                else if (c == '-' && i + 1 < code.Length && code[i + 1] == '>')
                {
                    tokens.Add(new Token(TokenKind.Punct, "->", line, begin, lineStart + begin));
                    i += 2;
                }
                else if ("()[],:=+-*/<>".IndexOf(c) >= 0)
                {
                    tokens.Add(new Token(TokenKind.Punct, c.ToString(), line, begin, lineStart + begin));
                    i++;
                }
                else
                {
                    state.Error(Diagnostics.Syntax, new Token(TokenKind.Punct, c.ToString(), line, begin, lineStart + begin),
                        $"unexpected character '{c}'");
                    i++;
                }
            }
            return tokens;
        }

        // ---------------------------------------------------------------- statements

        private sealed class SyntaxError : Exception { }

        private sealed class Cursor
        {
            private readonly List<Token> tokens;
            private readonly State state;
            public int Position;

            public Cursor(List<Token> tokens, State state) { this.tokens = tokens; this.state = state; }

            public bool AtEnd => Position >= tokens.Count;
            public Token Peek => tokens[Position];
            public Token Last => tokens[Math.Max(0, Math.Min(Position, tokens.Count) - 1)];
            public bool PeekIs(string text) => !AtEnd && Peek.Is(text);
            public bool PeekIsAttribute => Position + 1 < tokens.Count && tokens[Position].Kind == TokenKind.Ident && tokens[Position + 1].Is("=");

            public Token Next(string what)
            {
                if (AtEnd) Fail(Last, $"expected {what} at the end of the statement");
                return tokens[Position++];
            }

            public Token Ident(string what)
            {
                var t = Next(what);
                if (t.Kind != TokenKind.Ident) Fail(t, $"expected {what}, found '{t.Text}'");
                return t;
            }

            public Token Expect(string punct)
            {
                var t = Next($"'{punct}'");
                if (!t.Is(punct)) Fail(t, $"expected '{punct}', found '{t.Text}'");
                return t;
            }

            public bool Accept(string punct)
            {
                if (!PeekIs(punct)) return false;
                Position++;
                return true;
            }

            public void End()
            {
                if (!AtEnd) Fail(Peek, $"unexpected '{Peek.Text}'");
            }

            public void Fail(Token at, string message)
            {
                state.Error(Diagnostics.Syntax, at, message);
                throw new SyntaxError();
            }

            /// <summary>An expression (identifiers, integers, + - * /, parentheses, ceil_div(a, b)) as its tokens.</summary>
            public List<Token> Expression()
            {
                var start = Position;
                Sum();
                return tokens.GetRange(start, Position - start);
            }

            private void Sum()
            {
                Product();
                while (PeekIs("+") || PeekIs("-")) { Position++; Product(); }
            }

            private void Product()
            {
                Primary();
                while (PeekIs("*") || PeekIs("/")) { Position++; Primary(); }
            }

            private void Primary()
            {
                var t = Next("an expression");
                if (t.Kind == TokenKind.Number) return;
                if (t.Is("(")) { Sum(); Expect(")"); return; }
                if (t.Kind != TokenKind.Ident) Fail(t, $"expected an expression, found '{t.Text}'");
                if (PeekIs("("))
                {
                    Position++;
                    Sum();
                    Expect(",");
                    Sum();
                    Expect(")");
                }
            }
        }

        /// <summary>Expression tokens in one canonical spelling: binary operators spaced, ", " between arguments.</summary>
        internal static string Normalize(IReadOnlyList<Token> tokens)
        {
            var sb = new StringBuilder();
            foreach (var t in tokens)
            {
                if (t.Is("+") || t.Is("-") || t.Is("*") || t.Is("/")) sb.Append(' ').Append(t.Text).Append(' ');
                else if (t.Is(",")) sb.Append(", ");
                else sb.Append(t.Text);
            }
            return sb.ToString();
        }

        /// <summary>The rest of a format after its first name <paramref name="first"/>: a pair A/B names a body with two
        /// format parameters (GemvQkv: q and k in A, v in B). Returns the names, the first one's token leading.</summary>
        private static List<Token> FormatNames(Cursor c, Token first)
        {
            var names = new List<Token> { first };
            if (c.Accept("/")) names.Add(c.Ident("the second format of a pair"));
            return names;
        }

        /// <summary>The spec's spelling of a format: "Q4_K", or "Q4_K/Q6_K" for a pair.</summary>
        private static string FormatName(List<Token> names) => string.Join("/", names.Select(x => x.Text));

        private sealed class PendingKernel
        {
            public Token Name;
            public string Body = "";
            public bool? Implicit;
            public List<string> Formats = new();
            /// <summary>f32act formats as read (<see cref="FormatNames"/>; the first token for diagnostics).</summary>
            public List<List<Token>> F32Act = new();
            public List<ArgSpec> Args = new();
            public int Block;
            public List<List<Token>> Grid = new();
            public List<Token>? Extent;
        }

        private sealed class PendingTensor
        {
            public Token Name;
            public string Role = "";
            public List<List<Token>> Shape = new();
            public string Type = "";
            public bool PerLayer, Optional;
            public Token? Fallback;
        }

        private sealed class PendingOp
        {
            public Token Name;
            public string Section = "";
            public Token Kind;
            public List<Token> Inputs = new(), Outputs = new();
            public Token? Kernel;
            public Token? Batch;
            public Token? Short;
            public List<Token> Fuses = new();
        }

        private sealed class State
        {
            private readonly string path;
            private readonly List<DiagnosticSpec> diagnostics = new();
            private readonly HashSet<string> names = new(StringComparer.Ordinal);
            private string? name;
            private Token? firstToken;
            private readonly List<Token> parameters = new();
            private readonly List<Token> formats = new();
            private readonly List<PendingKernel> kernels = new();
            private readonly List<PendingTensor> tensors = new();
            private readonly List<PendingOp> ops = new();
            private string? section;
            private bool hasErrors;

            public State(string path) { this.path = path; }

            public void Error(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, Token at, string message)
            {
                hasErrors |= descriptor.DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error;
                diagnostics.Add(new DiagnosticSpec(descriptor.Id, message, path, at.Start, at.Line, at.Column,
                    Math.Max(1, at.Text.Length)));
            }

            public void Statement(List<Token> tokens)
            {
                firstToken ??= tokens[0];
                var c = new Cursor(tokens, this);
                try
                {
                    var keyword = c.Ident("a statement keyword");
                    switch (keyword.Text)
                    {
                        case "graph":
                            if (name != null) c.Fail(keyword, "a spec declares one graph");
                            name = c.Ident("the graph name").Text;
                            c.End();
                            break;
                        case "param":
                            do parameters.Add(Declare(c.Ident("a parameter name"))); while (!c.AtEnd);
                            break;
                        case "format":
                            do
                            {
                                var f = c.Ident("a format name");
                                if (!KnownFormats.Contains(f.Text))
                                    Error(Diagnostics.UnknownFormat, f, $"unknown format '{f.Text}' (known: {string.Join(", ", KnownFormats)})");
                                formats.Add(f);
                            }
                            while (!c.AtEnd);
                            break;
                        case "kernel": Kernel(c); break;
                        case "tensor": Tensor(c); break;
                        case "prologue": case "layer": case "epilogue":
                            c.End();
                            section = keyword.Text;
                            break;
                        case "op": Op(c, keyword); break;
                        default:
                            c.Fail(keyword, $"unknown statement '{keyword.Text}' (expected graph, param, format, kernel, tensor, prologue, layer, epilogue or op)");
                            break;
                    }
                }
                catch (SyntaxError)
                {
                    // reported; go on with the next statement so one run shows every error
                }
            }

            private Token Declare(Token t)
            {
                if (!names.Add(t.Text)) Error(Diagnostics.Duplicate, t, $"'{t.Text}' is declared twice");
                return t;
            }

            private void Kernel(Cursor c)
            {
                var k = new PendingKernel { Name = c.Ident("the kernel name") };
                if (kernels.Any(x => x.Name.Text == k.Name.Text)) Error(Diagnostics.Duplicate, k.Name, $"kernel '{k.Name.Text}' is declared twice");
                c.Expect("(");
                if (!c.Accept(")"))
                {
                    do
                    {
                        var arg = c.Ident("an argument name");
                        c.Expect(":");
                        var typeStart = c.Ident("an argument type");
                        string type = typeStart.Text;
                        if (c.Accept("<")) { type += "<" + c.Ident("a view element type").Text + ">"; c.Expect(">"); }
                        if (!ArgTypes.Contains(type))
                            Error(Diagnostics.UnknownType, typeStart, $"unknown argument type '{type}' (known: {string.Join(", ", ArgTypes)})");
                        if (k.Args.Any(a => a.Name == arg.Text)) Error(Diagnostics.Duplicate, arg, $"argument '{arg.Text}' is declared twice");
                        k.Args.Add(new ArgSpec(arg.Text, type));
                    }
                    while (c.Accept(","));
                    c.Expect(")");
                }
                while (!c.AtEnd)
                {
                    var attr = c.Ident("a kernel attribute");
                    if (attr.Text is "explicit" or "implicit") { k.Implicit = attr.Text == "implicit"; continue; }
                    c.Expect("=");
                    switch (attr.Text)
                    {
                        case "body": k.Body = c.Ident("a class name").Text; break;
                        case "block":
                            var n = c.Next("a block size");
                            if (n.Kind != TokenKind.Number || !int.TryParse(n.Text, NumberStyles.None, CultureInfo.InvariantCulture, out k.Block)
                                || k.Block < 32 || k.Block > 1024 || k.Block % 32 != 0)
                                c.Fail(n, $"block must be a multiple of 32 in 32..1024, found '{n.Text}'");
                            break;
                        case "formats":
                            do
                            {
                                var f = c.Ident("a format name, all or none");
                                if (f.Text == "all") k.Formats.AddRange(formats.Select(x => x.Text));
                                else if (f.Text != "none")
                                {
                                    var names = FormatNames(c, f);
                                    foreach (var name in names)
                                        if (!formats.Any(x => x.Text == name.Text))
                                            Error(Diagnostics.UnknownFormat, name, $"format '{name.Text}' is not declared by a format statement");
                                    k.Formats.Add(FormatName(names));
                                }
                            }
                            while (c.Accept(","));
                            break;
                        case "f32act":
                            do k.F32Act.Add(FormatNames(c, c.Ident("a format name"))); while (c.Accept(","));
                            break;
                        case "grid":
                            do k.Grid.Add(c.Expression()); while (c.Accept(","));
                            if (k.Grid.Count > 3) c.Fail(attr, "grid has at most 3 dimensions");
                            break;
                        case "extent": k.Extent = c.Expression(); break;
                        default: c.Fail(attr, $"unknown kernel attribute '{attr.Text}' (expected body, explicit, implicit, formats, f32act, block, grid, extent)"); break;
                    }
                }
                if (k.Body.Length == 0) c.Fail(k.Name, $"kernel '{k.Name.Text}' needs body=CLASS");
                if (k.Implicit == null) c.Fail(k.Name, $"kernel '{k.Name.Text}' needs explicit or implicit");
                if (k.Block == 0) c.Fail(k.Name, $"kernel '{k.Name.Text}' needs block=N");
                if (k.Implicit == true && (k.Extent == null || k.Grid.Count > 0)) c.Fail(k.Name, $"implicit kernel '{k.Name.Text}' needs extent=EXPR and no grid");
                if (k.Implicit == false && (k.Grid.Count == 0 || k.Extent != null)) c.Fail(k.Name, $"explicit kernel '{k.Name.Text}' needs grid=EXPR[, EXPR…] and no extent");
                // f32act: formats that also get an entry point reading f32 activations (a quantized format's int8 path
                // swapped for its f32 one, Engine.Kernels.Formats.F32Act); a subset of the kernel's formats.
                foreach (var names in k.F32Act)
                    if (!k.Formats.Contains(FormatName(names)))
                        Error(Diagnostics.UnknownFormat, names[0], $"f32act format '{FormatName(names)}' is not one of kernel '{k.Name.Text}''s formats");
                var scalars = new HashSet<string>(k.Args.Where(a => a.Type == "i32").Select(a => a.Name));
                foreach (var e in k.Grid.Concat(k.Extent == null ? Enumerable.Empty<List<Token>>() : new[] { k.Extent }))
                    CheckNames(e, scalars, $"an i32 argument of kernel '{k.Name.Text}'");
                kernels.Add(k);
            }

            private void CheckNames(List<Token> expression, HashSet<string> known, string what)
            {
                for (int i = 0; i < expression.Count; i++)
                {
                    var t = expression[i];
                    if (t.Kind != TokenKind.Ident) continue;
                    bool call = i + 1 < expression.Count && expression[i + 1].Is("(");
                    if (call)
                    {
                        if (t.Text != "ceil_div") Error(Diagnostics.UnknownName, t, $"unknown function '{t.Text}' (known: ceil_div)");
                    }
                    else if (!known.Contains(t.Text)) Error(Diagnostics.UnknownName, t, $"'{t.Text}' is not {what}");
                }
            }

            private void Tensor(Cursor c)
            {
                var t = new PendingTensor { Name = c.Ident("the tensor name") };
                if (tensors.Any(x => x.Name.Text == t.Name.Text)) Error(Diagnostics.Duplicate, t.Name, $"tensor '{t.Name.Text}' is declared twice");
                var role = c.Ident("a tensor role");
                if (!TensorRoles.ContainsKey(role.Text))
                    Error(Diagnostics.UnknownRole, role, $"unknown tensor role '{role.Text}' (known: {string.Join(", ", TensorRoles.Keys.OrderBy(x => x, StringComparer.Ordinal))})");
                t.Role = role.Text;
                c.Expect("[");
                do t.Shape.Add(c.Expression()); while (c.Accept(","));
                c.Expect("]");
                var known = new HashSet<string>(parameters.Select(p => p.Text));
                foreach (var e in t.Shape) CheckNames(e, known, "a declared param");
                var type = c.Ident("an element type");
                if (!TensorTypes.Contains(type.Text))
                    Error(Diagnostics.UnknownType, type, $"unknown element type '{type.Text}' (known: {string.Join(", ", TensorTypes)})");
                t.Type = type.Text;
                while (!c.AtEnd)
                {
                    var flag = c.Ident("layer or optional");
                    if (flag.Text == "layer") t.PerLayer = true;
                    else if (flag.Text == "optional")
                    {
                        t.Optional = true;
                        if (c.Accept("=")) t.Fallback = c.Ident("a fallback tensor");
                    }
                    else c.Fail(flag, $"unknown tensor flag '{flag.Text}' (expected layer or optional)");
                }
                tensors.Add(t);
            }

            private void Op(Cursor c, Token keyword)
            {
                var op = new PendingOp { Name = c.Ident("the op name") };
                if (section == null) c.Fail(keyword, "an op must follow prologue, layer or epilogue");
                op.Section = section!;
                if (ops.Any(x => x.Name.Text == op.Name.Text)) Error(Diagnostics.Duplicate, op.Name, $"op '{op.Name.Text}' is declared twice");
                c.Expect("=");
                op.Kind = c.Ident("an op kind");
                if (!OpKinds.ContainsKey(op.Kind.Text)) Error(Diagnostics.UnknownOpKind, op.Kind, UnknownKind(op.Kind.Text));
                c.Expect("(");
                do op.Inputs.Add(c.Ident("an input tensor")); while (c.Accept(","));
                c.Expect(")");
                c.Expect("->");
                do op.Outputs.Add(c.Ident("an output tensor")); while (c.Accept(","));
                while (!c.AtEnd)
                {
                    var attr = c.Ident("an op attribute");
                    c.Expect("=");
                    switch (attr.Text)
                    {
                        case "kernel": op.Kernel = c.Ident("a kernel family"); break;
                        case "batch": op.Batch = c.Ident("a kernel family"); break;
                        case "short": op.Short = c.Ident("a kernel family"); break;
                        case "fused":
                            do
                            {
                                var f = c.Ident("an op kind");
                                if (!OpKinds.ContainsKey(f.Text)) Error(Diagnostics.UnknownOpKind, f, UnknownKind(f.Text));
                                op.Fuses.Add(f);
                            }
                            while (c.Accept("+"));
                            break;
                        default: c.Fail(attr, $"unknown op attribute '{attr.Text}' (expected kernel, batch, short, fused)"); break;
                    }
                }
                if (op.Kernel == null) c.Fail(op.Name, $"op '{op.Name.Text}' needs kernel=FAMILY");
                ops.Add(op);
            }

            private static string UnknownKind(string kind) =>
                $"unknown op kind '{kind}' (known: {string.Join(", ", OpKinds.Keys.OrderBy(x => x, StringComparer.Ordinal))})";

            private static bool SameArgs(PendingKernel a, PendingKernel b) =>
                a.Args.Count == b.Args.Count && a.Args.Zip(b.Args, (x, y) => x.Name == y.Name && x.Type == y.Type).All(x => x);

            public ParseResult Finish(string text)
            {
                if (name == null)
                {
                    var at = firstToken ?? new Token(TokenKind.Punct, " ", 0, 0, 0);
                    Error(Diagnostics.Syntax, at, "the spec must start with 'graph NAME'");
                }

                // Cross-references: ops → tensors and kernels; fallbacks → tensors.
                var tensorByName = new Dictionary<string, PendingTensor>();
                foreach (var t in tensors) tensorByName[t.Name.Text] = t;
                var kernelByName = new Dictionary<string, PendingKernel>();
                foreach (var k in kernels) kernelByName[k.Name.Text] = k;
                foreach (var t in tensors)
                    if (t.Fallback is Token fb && !tensorByName.ContainsKey(fb.Text))
                        Error(Diagnostics.UnknownTensor, fb, $"fallback '{fb.Text}' is not a declared tensor");

                var weights = new Dictionary<PendingOp, string?>();
                foreach (var op in ops)
                {
                    foreach (var t in op.Inputs.Concat(op.Outputs))
                        if (!tensorByName.ContainsKey(t.Text)) Error(Diagnostics.UnknownTensor, t, $"'{t.Text}' is not a declared tensor");
                    if (op.Kernel is not Token kt) continue;
                    if (!kernelByName.TryGetValue(kt.Text, out var kernel))
                    {
                        Error(Diagnostics.UnknownKernel, kt, $"'{kt.Text}' is not a declared kernel family");
                        continue;
                    }
                    string? weight = null;
                    if (kernel.Formats.Count > 0)
                    {
                        weight = op.Inputs.Select(t => t.Text)
                            .FirstOrDefault(t => tensorByName.TryGetValue(t, out var x) && x.Role == "weight" && x.Type == "any");
                        if (weight == null)
                            Error(Diagnostics.MissingWeight, op.Name,
                                $"op '{op.Name.Text}' runs kernel '{kt.Text}', which is specialised per format, but has no weight input of type any");
                    }
                    weights[op] = weight;
                    if (op.Short is Token st)
                    {
                        // The runtime swaps the function for one-token steps of short contexts, keeping the argument block.
                        if (!kernelByName.TryGetValue(st.Text, out var shortKernel))
                            Error(Diagnostics.UnknownKernel, st, $"'{st.Text}' is not a declared kernel family");
                        else if (!SameArgs(shortKernel, kernel) || shortKernel.Implicit != kernel.Implicit
                            || !shortKernel.Formats.SequenceEqual(kernel.Formats))
                            Error(Diagnostics.ShortMismatch, st,
                                $"short kernel '{st.Text}' of op '{op.Name.Text}' must take the arguments of '{kt.Text}' in order, group the same way and have its formats");
                    }
                    if (op.Batch is not Token bt) continue;
                    if (!kernelByName.TryGetValue(bt.Text, out var batch))
                    {
                        Error(Diagnostics.UnknownKernel, bt, $"'{bt.Text}' is not a declared kernel family");
                        continue;
                    }
                    // The runtime swaps the function for many-token steps and keeps the argument block: same arguments.
                    // Formats: some of the kernel's, or none where the kernel has none (an op without a weight).
                    bool formats = batch.Formats.Count == 0 ? kernel.Formats.Count == 0 : batch.Formats.All(f => kernel.Formats.Contains(f));
                    if (!SameArgs(batch, kernel) || batch.Implicit != kernel.Implicit || !formats)
                        Error(Diagnostics.BatchMismatch, bt,
                            $"batch kernel '{bt.Text}' of op '{op.Name.Text}' must take the arguments of '{kt.Text}' in order, group the same way and be specialised for some of its formats (for none where it has none)");
                }

                // Lifetimes: first and last op (program order) that reads or writes each tensor.
                var first = new Dictionary<string, int>(); var last = new Dictionary<string, int>();
                var ordered = ops.Where(o => o.Section == "prologue").Concat(ops.Where(o => o.Section == "layer"))
                    .Concat(ops.Where(o => o.Section == "epilogue")).ToList();
                for (int i = 0; i < ordered.Count; i++)
                    foreach (var t in ordered[i].Inputs.Concat(ordered[i].Outputs))
                    {
                        if (!first.ContainsKey(t.Text)) first[t.Text] = i;
                        last[t.Text] = i;
                    }
                foreach (var t in tensors)
                    if (!first.ContainsKey(t.Name.Text))
                        Error(Diagnostics.UnusedTensor, t.Name, $"tensor '{t.Name.Text}' is used by no op");

                if (hasErrors) return new ParseResult(null, diagnostics.ToEquatableArray());

                var spec = new GraphSpec(
                    name!,
                    parameters.Select(p => p.Text).ToEquatableArray(),
                    formats.Select(f => f.Text).ToEquatableArray(),
                    kernels.Select(k => new KernelSpec(k.Name.Text, k.Body, k.Implicit == true, k.Formats.ToEquatableArray(),
                        k.Args.ToEquatableArray(), k.Block, k.Grid.Select(Normalize).ToEquatableArray(),
                        k.Extent == null ? null : Normalize(k.Extent))
                    { F32ActFormats = k.F32Act.Select(FormatName).ToEquatableArray() }).ToEquatableArray(),
                    tensors.Select(t => new TensorSpec(t.Name.Text, t.Role, t.Shape.Select(Normalize).ToEquatableArray(), t.Type,
                        t.PerLayer, t.Optional, t.Fallback?.Text,
                        first.TryGetValue(t.Name.Text, out var f) ? f : -1, last.TryGetValue(t.Name.Text, out var l) ? l : -1)).ToEquatableArray(),
                    ordered.Select(o => new OpSpec(o.Name.Text, o.Section, o.Kind.Text, o.Inputs.Select(t => t.Text).ToEquatableArray(),
                        o.Outputs.Select(t => t.Text).ToEquatableArray(), o.Kernel!.Value.Text, weights[o],
                        o.Fuses.Select(t => t.Text).ToEquatableArray(), o.Batch?.Text, o.Short?.Text)).ToEquatableArray());
                return new ParseResult(spec, diagnostics.ToEquatableArray());
            }
        }
    }
}

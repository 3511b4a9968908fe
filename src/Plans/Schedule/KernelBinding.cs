using Engine.Graph;
using Engine.Kernels.Ptx.Generated;
using Engine.Plans.Gguf;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>A program operand resolved for one layer: the plan argument (tensor, buffer or none), the ggml type of a
/// weight (null for buffers), its dims (row length first) and its elements per token (buffers: the shape at
/// n_batch = 1; weights: all of them).</summary>
public readonly record struct BoundOperand(KernelArg Arg, GgmlType? WeightType, long[] Dims, long ElementsPerToken, string ElementType);

/// <summary>Turns one op of the layer program into a launch: the entry point (the op's kernel family × the type of
/// the weight it reads, <see cref="KernelFamily.EntryPoint"/>), one plan argument per PTX parameter of that entry
/// (its <see cref="KernelEntryPoint.Params"/>, extent included), and the launch shape from the family's grid rule
/// for a one-token step. With f32 activations the quantized matmuls take their family's f32act entry and no batch
/// kernel (the int8 tensor-core GEMM; the GEMV runs steps of any length). docs/plan-format.md "instructions" lists
/// the binding rules.</summary>
public sealed class KernelBinding
{
    private readonly LayerProgram _program;
    private readonly IReadOnlyDictionary<string, long> _hyper;
    private readonly float _rmsEps, _ropeBase;
    private readonly ActivationPrecision _activations;
    private readonly Dictionary<string, (uint Id, KernelEntryPoint Entry)> _entries = new(StringComparer.Ordinal);
    private readonly SortedDictionary<uint, KernelInfo> _used = new();

    public KernelBinding(LayerProgram program, IReadOnlyDictionary<string, long> hyperParameters, float rmsEps, float ropeBase,
        ActivationPrecision activations = ActivationPrecision.Int8)
    {
        _activations = activations;
        _program = program;
        _hyper = hyperParameters;
        _rmsEps = rmsEps;
        _ropeBase = ropeBase;
        var table = KernelTable.All;
        for (int i = 0; i < table.Count; i++) _entries[table[i].Name] = ((uint)i, table[i]);
    }

    /// <summary>The kernels the launches built so far use, by id (= the generated KernelId).</summary>
    public List<KernelInfo> Kernels => _used.Values.ToList();

    /// <summary>The launches of an op in a layer: its own, or, for the fused q/k/v projection (matmul_qkv) where the
    /// three weights do not share a format in this layer, the family's entry for the format pair q·k/v where it has
    /// one (llama.cpp's Q4_K_M and Q5_K_M files keep attn_v in Q6_K in half the layers: gemv_qkv's Q4_K/Q6_K), else
    /// one matmul launch per weight (the program's matmul family and batch family, e.g. gemv/gemm), named q_proj,
    /// k_proj, v_proj after the outputs.</summary>
    public IEnumerable<Instruction> Launches(GraphOp op, int layer, Func<string, int, BoundOperand> resolve)
    {
        var t = op.Kind == OpKind.MatMulQkv ? op.Inputs.Take(3).Select(w => resolve(w, layer).WeightType).ToArray() : null;
        if (t is not null && (t[0] != t[1] || t[1] != t[2]))
        {
            string pair = $"{t[0]}/{t[2]}";
            if (t[0] == t[1] && _program.Kernel(op.Kernel).Formats.Contains(pair))
            {
                yield return Launch(op, layer, resolve, pair);
                yield break;
            }
            var matmul = _program.AllOps.FirstOrDefault(o => o.Kind == OpKind.MatMul)
                ?? throw new PlanException($"layer program {_program.Name}: op {op.Name}: the weights differ in format in layer {layer} and no matmul op names the family to run them apart");
            var x = op.Inputs.Skip(3).ToArray();
            for (int i = 0; i < 3; i++)
                yield return Launch(new GraphOp(OpKind.MatMul, op.Outputs[i] + "_proj", [op.Inputs[i], .. x], [op.Outputs[i]], op.Inputs[i])
                    { Kernel = matmul.Kernel, Batch = matmul.Batch }, layer, resolve);
            yield break;
        }
        yield return Launch(op, layer, resolve);
    }

    /// <param name="formatPair">a q/k/v op's format pair (q·k/v) when its weights differ in format</param>
    public Instruction Launch(GraphOp op, int layer, Func<string, int, BoundOperand> resolve, string? formatPair = null)
    {
        var family = _program.Kernel(op.Kernel);
        string where = $"layer program {_program.Name}: op {op.Name}";
        BoundOperand? weight = op.Weight is null ? null : resolve(op.Weight, layer);
        string? format = null;
        if (family.Formats.Count > 0)
        {
            var wt = weight?.WeightType ?? throw new PlanException($"{where}: kernel {family.Name} needs a weight of the model's type");
            format = formatPair ?? wt.ToString();
            if (!family.Formats.Contains(format)) throw new PlanException($"{where}: kernel {family.Name} has no entry point for {format}");
            if (op.Kind == OpKind.MatMulSwiGlu)
            {
                var up = resolve(op.Inputs[1], layer);
                if (up.WeightType != wt)
                    throw new PlanException($"{where}: {op.Inputs[0]} is {wt} but {op.Inputs[1]} is {up.WeightType}: the fused {family.Name} needs one format (the unfused fallback is not planned yet)");
            }
        }
        // f32 activations: the family's f32act entry where it has one for the format (the quantized matmuls); the
        // float formats' own entries read f32 already.
        bool f32Act = _activations == ActivationPrecision.F32 && format != null && family.F32ActFormats.Contains(format);
        string entryName = family.EntryPoint(format, f32Act);
        if (!_entries.TryGetValue(entryName, out var e)) throw new PlanException($"{where}: entry point {entryName} is not in the kernel table");
        _used.TryAdd(e.Id, new KernelInfo(e.Id, family.Name, weight?.WeightType is { } t ? (uint)t : PlanFormat.NoWeightType, entryName, (uint)e.Entry.ArgumentBytes));

        // Views: by name first (an operand named like the argument), then the remaining ones in operand order:
        // inputs, then outputs; when the family has fewer views than that, outputs that are also inputs are
        // dropped (the kernel updates them in place: rope's q and k, add's x).
        var views = family.Args.Where(a => a.IsView).ToList();
        var operands = op.Inputs.Concat(op.Outputs).ToList();
        if (operands.Count > views.Count) operands = op.Inputs.Concat(op.Outputs.Where(o => !op.Inputs.Contains(o))).ToList();
        var bound = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in views) if (operands.Contains(v.Name)) bound[v.Name] = v.Name;
        var rest = new Queue<string>(operands.Where(o => !bound.ContainsValue(o)));
        foreach (var v in views) if (!bound.ContainsKey(v.Name) && rest.Count > 0) bound[v.Name] = rest.Dequeue();
        if (bound.Count != views.Count || rest.Count > 0)
            throw new PlanException($"{where}: {operands.Count} operands do not bind the {views.Count} views of kernel {family.Name}");
        var viewArgs = new Dictionary<string, BoundOperand>(StringComparer.Ordinal);
        foreach (var v in views)
        {
            var b = resolve(bound[v.Name], layer);
            string want = v.Type[5..^1];
            bool ok = b.Arg.Kind == ArgKind.None
                || (want == "u8" ? b.WeightType is not null || b.ElementType == "u8" : b.WeightType is null ? b.ElementType == want : b.WeightType == GgmlType.F32 && want == "f32");
            if (!ok) throw new PlanException($"{where}: argument {v.Name} ({v.Type}) cannot take {bound[v.Name]} ({b.WeightType?.ToString() ?? b.ElementType})");
            viewArgs[v.Name] = b;
        }
        var firstView = viewArgs[views[0].Name];

        // Scalars: i32 values either fixed or "n_tokens × value" (patched per step), f32 values fixed.
        var scalars = new Dictionary<string, KernelArg>(StringComparer.Ordinal);
        foreach (var a in family.Args.Where(a => !a.IsView)) scalars[a.Name] = Scalar(a, firstView, where, family.Name);
        KernelArg extent = default;
        if (family.Implicit)
        {
            long one = Evaluate(family.Extent!, scalars, 1), two = Evaluate(family.Extent!, scalars, 2);
            if (two != 2 * one) throw new PlanException($"{where}: extent {family.Extent} of kernel {family.Name} is not proportional to n_tokens");
            extent = new KernelArg(ArgKind.Tokens, one);
        }

        var args = new List<KernelArg>();
        foreach (var p in e.Entry.Params)
            args.Add(p.Type == "extent" ? extent : p.Type.StartsWith("view<", StringComparison.Ordinal) ? viewArgs[p.Name].Arg : scalars[p.Name]);

        uint gx, gy = 1, gz = 1;
        if (family.Implicit) gx = (uint)((extent.Value + family.Block - 1) / family.Block);
        else
        {
            gx = (uint)Evaluate(family.Grid[0], scalars, 1);
            if (family.Grid.Count > 1) gy = (uint)Evaluate(family.Grid[1], scalars, 1);
            if (family.Grid.Count > 2) gz = (uint)Evaluate(family.Grid[2], scalars, 1);
        }
        return new Instruction(Opcode.Launch, layer, e.Id, op.Name, new LaunchShape(gx, gy, gz, (uint)family.Block, 1, 1, 0), args.ToArray(),
            f32Act ? PlanFormat.NoBatchKernel : BatchKernel(op, format, weight, e.Entry, where), ShortKernel(op, format, weight, e.Entry, where));
    }

    /// <summary>The op's short kernel (the spec's short=), registered in the kernel table; none when the op has none.</summary>
    private uint ShortKernel(GraphOp op, string? format, BoundOperand? weight, KernelEntryPoint main, string where) =>
        op.Short is null ? PlanFormat.NoShortKernel : Alternate(_program.Kernel(op.Short), format, weight, main, "short", where);

    /// <summary>The op's batch kernel for this format (the spec's batch=), registered in the kernel table; none when the
    /// op has no batch family or the family has no entry point for the format (the float formats), or has formats and
    /// the op no weight.</summary>
    private uint BatchKernel(GraphOp op, string? format, BoundOperand? weight, KernelEntryPoint main, string where)
    {
        if (op.Batch is null) return PlanFormat.NoBatchKernel;
        var batch = _program.Kernel(op.Batch);
        // A family without formats (the tiled attention) serves ops without a weight; one with formats, those formats.
        bool serves = format is null ? batch.Formats.Count == 0 : batch.Formats.Contains(format);
        return serves ? Alternate(batch, format, weight, main, "batch", where) : PlanFormat.NoBatchKernel;
    }

    /// <summary>A kernel the runtime runs instead of <paramref name="main"/> for some steps (a batch or short kernel):
    /// <paramref name="family"/>'s entry for the format, registered in the kernel table. Its argument block must be the
    /// launch kernel's, byte for byte: the runtime swaps only the function and the grid.</summary>
    private uint Alternate(KernelFamily family, string? format, BoundOperand? weight, KernelEntryPoint main, string what, string where)
    {
        string entryName = family.EntryPoint(format);
        if (!_entries.TryGetValue(entryName, out var b)) throw new PlanException($"{where}: entry point {entryName} is not in the kernel table");
        if (!b.Entry.TakesArgumentsOf(main)) throw new PlanException($"{where}: {what} kernel {entryName} does not take the arguments of {main.Name}");
        _used.TryAdd(b.Id, new KernelInfo(b.Id, family.Name, weight?.WeightType is { } t ? (uint)t : PlanFormat.NoWeightType, entryName, (uint)b.Entry.ArgumentBytes));
        return b.Id;
    }

    private KernelArg Scalar(KernelArgument a, BoundOperand firstView, string where, string family)
    {
        if (a.Type == "f32")
        {
            float v = a.Name switch
            {
                "eps" => _rmsEps,
                "freq_base" => _ropeBase,
                "freq_scale" => 1f,    // linear rope scaling: not in ModelConfig (Llama 3.1 scales through rope_freqs)
                "scale" => 1f / MathF.Sqrt(_hyper["head_dim"]),
                _ => throw new PlanException($"{where}: kernel {family} argument {a.Name} (f32) has no binding (docs/plan-format.md)"),
            };
            return new KernelArg(ArgKind.F32, BitConverter.SingleToInt32Bits(v));
        }
        return a.Name switch
        {
            "n_tokens" => new KernelArg(ArgKind.Tokens, 1),
            "n" => new KernelArg(ArgKind.Tokens, firstView.ElementsPerToken),
            "cols" => new KernelArg(ArgKind.I32, firstView.Dims[0]),
            "rows" => new KernelArg(ArgKind.I32, firstView.Dims.Length > 1 ? firstView.Dims[1] : 1),
            "kv_dim" => new KernelArg(ArgKind.I32, _hyper["n_head_kv"] * _hyper["head_dim"]),
            _ when _hyper.TryGetValue(a.Name, out long h) => new KernelArg(ArgKind.I32, h),
            _ => throw new PlanException($"{where}: kernel {family} argument {a.Name} (i32) has no binding (docs/plan-format.md)"),
        };
    }

    private static long Evaluate(string expr, Dictionary<string, KernelArg> scalars, long tokens)
    {
        var vars = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, a) in scalars)
            if (a.Kind is ArgKind.I32 or ArgKind.Tokens) vars[name] = a.Kind == ArgKind.Tokens ? a.Value * tokens : a.Value;
        return ShapeExpression.Evaluate(expr, vars);
    }
}

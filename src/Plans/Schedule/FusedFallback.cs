using Engine.Graph;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>The spec's fallback for a fused op whose kernel cannot be used (docs/graph-spec.md "fused="): the fused
/// gate+up GEMV with SwiGLU needs ffn_gate and ffn_up in one format, so a file that mixes them (any layer) runs the
/// program with <c>y = gemv(gate, x, xq); t = gemv(up, x, xq); y = swiglu(y, t)</c> instead, t being one more activation of
/// y's shape. Files from llama.cpp's quantizer keep gate and up in one format, so this is the rare path.</summary>
public static class FusedFallback
{
    /// <summary>The program with every MatMulSwiGlu op replaced by its unfused ops (the same program when there is none).</summary>
    public static LayerProgram Lower(LayerProgram program)
    {
        if (!program.AllOps.Any(o => o.Kind == OpKind.MatMulSwiGlu)) return program;
        var tensors = program.Tensors.ToList();
        List<GraphOp> Section(IReadOnlyList<GraphOp> ops)
        {
            var list = new List<GraphOp>();
            foreach (var op in ops)
            {
                if (op.Kind != OpKind.MatMulSwiGlu) { list.Add(op); continue; }
                string gate = op.Inputs[0], up = op.Inputs[1], y = op.Outputs[0], t = op.Name + "_up";
                var x = op.Inputs.Skip(2).ToArray();   // the activations (and their quantized form)
                tensors.Add(program.Tensor(y) with { Name = t });
                list.Add(new GraphOp(OpKind.MatMul, op.Name + "_gate", [gate, .. x], [y], gate) { Kernel = FamilyOf(program, OpKind.MatMul) });
                list.Add(new GraphOp(OpKind.MatMul, op.Name + "_up", [up, .. x], [t], up) { Kernel = FamilyOf(program, OpKind.MatMul) });
                list.Add(new GraphOp(OpKind.SwiGlu, op.Name + "_swiglu", [y, t], [y]) { Kernel = FamilyOf(program, OpKind.SwiGlu) });
            }
            return list;
        }
        return program with { Tensors = tensors, Prologue = Section(program.Prologue), Layer = Section(program.Layer), Epilogue = Section(program.Epilogue) };
    }

    /// <summary>The program with every AttentionQuantize op (attention fused with the quantize of its output, kernel
    /// attention_quant) replaced by a plain attention op of the same name and, when <paramref name="keepQuantize"/>,
    /// a quantize op after it: the fused kernel needs head_dim a multiple of 32 (a warp's outputs are one block), and
    /// where no matmul reads the 8-bit output the attention alone runs.</summary>
    public static LayerProgram LowerAttentionQuantize(LayerProgram program, bool keepQuantize)
    {
        if (!program.AllOps.Any(o => o.Kind == OpKind.AttentionQuantize)) return program;
        List<GraphOp> Section(IReadOnlyList<GraphOp> ops)
        {
            var list = new List<GraphOp>();
            foreach (var op in ops)
            {
                if (op.Kind != OpKind.AttentionQuantize) { list.Add(op); continue; }
                string y = op.Outputs[0], yq = op.Outputs[1];
                // The outputs after the two activations (the ranges' scratch and counters) stay the attention's.
                string family = FamilyOf(program, OpKind.Attention);
                // The plain family's short kernel (named FAMILY_short in the spec) where the fused op had one.
                string? shortFamily = op.Short is not null && program.Kernels.Any(k => k.Name == family + "_short") ? family + "_short" : null;
                list.Add(new GraphOp(OpKind.Attention, op.Name, op.Inputs, [y, .. op.Outputs.Skip(2)]) { Kernel = family, Short = shortFamily });
                if (keepQuantize)
                    list.Add(new GraphOp(OpKind.Quantize, op.Name + "_quantize", [y], [yq]) { Kernel = FamilyOf(program, OpKind.Quantize) });
            }
            return list;
        }
        return program with { Prologue = Section(program.Prologue), Layer = Section(program.Layer), Epilogue = Section(program.Epilogue) };
    }

    /// <summary>The program with no op's short kernel (the spec's short=): for models whose shapes the short attention
    /// kernel does not take (head_dim not a multiple of 16 or above 128: kernels/Attention.cs AttentionShort).</summary>
    public static LayerProgram WithoutShortKernels(LayerProgram program)
    {
        if (!program.AllOps.Any(o => o.Short is not null)) return program;
        List<GraphOp> Section(IReadOnlyList<GraphOp> ops) => [.. ops.Select(op => op.Short is null ? op : op with { Short = null })];
        return program with { Prologue = Section(program.Prologue), Layer = Section(program.Layer), Epilogue = Section(program.Epilogue) };
    }

    /// <summary>The program with no batch kernel (the spec's batch=) on the ops of <paramref name="kind"/>: for models whose
    /// shapes the tiled attention does not take (head_dim not a multiple of 32 or above 128: kernels/AttentionTiled.cs).</summary>
    public static LayerProgram WithoutBatchKernels(LayerProgram program, OpKind kind)
    {
        if (!program.AllOps.Any(o => o.Kind == kind && o.Batch is not null)) return program;
        List<GraphOp> Section(IReadOnlyList<GraphOp> ops) => [.. ops.Select(op => op.Kind != kind || op.Batch is null ? op : op with { Batch = null })];
        return program with { Prologue = Section(program.Prologue), Layer = Section(program.Layer), Epilogue = Section(program.Epilogue) };
    }

    /// <summary>The family that runs ops of <paramref name="kind"/>: the one a program op of that kind uses, else the
    /// family named like the kind (swiglu).</summary>
    private static string FamilyOf(LayerProgram program, OpKind kind) =>
        program.AllOps.FirstOrDefault(o => o.Kind == kind)?.Kernel
        ?? program.Kernels.FirstOrDefault(k => string.Equals(k.Name.Replace("_", ""), kind.ToString(), StringComparison.OrdinalIgnoreCase))?.Name
        ?? throw new PlanException($"layer program {program.Name}: no kernel family runs {kind} (needed by the unfused fallback)");
}

using Engine.Graph;
using Engine.Graph.Generated;
using Engine.Plans.Gguf;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>The generated layer program is consistent with the key table, the kernel table and itself.</summary>
public class LayerProgramTests
{
    private static readonly LayerProgram Program = LlamaProgram.Program;

    [Fact]
    public void Every_weight_role_names_a_gguf_tensor()
    {
        foreach (var t in Program.Tensors.Where(t => t.Role == TensorRole.Weight))
            Assert.False(string.IsNullOrEmpty(WeightRoles.TensorName(t.WeightRole!, 0)));
        Assert.Equal("blk.3.ffn_gate.weight", WeightRoles.TensorName(Program.Tensor("ffn_gate").WeightRole!, 3));
    }

    [Fact]
    public void Every_op_has_an_entry_point_for_its_weight_formats()
    {
        var entries = Engine.Kernels.Generated.KernelTable.All.Select(e => e.Name).ToHashSet();
        foreach (var op in Program.AllOps)
        {
            var family = Program.Kernel(op.Kernel);
            if (family.Formats.Count == 0) Assert.Contains(family.EntryPoint(null), entries);
            else
            {
                Assert.NotNull(op.Weight);
                foreach (var f in family.Formats) Assert.Contains(family.EntryPoint(f), entries);
                foreach (var f in family.F32ActFormats) Assert.Contains(family.EntryPoint(f, f32Activations: true), entries);
            }
        }
    }

    [Fact]
    public void Lifetimes_cover_every_use_in_program_order()
    {
        var ops = Program.AllOps.ToList();
        foreach (var t in Program.Tensors)
        {
            var uses = ops.Select((op, i) => (op, i)).Where(x => x.op.Inputs.Contains(t.Name) || x.op.Outputs.Contains(t.Name)).Select(x => x.i).ToList();
            Assert.NotEmpty(uses);
            Assert.Equal((uses.Min(), uses.Max()), (t.FirstUse, t.LastUse));
        }
        Assert.Equal("embed", ops[0].Name);
        Assert.Equal(("lm_head", OpKind.ArgMax), (ops[^2].Name, ops[^1].Kind));
        Assert.Equal([OpKind.MatMul, OpKind.MatMul, OpKind.SwiGlu], Program.Layer.Single(o => o.Kind == OpKind.MatMulSwiGlu).Fuses);
    }
}

public class ShapeExpressionTests
{
    private static readonly Dictionary<string, long> Llama8B = new()
    {
        ["n_embd"] = 4096, ["n_ff"] = 14336, ["n_head"] = 32, ["n_head_kv"] = 8, ["head_dim"] = 128,
        ["n_vocab"] = 128256, ["n_ctx"] = 8192, ["n_batch"] = 512,
    };

    [Fact]
    public void Evaluates_every_shape_of_the_program()
    {
        var p = LlamaProgram.Program;
        Assert.Equal([4096L, 1024], ShapeExpression.Shape(p.Tensor("attn_k"), Llama8B));
        Assert.Equal([1024L, 8192], ShapeExpression.Shape(p.Tensor("k_cache"), Llama8B));
        Assert.Equal([64L], ShapeExpression.Shape(p.Tensor("rope_freqs"), Llama8B));
        foreach (var t in p.Tensors) Assert.All(ShapeExpression.Shape(t, Llama8B), d => Assert.True(d > 0));
    }

    [Theory]
    [InlineData("ceil_div(n_head, 3) * (2 + 1) - 1", 32)]
    [InlineData("n_ff / 7 / 2", 1024)]
    public void Evaluates_operators_and_ceil_div(string expression, long expected) =>
        Assert.Equal(expected, ShapeExpression.Evaluate(expression, Llama8B));

    [Fact]
    public void Unknown_name_is_one_clear_error()
    {
        var e = Assert.Throws<ArgumentException>(() => ShapeExpression.Evaluate("n_embd * n_expert", Llama8B));
        Assert.Equal("shape expression 'n_embd * n_expert' at 9: no value for 'n_expert'", e.Message);
    }
}

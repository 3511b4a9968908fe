using Engine.Graph;
using Engine.Plans.Cli;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;
using Engine.Plans.Schedule;
using Xunit;

namespace Engine.Plans.Tests.Planner;

public sealed class PlannerWorkspaceTests
{
    private static readonly ModelConfig Config = new()
    {
        Architecture = "llama", EmbeddingLength = 64, LayerCount = 2, FeedForwardLength = 128, HeadCount = 4, HeadCountKv = 2,
        HeadDim = 16, VocabSize = 100, TrainedContext = 64, RmsEpsilon = 1e-5f, RopeFreqBase = 10000, RopeDimensions = 16,
    };

    [Fact]
    public void Lifetimes_cover_every_use_and_live_buffers_do_not_overlap()
    {
        var program = Engine.Graph.Generated.LlamaProgram.Program;
        var ws = Workspace.Build(program, new ModelShapes(Config, 32, 1));
        var ops = program.AllOps.ToList();
        for (int i = 0; i < ws.Buffers.Count; i++)
        {
            var b = ws.Buffers[i];
            if (b.WholeRun) continue;
            for (int k = 0; k < ops.Count; k++)
                if (ops[k].Inputs.Contains(b.Name) || ops[k].Outputs.Contains(b.Name))
                    Assert.InRange(k, b.FirstUse, b.LastUse);
            for (int j = 0; j < ws.Buffers.Count; j++)
                if (i != j && b.LiveTogether(ws.Buffers[j]))
                    Assert.False(ws.Offsets[i] < ws.Offsets[j] + ws.Buffers[j].Size && ws.Offsets[j] < ws.Offsets[i] + b.Size, $"{b.Name} overlaps {ws.Buffers[j].Name}");
        }
        // Reuse happens: the workspace is smaller than the sum of its buffers.
        Assert.True(ws.Size < ws.Buffers.Sum(b => Workspace.Align(b.Size, Workspace.Alignment)));
    }

    [Fact]
    public void A_value_carried_around_the_layer_loop_lives_across_the_whole_body()
    {
        // "carry" is read at the top of the body and written at its end: the next layer reads it again, so no
        // other body buffer may share its memory.
        var t = new List<GraphTensor>
        {
            new("carry", TensorRole.Activation, ["n_embd"]), new("tmp", TensorRole.Activation, ["n_embd"]),
            new("tmp2", TensorRole.Activation, ["n_embd"]),
        };
        var body = new[]
        {
            new GraphOp(OpKind.Copy, "a", ["carry"], ["tmp"]),
            new GraphOp(OpKind.Copy, "b", ["tmp"], ["tmp2"]),
            new GraphOp(OpKind.Copy, "c", ["tmp2"], ["carry"]),
        };
        var ws = Workspace.Build(new LayerProgram("loop", t, [], body, []), new ModelShapes(Config, 8, 1));
        var carry = ws.Buffers.Single(b => b.Name == "carry");
        Assert.Equal((0, 2), (carry.FirstUse, carry.LastUse));
        Assert.Equal(3 * Workspace.Align(64 * 4, Workspace.Alignment), ws.Size);
    }

    [Theory]
    [InlineData("n_embd", 64)]
    [InlineData("n_head_kv*head_dim", 32)]
    [InlineData("(n_ff + 2) / 2 - 1", 64)]
    [InlineData("n_ctx*n_head", 128)]
    public void Shape_expressions(string expr, long value) =>
        Assert.Equal(value, new ModelShapes(Config, 32, 1).Evaluate(expr));

    [Fact]
    public void Unknown_hyper_parameter_is_one_line() =>
        Assert.Contains("no value for 'n_bogus'", Assert.Throws<PlanException>(() => new ModelShapes(Config, 8, 1).Evaluate("n_bogus*2")).Message);
}

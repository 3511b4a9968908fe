using Engine.Graph;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>The layer program's hyper-parameter names bound to a concrete model, context and batch; evaluates
/// shape expressions through <see cref="ShapeExpression"/> (the one evaluator, in src/Graph) and reports a bad
/// expression as a one-line <see cref="PlanException"/>.</summary>
public sealed class ModelShapes
{
    private readonly Dictionary<string, long> _vars;

    public ModelShapes(ModelConfig c, int ctx, int batch)
    {
        _vars = new(StringComparer.Ordinal)
        {
            ["n_embd"] = c.EmbeddingLength, ["n_ff"] = c.FeedForwardLength, ["n_head"] = c.HeadCount,
            ["n_head_kv"] = c.HeadCountKv, ["head_dim"] = c.HeadDim, ["n_vocab"] = c.VocabSize, ["n_ctx"] = ctx,
            ["n_batch"] = batch, ["n_layer"] = c.LayerCount, ["n_rot"] = c.RopeDimensions,
        };
    }

    public IReadOnlyDictionary<string, long> Parameters => _vars;

    public long Evaluate(string expr)
    {
        try { return ShapeExpression.Evaluate(expr, _vars); }
        catch (ArgumentException e) { throw new PlanException("layer program: " + e.Message); }
    }

    public long Elements(IReadOnlyList<string> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            long v = Evaluate(d);
            if (v <= 0) throw new PlanException($"layer program: shape \"{d}\" evaluates to {v}, must be positive");
            n = checked(n * v);
        }
        return n;
    }
}

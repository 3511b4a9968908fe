using System.Globalization;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>Evaluates the layer program's shape expressions ("n_embd", "n_head_kv*head_dim", "(n_ff+1)/2") over
/// a concrete model: integers, the hyper-parameter names below, + - * / and parentheses.</summary>
public sealed class ShapeExpression
{
    private readonly Dictionary<string, long> _vars;

    public ShapeExpression(ModelConfig c, int ctx, int batch)
    {
        _vars = new(StringComparer.Ordinal)
        {
            ["n_embd"] = c.EmbeddingLength, ["n_ff"] = c.FeedForwardLength, ["n_head"] = c.HeadCount,
            ["n_head_kv"] = c.HeadCountKv, ["head_dim"] = c.HeadDim, ["n_vocab"] = c.VocabSize, ["n_ctx"] = ctx,
            ["n_batch"] = batch, ["n_layer"] = c.LayerCount, ["n_rot"] = c.RopeDimensions,
        };
    }

    public long Evaluate(string expr)
    {
        int pos = 0;
        long v = Sum(expr, ref pos);
        Skip(expr, ref pos);
        if (pos != expr.Length) throw Bad(expr, $"unexpected '{expr[pos]}' at {pos}");
        return v;
    }

    public long Elements(IReadOnlyList<string> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            long v = Evaluate(d);
            if (v <= 0) throw Bad(d, $"evaluates to {v}, must be positive");
            n = checked(n * v);
        }
        return n;
    }

    private long Sum(string s, ref int p)
    {
        long v = Product(s, ref p);
        while (true)
        {
            Skip(s, ref p);
            if (p < s.Length && s[p] == '+') { p++; v += Product(s, ref p); }
            else if (p < s.Length && s[p] == '-') { p++; v -= Product(s, ref p); }
            else return v;
        }
    }

    private long Product(string s, ref int p)
    {
        long v = Atom(s, ref p);
        while (true)
        {
            Skip(s, ref p);
            if (p < s.Length && s[p] == '*') { p++; v = checked(v * Atom(s, ref p)); }
            else if (p < s.Length && s[p] == '/')
            {
                p++;
                long d = Atom(s, ref p);
                if (d == 0) throw Bad(s, "division by zero");
                v /= d;
            }
            else return v;
        }
    }

    private long Atom(string s, ref int p)
    {
        Skip(s, ref p);
        if (p >= s.Length) throw Bad(s, "unexpected end");
        if (s[p] == '(')
        {
            p++;
            long v = Sum(s, ref p);
            Skip(s, ref p);
            if (p >= s.Length || s[p] != ')') throw Bad(s, "missing ')'");
            p++;
            return v;
        }
        int start = p;
        if (char.IsDigit(s[p]))
        {
            while (p < s.Length && char.IsDigit(s[p])) p++;
            return long.Parse(s.AsSpan(start, p - start), NumberStyles.None, CultureInfo.InvariantCulture);
        }
        while (p < s.Length && (char.IsLetterOrDigit(s[p]) || s[p] == '_')) p++;
        string name = s[start..p];
        if (name.Length == 0) throw Bad(s, $"unexpected '{s[p]}' at {p}");
        return _vars.TryGetValue(name, out long x) ? x : throw Bad(s, $"unknown hyper-parameter '{name}'");
    }

    private static void Skip(string s, ref int p) { while (p < s.Length && s[p] == ' ') p++; }

    private static PlanException Bad(string expr, string why) => new($"layer program: shape \"{expr}\": {why}");
}

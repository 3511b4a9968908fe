using System.Globalization;

namespace Engine.Graph;

/// <summary>Evaluates the spec's shape and launch expressions (names, integers, + - * / with integer division,
/// parentheses, ceil_div(a, b)) for concrete hyper-parameters, e.g. "n_head * head_dim" → 4096. The generator has
/// already validated the names of every expression in the program.</summary>
public static class ShapeExpression
{
    public static long Evaluate(string expression, IReadOnlyDictionary<string, long> parameters)
    {
        int pos = 0;
        long value = Sum(expression, ref pos, parameters);
        SkipSpaces(expression, ref pos);
        if (pos != expression.Length) throw Error(expression, pos, "unexpected '" + expression[pos] + "'");
        return value;
    }

    /// <summary>Every dimension of <paramref name="tensor"/>'s shape.</summary>
    public static long[] Shape(GraphTensor tensor, IReadOnlyDictionary<string, long> parameters) =>
        tensor.Shape.Select(e => Evaluate(e, parameters)).ToArray();

    private static long Sum(string s, ref int pos, IReadOnlyDictionary<string, long> p)
    {
        long v = Product(s, ref pos, p);
        while (true)
        {
            SkipSpaces(s, ref pos);
            if (pos < s.Length && s[pos] == '+') { pos++; v += Product(s, ref pos, p); }
            else if (pos < s.Length && s[pos] == '-') { pos++; v -= Product(s, ref pos, p); }
            else return v;
        }
    }

    private static long Product(string s, ref int pos, IReadOnlyDictionary<string, long> p)
    {
        long v = Primary(s, ref pos, p);
        while (true)
        {
            SkipSpaces(s, ref pos);
            if (pos < s.Length && s[pos] == '*') { pos++; v *= Primary(s, ref pos, p); }
            else if (pos < s.Length && s[pos] == '/')
            {
                int at = pos++;
                long d = Primary(s, ref pos, p);
                if (d == 0) throw Error(s, at, "division by zero");
                v /= d;
            }
            else return v;
        }
    }

    private static long Primary(string s, ref int pos, IReadOnlyDictionary<string, long> p)
    {
        SkipSpaces(s, ref pos);
        if (pos >= s.Length) throw Error(s, pos, "expression ends early");
        int start = pos;
        char c = s[pos];
        if (c == '(')
        {
            pos++;
            long v = Sum(s, ref pos, p);
            Expect(s, ref pos, ')');
            return v;
        }
        if (char.IsDigit(c))
        {
            while (pos < s.Length && char.IsDigit(s[pos])) pos++;
            return long.Parse(s.AsSpan(start, pos - start), NumberStyles.None, CultureInfo.InvariantCulture);
        }
        if (!char.IsLetter(c) && c != '_') throw Error(s, pos, "unexpected '" + c + "'");
        while (pos < s.Length && (char.IsLetterOrDigit(s[pos]) || s[pos] == '_')) pos++;
        string name = s[start..pos];
        SkipSpaces(s, ref pos);
        if (name == "ceil_div" && pos < s.Length && s[pos] == '(')
        {
            pos++;
            long a = Sum(s, ref pos, p);
            Expect(s, ref pos, ',');
            long b = Sum(s, ref pos, p);
            Expect(s, ref pos, ')');
            if (b == 0) throw Error(s, start, "ceil_div by zero");
            return (a + b - 1) / b;
        }
        return p.TryGetValue(name, out long value) ? value : throw Error(s, start, "no value for '" + name + "'");
    }

    private static void Expect(string s, ref int pos, char c)
    {
        SkipSpaces(s, ref pos);
        if (pos >= s.Length || s[pos] != c) throw Error(s, pos, "expected '" + c + "'");
        pos++;
    }

    private static void SkipSpaces(string s, ref int pos)
    {
        while (pos < s.Length && s[pos] == ' ') pos++;
    }

    private static ArgumentException Error(string s, int pos, string what) =>
        new($"shape expression '{s}' at {pos}: {what}");
}

using System.Text;

namespace Engine.Plans.Gguf;

/// <summary>A malformed or unsupported GGUF file. The message is one line naming the file, the byte offset,
/// the field and the value, so the CLI prints it as it is. Field names and values can come from the file
/// itself (a key, a tensor name), so control characters in them are escaped to keep the message one line.</summary>
public sealed class GgufException(string file, long offset, string field, string value, string reason)
    : Exception($"{Printable(file)}: offset {offset}: {Printable(field)} = {Printable(value)}: {Printable(reason)}")
{
    public string File { get; } = file;
    public long Offset { get; } = offset;
    public string Field { get; } = Printable(field);

    /// <summary>The text with control characters written as escapes (\n, \t, \x1B).</summary>
    public static string Printable(string s)
    {
        bool clean = true;
        foreach (char ch in s) if (char.IsControl(ch)) { clean = false; break; }
        if (clean) return s;
        var b = new StringBuilder(s.Length + 8);
        foreach (char ch in s)
        {
            switch (ch)
            {
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                default:
                    if (char.IsControl(ch)) b.Append("\\x").Append(((int)ch).ToString("X2"));
                    else b.Append(ch);
                    break;
            }
        }
        return b.ToString();
    }
}

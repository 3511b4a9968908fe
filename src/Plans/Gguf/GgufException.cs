namespace Engine.Plans.Gguf;

/// <summary>A malformed or unsupported GGUF file. The message is one line naming the file, the byte offset,
/// the field and the value, so the CLI prints it as it is.</summary>
public sealed class GgufException(string file, long offset, string field, string value, string reason)
    : Exception($"{file}: offset {offset}: {field} = {value}: {reason}")
{
    public string File { get; } = file;
    public long Offset { get; } = offset;
    public string Field { get; } = field;
}

namespace Engine.Runtime.Streaming;

/// <summary>A failure that stops generation while streaming weights: the message is one line naming the file or
/// device, the LBA and the errno (or what differs from the plan), so ntrun prints it as it is and exits non-zero.</summary>
public sealed class StreamingException(string message) : Exception(message);

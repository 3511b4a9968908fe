namespace Engine.Plans.Cli;

/// <summary>A usage error or a refused request (bad option, missing argument, a budget that cannot fit).
/// <see cref="Program.Main"/> prints the message as one line, <c>ntc: message</c>, and exits 1.</summary>
public sealed class CliException(string message) : Exception(message);

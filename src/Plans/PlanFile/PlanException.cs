namespace Engine.Plans.PlanFile;

/// <summary>A plan that cannot be made or cannot be used. The message is one line (what, which value, which
/// limit, and what to do), printed by ntc/ntrun as it is, with a non-zero exit.</summary>
public sealed class PlanException(string message) : Exception(message);

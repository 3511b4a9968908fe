namespace Engine.Runtime.Streaming;

/// <summary>One command list in flight into one staging buffer, and its completion: the caller keeps one per staging
/// slot and reuses it for every layer that lands there, so submitting allocates nothing. Poll
/// <see cref="IsCompleted"/> or block in <see cref="Wait"/>; a failed read surfaces as a
/// <see cref="StreamingException"/> from <see cref="Wait"/> or <see cref="ThrowIfFailed"/>.</summary>
public sealed unsafe class ReadBatch : IDisposable
{
    // Workers claim commands by decrementing Unclaimed and reading the index it returned (counted from the end), so
    // a worker that arrives late from an earlier use of this batch only drives the counter further below zero, and
    // every index of the current use is handed out exactly once (resetting it happens under the source's queue lock).
    internal int Unclaimed;
    internal int Remaining;
    internal ReadOnlyMemory<ReadCommand> Commands;
    internal byte* Staging;
    internal string? Error;
    private long completedAt;
    private readonly ManualResetEventSlim done = new(initialState: true);

    /// <summary>True when every command of the last submission has finished (successfully or not), and before the
    /// first submission. Non-blocking.</summary>
    public bool IsCompleted => done.IsSet;

    /// <summary>The one-line error of the last submission, or null while it is running or when it succeeded.</summary>
    public string? FailureMessage => done.IsSet ? Volatile.Read(ref Error) : null;

    /// <summary>When the last submission completed (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>), for
    /// the disk's busy time in <see cref="LayerStreamer"/>'s counters; meaningful once <see cref="IsCompleted"/>.</summary>
    public long CompletedAt => Volatile.Read(ref completedAt);

    /// <summary>Blocks until the last submission completes; throws its error as a <see cref="StreamingException"/>.</summary>
    public void Wait()
    {
        done.Wait();
        ThrowIfFailed();
    }

    /// <summary>Throws the completed submission's error, if it had one.</summary>
    public void ThrowIfFailed()
    {
        string? error = FailureMessage;
        if (error != null) throw new StreamingException(error);
    }

    internal void Prepare(ReadOnlyMemory<ReadCommand> commands, byte* staging)
    {
        Commands = commands;
        Staging = staging;
        Error = null;
        Remaining = commands.Length;
        done.Reset();
    }

    internal void Fail(string message) => Interlocked.CompareExchange(ref Error, message, null);

    /// <summary>Counts one finished command; the last one signals completion.</summary>
    internal void Finish()
    {
        if (Interlocked.Decrement(ref Remaining) == 0) Complete();
    }

    internal void CompleteEmpty() => Complete();

    private void Complete()
    {
        Volatile.Write(ref completedAt, System.Diagnostics.Stopwatch.GetTimestamp());
        done.Set();
    }

    public void Dispose() => done.Dispose();
}

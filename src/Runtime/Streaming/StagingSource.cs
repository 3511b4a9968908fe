namespace Engine.Runtime.Streaming;

/// <summary>Replays tier-C command lists into staging buffers on a persistent pool of reader threads, one blocking
/// read in flight per thread, so the queue depth is the thread count. Threads start once with the source; a
/// submission only puts its <see cref="ReadBatch"/> in a fixed ring, and threads claim its commands one at a time,
/// so nothing is allocated per batch. Subclasses say how one command is read (<see cref="DirectReader"/>: pread,
/// O_DIRECT when the filesystem allows it; <see cref="MmapSource"/>: a copy out of a memory map).</summary>
public abstract unsafe class StagingSource : IDisposable
{
    private const int RingCapacity = 64;

    private readonly object gate = new();
    private readonly ReadBatch?[] ring = new ReadBatch?[RingCapacity];
    private int head, queued;
    private bool stopping;
    private Thread[] workers = [];
    private readonly long openedSize;
    private readonly DateTime openedWriteTimeUtc;
    private readonly bool openedIsRegularFile;

    /// <summary>The file or device path as given.</summary>
    public string Path { get; }

    /// <summary>Bytes readable from the source when it was opened (for a device, its whole size).</summary>
    public long Length { get; }

    /// <summary>Reader threads, i.e. reads in flight at most.</summary>
    public int QueueDepth { get; private set; }

    protected StagingSource(string path, long length, bool isRegularFile, DateTime writeTimeUtc)
    {
        Path = path;
        Length = length;
        openedSize = length;
        openedIsRegularFile = isRegularFile;
        openedWriteTimeUtc = writeTimeUtc;
    }

    /// <summary>Starts the reader threads; called once by the subclass when its handle is open.</summary>
    protected void StartWorkers(int queueDepth, string name)
    {
        if (queueDepth < 1) throw new ArgumentOutOfRangeException(nameof(queueDepth), queueDepth, "queue depth must be at least 1");
        QueueDepth = queueDepth;
        workers = new Thread[queueDepth];
        for (int i = 0; i < queueDepth; i++)
        {
            workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"{name}-{i}" };
            workers[i].Start();
        }
    }

    /// <summary>Starts reading <paramref name="commands"/> into <paramref name="staging"/> and returns at once (one
    /// submitting thread per batch; any number of batches in flight, up to 64);
    /// <paramref name="batch"/> completes when all are read. The list must have passed
    /// <see cref="ReadCommand.Validate"/> against this staging length when the plan was loaded; the buffer must be
    /// 4 KiB-aligned (NativeMemory.AlignedAlloc, cuMemHostAlloc) and stay alive until the batch completes.</summary>
    public void Submit(ReadBatch batch, ReadOnlyMemory<ReadCommand> commands, byte* staging)
    {
        if (!batch.IsCompleted) throw new InvalidOperationException("read batch submitted again while still in flight");
        if (((nuint)staging & (ReadCommand.BlockSize - 1)) != 0)
            throw new ArgumentException("staging buffer is not 4 KiB-aligned", nameof(staging));
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(stopping, this);
            if (queued == RingCapacity) throw new InvalidOperationException($"more than {RingCapacity} read batches in flight");
            batch.Prepare(commands, staging);
            if (commands.Length == 0) { batch.CompleteEmpty(); return; }
            ring[(head + queued) % RingCapacity] = batch;
            queued++;
            Volatile.Write(ref batch.Unclaimed, commands.Length);
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>Submits and waits: the synchronous form, for loading and tests.</summary>
    public void Read(ReadBatch batch, ReadOnlyMemory<ReadCommand> commands, byte* staging)
    {
        Submit(batch, commands, staging);
        batch.Wait();
    }

    /// <summary>Stops generation with one line when the source is not the one the plan was made for: its size at open
    /// must be <paramref name="expectedSize"/> (a raw device must hold <paramref name="expectedSize"/> bytes from
    /// <paramref name="baseLba"/> on), and a regular file must still have the size and modification time it had when
    /// it was opened. Call it when the plan is loaded and again when a read fails (it allocates).</summary>
    public void CheckMatchesPlan(long expectedSize, long baseLba = 0)
    {
        if (!openedIsRegularFile)
        {
            long needed = baseLba * ReadCommand.BlockSize + expectedSize;
            if (openedSize < needed)
                throw new StreamingException(
                    $"{Path}: device holds {openedSize} bytes, the plan reads {expectedSize} bytes from LBA {baseLba} (up to byte {needed}); check --nvme/--lba or re-plan");
            return;
        }
        if (openedSize != expectedSize)
            throw new StreamingException(
                $"{Path}: file is {openedSize} bytes, the plan was made for {expectedSize}; the model changed, re-plan with ntc");
        var now = new FileInfo(Path);
        if (!now.Exists)
            throw new StreamingException($"{Path}: file was removed while streaming");
        if (now.Length != openedSize || now.LastWriteTimeUtc != openedWriteTimeUtc)
            throw new StreamingException(
                $"{Path}: file changed while streaming (size {openedSize} -> {now.Length}, modified {openedWriteTimeUtc:O} -> {now.LastWriteTimeUtc:O}); re-plan with ntc");
    }

    /// <summary>Reads one command's bytes to <paramref name="destination"/>: exactly <paramref name="length"/> bytes
    /// from byte <paramref name="offset"/>, where the caller has already clipped the length at the end of the
    /// source. Throws <see cref="StreamingException"/> on any failure; <paramref name="requested"/> is the command's
    /// unclipped length (O_DIRECT must ask for whole blocks).</summary>
    protected abstract void ReadRange(in ReadCommand command, byte* destination, long offset, long length, long requested);

    private void WorkerLoop()
    {
        while (true)
        {
            ReadBatch batch;
            lock (gate)
            {
                while (queued == 0 && !stopping) Monitor.Wait(gate);
                if (queued == 0) return; // stopping, and everything submitted has been claimed

                batch = ring[head]!;
            }
            int left = Interlocked.Decrement(ref batch.Unclaimed);
            if (left < 0)
            {
                // Every command of this batch is claimed: drop it from the ring unless another thread already did.
                lock (gate)
                {
                    if (queued > 0 && ReferenceEquals(ring[head], batch) && Volatile.Read(ref batch.Unclaimed) <= 0)
                    {
                        ring[head] = null;
                        head = (head + 1) % RingCapacity;
                        queued--;
                    }
                }
                continue;
            }
            int index = batch.Commands.Length - 1 - left;
            if (Volatile.Read(ref batch.Error) == null) Execute(batch, index);
            batch.Finish();
        }
    }

    private void Execute(ReadBatch batch, int index)
    {
        ref readonly ReadCommand command = ref batch.Commands.Span[index];
        byte* destination = batch.Staging + command.StagingOffset;
        long offset = command.ByteOffset, requested = command.ByteLength;
        try
        {
            // The last block of a file may be partial: the plan reads the 4 KiB-aligned superset of a layer, so the
            // final command may reach up to 4095 bytes past the end. Those bytes read as zeros; anything shorter is
            // a file shorter than the plan.
            long available = Math.Max(0, Length - offset);
            if (requested - available >= ReadCommand.BlockSize)
                throw new StreamingException(
                    $"{Path}: short read at LBA {command.Lba} ({command.BlockCount} blocks, bytes {offset}..{offset + requested}): the source ends at byte {Length}; the plan expects more, re-plan with ntc");
            long length = Math.Min(available, requested);
            ReadRange(command, destination, offset, length, requested);
            if (length < requested) new Span<byte>(destination + length, (int)(requested - length)).Clear();
        }
        catch (StreamingException e) { batch.Fail(e.Message); }
        catch (Exception e) { batch.Fail($"{Path}: read at LBA {command.Lba} failed: {e.Message.ReplaceLineEndings(" ")}"); }
    }

    /// <summary>Lets every submitted batch finish, then stops the threads.</summary>
    protected virtual void Dispose(bool disposing)
    {
        lock (gate)
        {
            stopping = true;
            Monitor.PulseAll(gate);
        }
        foreach (var w in workers) w.Join();
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }
}

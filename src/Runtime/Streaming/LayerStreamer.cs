using System.Diagnostics;
using Engine.Plans.PlanFile;

namespace Engine.Runtime.Streaming;

/// <summary>Where tier-C reads come from: the plan's command lists replayed with O_DIRECT on a reader pool
/// (<see cref="DirectReader"/>), or the seed's page-cache baseline (<see cref="MmapSource"/>, <c>--stream-from mmap</c>).</summary>
public enum StreamFrom { Direct, Mmap }

/// <summary>How a <see cref="LayerStreamer"/> reads tier C.</summary>
public sealed record StreamingOptions
{
    public StreamFrom From { get; init; } = StreamFrom.Direct;
    /// <summary>Reads in flight (reader threads); DESIGN.md asks for ≥ 32.</summary>
    public int QueueDepth { get; init; } = 32;
    /// <summary>Where the reader's one-line fallback notice goes (standard error when null).</summary>
    public TextWriter? Notices { get; init; }
}

/// <summary>What the streamer has done so far (monotonic; subtract two snapshots for an interval). Times are
/// <see cref="Stopwatch"/> ticks. Bytes copied are counted by the copy thread when a layer lands in its slot, passes by
/// the compute thread when it takes the first streamed layer of a pass; the bytes a pass needs are
/// <see cref="LayerStreamer.PassBytesPinned"/> and <see cref="LayerStreamer.PassBytesNvme"/>.</summary>
public readonly record struct StreamCounters(
    long Passes,
    long CopiedPinned, long CopyTicksPinned,     // tier B: pinned arena → slot (the copy thread's memcpy)
    long CopiedNvme, long CopyTicksNvme,         // tier C: staging → slot
    long ReadBytes, long ReadBusyTicks,          // tier C: storage → staging, time with at least one read in flight
    long ComputeWaitTicks)                       // the compute thread blocked waiting for a layer
{
    public static StreamCounters operator -(StreamCounters a, StreamCounters b) => new(a.Passes - b.Passes,
        a.CopiedPinned - b.CopiedPinned, a.CopyTicksPinned - b.CopyTicksPinned, a.CopiedNvme - b.CopiedNvme,
        a.CopyTicksNvme - b.CopyTicksNvme, a.ReadBytes - b.ReadBytes, a.ReadBusyTicks - b.ReadBusyTicks,
        a.ComputeWaitTicks - b.ComputeWaitTicks);
}

/// <summary>Moves streamed layers (tiers B and C) through the plan's slots while the compute thread runs the layers
/// before them: the CPU backend's streaming engine, with the device arena in host memory (<see cref="HostArenas"/>)
/// and host→device copies done by a copy thread (DESIGN.md "Backends"; docs/streaming.md).
/// <para>The stream is the plan's streamed layers in layer order (stream index j), each with its slot
/// <c>j % slots</c>; every pass (a decode token, or one prompt batch) runs it once, so the copy thread walks it
/// cyclically and starts on the next pass's first layers while the current pass finishes (prefetch across the token
/// boundary). Per slot, two counters order everything: <c>loads[k]</c> (occupants landed, copy thread) and
/// <c>releases[k]</c> (occupants finished, compute thread). The copy thread may fill slot k for its n-th occupant once
/// <c>releases[k] ≥ n</c>; the compute thread may run its n-th occupant once <c>loads[k] ≥ n + 1</c>. Both walk the
/// same cyclic order, so the n-th occupant is the same layer for both. Tier-C reads are submitted ahead, in order,
/// as soon as their staging slot has been copied out, so storage reads overlap both the copy and the compute.</para>
/// <para>Nothing is allocated per layer or per token: commands, batches and counters are built at load. A failed read
/// faults the streamer: the compute thread's next wait throws one <see cref="StreamingException"/> line, and so does
/// every later one.</para></summary>
public sealed unsafe class LayerStreamer : IStreamingLinks, IDisposable
{
    /// <summary>One streamed layer: where its image comes from and where it lands.</summary>
    private readonly struct StreamedLayer
    {
        public required int Layer { get; init; }
        public required Tier Tier { get; init; }
        public required int Slot { get; init; }
        public required long Size { get; init; }                  // the image: 4 KiB-aligned superset of its tensors
        public required byte* Destination { get; init; }          // its slot in the device arena
        public required byte* Source { get; init; }               // tier B: its image in the pinned arena; C: its staging slot
        public ReadOnlyMemory<ReadCommand> Commands { get; init; } // tier C: its I/O list (offsets in the staging arena)
    }

    private readonly StreamedLayer[] _stream;    // [streamed layers] in stream order
    private readonly int[] _streamIndex;         // [n_layer] stream index, −1 for resident layers
    private readonly int _slots;
    private readonly StagingSource? _source;
    private readonly byte* _staging;             // the staging arena: the I/O lists' staging offsets count from here
    private readonly ReadBatch[] _reads;         // [slots] one per staging slot, reused

    private readonly object _gate = new();
    private readonly long[] _loads;              // [slots] written under _gate by the copy thread
    private readonly long[] _releases;           // [slots] written under _gate by the compute thread
    private readonly long[] _computeUses;        // [slots] compute thread only: occupants begun
    private volatile string? _fault;
    private volatile bool _stopping;
    private readonly Thread _copyThread;

    private long _passes, _copiedPinned, _copyTicksPinned, _copiedNvme, _copyTicksNvme, _readBytes, _readBusyTicks, _waitTicks;

    /// <summary>Bytes of tier-B images one pass moves (pinned → slot).</summary>
    public long PassBytesPinned { get; }
    /// <summary>Bytes of tier-C images one pass reads from storage (and copies staging → slot).</summary>
    public long PassBytesNvme { get; }
    /// <summary>Which path tier-C reads take ("O_DIRECT", "buffered pread (…)", "mmap"), or null without tier C.</summary>
    public string? ReadPathDescription { get; }
    public int SlotCount => _slots;
    public int StreamedLayerCount => _stream.Length;
    public string Copier => "copy thread";
    public bool MeasuresComputeWait => true;

    private LayerStreamer(StreamedLayer[] stream, int[] streamIndex, int slots, StagingSource? source, byte* staging, string? readPath)
    {
        (_stream, _streamIndex, _slots, _source, ReadPathDescription) = (stream, streamIndex, slots, source, readPath);
        _staging = staging;
        _reads = new ReadBatch[slots];
        for (int k = 0; k < slots; k++) _reads[k] = new ReadBatch();
        _loads = new long[slots];
        _releases = new long[slots];
        _computeUses = new long[slots];
        PassBytesPinned = stream.Where(s => s.Tier == Tier.B).Sum(s => s.Size);
        PassBytesNvme = stream.Where(s => s.Tier == Tier.C).Sum(s => s.Size);
        _copyThread = new Thread(CopyLoop) { IsBackground = true, Name = "ntrun-copy" };
        _copyThread.Start();
    }

    /// <summary>The streamer of <paramref name="plan"/> over <paramref name="arenas"/>, its copy thread started (the
    /// first layers start loading at once); null when every layer is resident. Tier-C reads come from the GGUF at
    /// <paramref name="modelPath"/> (file mode) or the plan's raw device, checked against the plan here
    /// (<see cref="StagingSource.CheckMatchesPlan"/>). Any defect is one <see cref="StreamingException"/> or
    /// <see cref="PlanException"/> line.</summary>
    public static LayerStreamer? Start(Plan plan, HostArenas arenas, string modelPath, StreamingOptions? options = null)
    {
        options ??= new StreamingOptions();
        var streamedLayers = Enumerable.Range(0, plan.Layers.Count).Where(l => plan.Layers[l].Tier != Tier.A).ToList();
        if (streamedLayers.Count == 0) return null;
        var inputs = plan.Inputs;
        bool anyNvme = streamedLayers.Any(l => plan.Layers[l].Tier == Tier.C);
        int maxBlocks = Math.Max(1, inputs.NvmeMaxTransfer / ReadCommand.BlockSize);

        var stream = new StreamedLayer[streamedLayers.Count];
        var streamIndex = Enumerable.Repeat(-1, plan.Layers.Count).ToArray();
        foreach (int l in streamedLayers)
        {
            var p = plan.Layers[l];
            ReadCommand[] commands = p.Tier == Tier.C ? ToReadCommands(plan, p, l) : [];
            if (p.Tier == Tier.C) ReadCommand.Validate(commands, arenas.StagingLength, maxBlocks, $"layer {l}");
            stream[p.StreamIndex] = new StreamedLayer
            {
                Layer = l, Tier = p.Tier, Slot = p.Slot, Size = p.ImageSize,
                Destination = arenas.SlotAddress(p.SlotOffset),
                Source = p.Tier == Tier.B ? arenas.Pinned + p.HomeOffset : arenas.Staging + p.HomeOffset,
                Commands = commands,
            };
            streamIndex[l] = p.StreamIndex;
        }

        StagingSource? source = null;
        string? readPath = null;
        if (anyNvme)
        {
            (source, readPath) = OpenSource(plan, modelPath, options);
            try
            {
                // A raw device must hold the GGUF from the plan's LBA on; a file (the GGUF, or an image standing in
                // for a device) must be exactly that long.
                long baseBytes = inputs.NvmeMode == NvmeMode.Device ? inputs.LbaBase * inputs.NvmeBlockSize : 0;
                source.CheckMatchesPlan(baseBytes + plan.Fingerprints.ModelFileSize);
            }
            catch
            {
                source.Dispose();
                throw;
            }
        }
        return new LayerStreamer(stream, streamIndex, plan.Inputs.Slots, source, arenas.Staging, readPath);
    }

    /// <summary>The plan's I/O list of one layer as 4 KiB read commands (a device with 512-byte LBAs has its
    /// LBAs and counts scaled; the planner placed the GGUF 4 KiB-aligned on it).</summary>
    internal static ReadCommand[] ToReadCommands(Plan plan, PlanLayer p, int layer)
    {
        int block = plan.Inputs.NvmeMode == NvmeMode.File ? ReadCommand.BlockSize : plan.Inputs.NvmeBlockSize;
        var commands = new ReadCommand[p.IoCount];
        for (int i = 0; i < p.IoCount; i++)
        {
            var c = plan.IoCommands[p.IoFirst + i];
            long offset = c.Lba * block, length = (long)c.BlockCount * block;
            if (offset % ReadCommand.BlockSize != 0 || length % ReadCommand.BlockSize != 0)
                throw new PlanException($"layer {layer} io command {p.IoFirst + i}: LBA {c.Lba} × {block} bytes is not 4 KiB aligned: re-plan with ntc");
            commands[i] = new ReadCommand(offset / ReadCommand.BlockSize, (int)(length / ReadCommand.BlockSize), c.StagingOffset);
        }
        return commands;
    }

    internal static (StagingSource, string) OpenSource(Plan plan, string modelPath, StreamingOptions o)
    {
        var inputs = plan.Inputs;
        string path = inputs.NvmeMode == NvmeMode.Device ? inputs.NvmeDevice : modelPath;
        if (o.From == StreamFrom.Mmap)
        {
            if (inputs.NvmeMode == NvmeMode.Device)
                throw new StreamingException($"--stream-from mmap maps the GGUF file; this plan reads a raw device ({inputs.NvmeDevice} from LBA {inputs.LbaBase}): use --stream-from direct");
            return (MmapSource.Open(path, o.QueueDepth), "mmap (page cache)");
        }
        var reader = DirectReader.Open(path, new DirectReaderOptions { QueueDepth = o.QueueDepth, Notices = o.Notices });
        return (reader, reader.ReadPath == ReadPath.Direct ? "O_DIRECT" : "buffered pread (" + reader.FallbackReason + ")");
    }

    /// <summary>Compute thread, before layer <paramref name="layer"/> runs: blocks until its weights are in its slot
    /// (returns at once for a resident layer). Throws the streamer's fault as one <see cref="StreamingException"/> line.</summary>
    public void WaitLoaded(int layer)
    {
        int j = _streamIndex[layer];
        if (j < 0) return;
        if (j == 0) _passes++;
        int k = _stream[j].Slot;
        long need = ++_computeUses[k];
        if (Volatile.Read(ref _loads[k]) >= need && _fault == null) return;

        long start = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        while (!spin.NextSpinWillYield && Volatile.Read(ref _loads[k]) < need && _fault == null) spin.SpinOnce();
        lock (_gate)
            while (Volatile.Read(ref _loads[k]) < need && _fault == null) Monitor.Wait(_gate);
        _waitTicks += Stopwatch.GetTimestamp() - start;
        if (_fault is { } fault) throw new StreamingException(fault);
    }

    /// <summary>Compute thread, after layer <paramref name="layer"/> ran: its slot may take the next layer that uses it.</summary>
    public void Release(int layer)
    {
        int j = _streamIndex[layer];
        if (j < 0) return;
        lock (_gate)
        {
            _releases[_stream[j].Slot]++;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>A snapshot of the counters (any thread).</summary>
    public StreamCounters Counters => new(Volatile.Read(ref _passes),
        Volatile.Read(ref _copiedPinned), Volatile.Read(ref _copyTicksPinned), Volatile.Read(ref _copiedNvme),
        Volatile.Read(ref _copyTicksNvme), Volatile.Read(ref _readBytes), Volatile.Read(ref _readBusyTicks),
        Volatile.Read(ref _waitTicks));

    private void CopyLoop()
    {
        int n = _stream.Length;
        var copyUses = new long[_slots];            // occupants begun per slot (this thread only)
        var stagingOwner = new long[_slots];        // stream position whose image a staging slot holds, −1 free
        var submittedAt = new long[_slots];
        Array.Fill(stagingOwner, -1L);
        long nextRead = 0, readEnd = 0;             // next position to submit; end of the last read interval
        try
        {
            for (long g = 0; !_stopping; g++)       // g: position in the endless cyclic stream
            {
                // Reads ahead, in order, while their staging slot is free (at most one pass ahead).
                while (nextRead < g + n)
                {
                    ref readonly var ahead = ref _stream[nextRead % n];
                    if (ahead.Tier == Tier.C)
                    {
                        if (stagingOwner[ahead.Slot] >= 0) break;
                        stagingOwner[ahead.Slot] = nextRead;
                        submittedAt[ahead.Slot] = Stopwatch.GetTimestamp();
                        _source!.Submit(_reads[ahead.Slot], ahead.Commands, _staging);
                    }
                    nextRead++;
                }

                ref readonly var layer = ref _stream[g % n];
                int k = layer.Slot;
                lock (_gate)
                    while (_releases[k] < copyUses[k] && !_stopping) Monitor.Wait(_gate);
                if (_stopping) return;

                long start = Stopwatch.GetTimestamp();
                if (layer.Tier == Tier.B)
                {
                    Buffer.MemoryCopy(layer.Source, layer.Destination, layer.Size, layer.Size);
                    _copyTicksPinned += Stopwatch.GetTimestamp() - start;
                    _copiedPinned += layer.Size;
                }
                else
                {
                    WaitForRead(_reads[k]);
                    long done = _reads[k].CompletedAt;
                    _readBusyTicks += Math.Max(0, done - Math.Max(submittedAt[k], readEnd));
                    readEnd = Math.Max(readEnd, done);
                    _readBytes += layer.Size;
                    start = Stopwatch.GetTimestamp();
                    Buffer.MemoryCopy(layer.Source, layer.Destination, layer.Size, layer.Size);
                    _copyTicksNvme += Stopwatch.GetTimestamp() - start;
                    _copiedNvme += layer.Size;
                    stagingOwner[k] = -1;
                }
                copyUses[k]++;
                lock (_gate)
                {
                    _loads[k]++;
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (Exception e)
        {
            string message = e is StreamingException ? e.Message : $"copy thread: {e.Message}";
            lock (_gate)
            {
                _fault = message.ReplaceLineEndings(" ");
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Waits for a read; on failure, says first whether the source changed under the plan (the likelier
    /// cause of a short read), else the read's own error.</summary>
    private void WaitForRead(ReadBatch batch)
    {
        try { batch.Wait(); }
        catch (StreamingException)
        {
            _source!.CheckMatchesPlan(_source.Length);
            throw;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        _copyThread.Join();
        _source?.Dispose();
        foreach (var r in _reads) r.Dispose();
    }
}

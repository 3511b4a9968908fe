using System.Diagnostics;
using Engine.Plans.PlanFile;
using Engine.Runtime.Streaming;
using static Engine.Runtime.Cuda.CudaDriver;

namespace Engine.Runtime.Cuda;

/// <summary>The CUDA backend's streaming engine: streamed layers (tiers B and C) copied into the plan's slots in the
/// device arena on a second, transfer stream, ordered against the compute stream by events (docs/streaming.md
/// "What the CUDA backend reuses"; docs/cuda-backend.md "Streamed layers"):
/// <list type="bullet">
/// <item>per stream index j, <c>loaded[j]</c>: recorded on the transfer stream after j's copy into its slot; the
/// compute stream waits for it at the plan's wait instruction, before j's first launch;</item>
/// <item>per slot k, <c>released[k]</c>: recorded on the compute stream after the last launch of the layer in slot k;
/// the transfer stream waits for it before the next copy into slot k (the plan's prefetch instruction);</item>
/// <item>tier C, per staging slot k, <c>staged[k]</c>: recorded on the transfer stream after the copy out of
/// staging slot k; the host waits for it (cuEventSynchronize) before reading the next layer into that staging slot.</item>
/// </list>
/// The host issues these in <see cref="StreamSchedule"/> order, which was checked at load: a cuStreamWaitEvent waits
/// for the most recent record issued before it, so that order is the whole correctness argument. Tier-C reads are
/// done by the host at the layer's prefetch (<see cref="StagingSource"/>: O_DIRECT at queue depth 32): the launches of
/// the layers before it are already queued, so the read overlaps their compute; reads follow each other back to back.
/// Everything (events, staging, read batches, commands) is allocated here once; a step allocates nothing.</summary>
public sealed unsafe class CudaStreamer : IStreamingLinks, IDisposable
{
    private readonly struct Streamed
    {
        public required Tier Tier { get; init; }
        public required int Slot { get; init; }
        public required long Size { get; init; }
        public required ulong Destination { get; init; }              // its slot in the device arena
        public required byte* Source { get; init; }                   // B: its image in the pinned arena; C: its staging slot
        public ReadOnlyMemory<ReadCommand> Commands { get; init; }     // C: its I/O list (offsets in the staging arena)
    }

    private readonly CudaContext _cu;
    private readonly Streamed[] _stream;
    private readonly IntPtr _transfer;
    private readonly IntPtr[] _copyStart, _loaded;   // [stream index], timing events
    private readonly IntPtr[] _released, _staged;    // [slot]
    private readonly bool[] _copiedThisStep;         // [stream index] copies whose time is collected after the step
    private readonly byte* _staging;
    private readonly StagingSource? _source;
    private readonly ReadBatch[] _reads;             // [slot] one per staging slot, reused
    private string? _fault;

    private long _passes, _copiedPinned, _copyTicksPinned, _copiedNvme, _copyTicksNvme, _readBytes, _readBusyTicks;

    public long PassBytesPinned { get; }
    public long PassBytesNvme { get; }
    public string? ReadPathDescription { get; }
    public int SlotCount { get; }
    public int StreamedLayerCount => _stream.Length;
    public string Copier => "transfer stream";
    public bool MeasuresComputeWait => false;

    public StreamCounters Counters => new(_passes, _copiedPinned, _copyTicksPinned, _copiedNvme, _copyTicksNvme,
        _readBytes, _readBusyTicks, 0);

    private CudaStreamer(CudaContext cu, Plan plan, ulong deviceArena, byte* pinnedArena, string modelPath)
    {
        _cu = cu;
        SlotCount = plan.Inputs.Slots;
        var streamed = plan.Layers.Select((p, l) => (p, l)).Where(x => x.p.Tier != Tier.A).ToList();
        _stream = new Streamed[streamed.Count];
        _copyStart = new IntPtr[streamed.Count];
        _loaded = new IntPtr[streamed.Count];
        _copiedThisStep = new bool[streamed.Count];
        _released = new IntPtr[SlotCount];
        _staged = new IntPtr[SlotCount];
        _reads = new ReadBatch[SlotCount];
        try
        {
            long stagingSize = plan.Arenas[Arenas.Staging].Size;
            if (stagingSize > 0) _staging = (byte*)cu.AllocPinned((ulong)stagingSize);   // page-aligned: O_DIRECT-safe
            int maxBlocks = Math.Max(1, plan.Inputs.NvmeMaxTransfer / ReadCommand.BlockSize);
            foreach (var (p, l) in streamed)
            {
                ReadCommand[] commands = p.Tier == Tier.C ? LayerStreamer.ToReadCommands(plan, p, l) : [];
                if (p.Tier == Tier.C) ReadCommand.Validate(commands, stagingSize, maxBlocks, $"layer {l}");
                _stream[p.StreamIndex] = new Streamed
                {
                    Tier = p.Tier, Slot = p.Slot, Size = p.ImageSize,
                    Destination = deviceArena + (ulong)p.SlotOffset,
                    Source = p.Tier == Tier.B ? pinnedArena + p.HomeOffset : _staging + p.HomeOffset,
                    Commands = commands,
                };
            }
            PassBytesPinned = _stream.Where(s => s.Tier == Tier.B).Sum(s => s.Size);
            PassBytesNvme = _stream.Where(s => s.Tier == Tier.C).Sum(s => s.Size);
            _transfer = cu.CreateStream();
            for (int j = 0; j < _stream.Length; j++) { _copyStart[j] = cu.CreateEvent(); _loaded[j] = cu.CreateEvent(); }
            for (int k = 0; k < SlotCount; k++)
            {
                _released[k] = cu.CreateEvent(timing: false);
                _staged[k] = cu.CreateEvent(timing: false);
                _reads[k] = new ReadBatch();
            }
            if (PassBytesNvme > 0)
            {
                (_source, ReadPathDescription) = LayerStreamer.OpenSource(plan, modelPath, new StreamingOptions());
                var inputs = plan.Inputs;
                long baseBytes = inputs.NvmeMode == NvmeMode.Device ? inputs.LbaBase * inputs.NvmeBlockSize : 0;
                _source.CheckMatchesPlan(baseBytes + plan.Fingerprints.ModelFileSize);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The streaming engine of <paramref name="plan"/> over the device arena at <paramref name="deviceArena"/>
    /// and the pinned arena at <paramref name="pinnedArena"/> (its tier-B images already filled); null when every
    /// layer is resident.</summary>
    public static CudaStreamer? Create(CudaContext cu, Plan plan, ulong deviceArena, byte* pinnedArena, string modelPath) =>
        plan.Layers.Any(l => l.Tier != Tier.A) ? new CudaStreamer(cu, plan, deviceArena, pinnedArena, modelPath) : null;

    /// <summary>The plan's prefetch of stream index <paramref name="j"/>: tier C is read into its staging slot first
    /// (the host waits for the previous copy out of that staging slot, then for the read); then on the transfer stream:
    /// wait for the slot's release, copy, record 'loaded'.</summary>
    public void Prefetch(int j)
    {
        if (_fault != null) throw new StreamingException(_fault);
        ref readonly var s = ref _stream[j];
        int k = s.Slot;
        if (s.Tier == Tier.C)
        {
            Check(cuEventSynchronize(_staged[k]), "cuEventSynchronize(staging slot free)");
            long submitted = Stopwatch.GetTimestamp();
            try
            {
                _source!.Submit(_reads[k], s.Commands, _staging);
                try { _reads[k].Wait(); }
                catch (StreamingException)
                {
                    _source.CheckMatchesPlan(_source.Length);   // a file changed under the plan says so first
                    throw;
                }
            }
            catch (StreamingException e)
            {
                _fault = e.Message.ReplaceLineEndings(" ");
                throw;
            }
            _readBusyTicks += Math.Max(0, _reads[k].CompletedAt - submitted);
            _readBytes += s.Size;
        }
        Check(cuStreamWaitEvent(_transfer, _released[k], 0), "cuStreamWaitEvent(slot released)");
        Check(cuEventRecord(_copyStart[j], _transfer), "cuEventRecord(copy start)");
        Check(cuMemcpyHtoDAsync(s.Destination, s.Source, (ulong)s.Size, _transfer), "cuMemcpyHtoDAsync(streamed layer)");
        Check(cuEventRecord(_loaded[j], _transfer), "cuEventRecord(layer loaded)");
        if (s.Tier == Tier.C) Check(cuEventRecord(_staged[k], _transfer), "cuEventRecord(staging slot free)");
        _copiedThisStep[j] = true;
    }

    /// <summary>The plan's wait: the compute stream waits until stream index <paramref name="j"/> is in its slot.</summary>
    public void Wait(int j, IntPtr compute)
    {
        if (j == 0) _passes++;
        Check(cuStreamWaitEvent(compute, _loaded[j], 0), "cuStreamWaitEvent(layer loaded)");
    }

    /// <summary>After the last launch of stream index <paramref name="j"/>: its slot may take the next occupant.</summary>
    public void Release(int j, IntPtr compute) =>
        Check(cuEventRecord(_released[_stream[j].Slot], compute), "cuEventRecord(slot released)");

    /// <summary>After the compute stream of a step synchronized (so every copy it waited for is done): adds the device
    /// time of each copy (its start and loaded events) to the counters.</summary>
    public void CollectCopyTimes()
    {
        for (int j = 0; j < _stream.Length; j++)
        {
            if (!_copiedThisStep[j]) continue;
            _copiedThisStep[j] = false;
            float ms;
            if (cuEventElapsedTime(&ms, _copyStart[j], _loaded[j]) != CuResult.Success) continue;   // not complete: not counted
            long ticks = (long)(ms * 1e-3 * Stopwatch.Frequency);
            if (_stream[j].Tier == Tier.B) { _copiedPinned += _stream[j].Size; _copyTicksPinned += ticks; }
            else { _copiedNvme += _stream[j].Size; _copyTicksNvme += ticks; }
        }
    }

    public void Dispose()
    {
        if (_transfer != IntPtr.Zero) cuStreamSynchronize(_transfer);
        foreach (var e in _copyStart.Concat(_loaded).Concat(_released).Concat(_staged))
            if (e != IntPtr.Zero) cuEventDestroy(e);
        if (_transfer != IntPtr.Zero) cuStreamDestroy(_transfer);
        _source?.Dispose();
        foreach (var r in _reads) r?.Dispose();
        if (_staging != null) _cu.FreePinned(_staging);
    }
}

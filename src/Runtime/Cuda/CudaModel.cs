using System.Runtime.InteropServices;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cpu;
using Engine.Runtime.Generated;
using Engine.Runtime.Streaming;
using LaunchShape = Engine.Runtime.Generated.LaunchShape;
using Microsoft.Win32.SafeHandles;
using static Engine.Runtime.Cuda.CudaDriver;

namespace Engine.Runtime.Cuda;

/// <summary>A plan replayed on one GPU through the driver API. At load: the plan's PTX modules, its arenas
/// (device: cuMemAlloc; pinned: mapped cuMemHostAlloc, read in place by the embedding kernel), the tier-A and
/// host-resident weights copied from the GGUF to their offsets, and one packed argument block per launch
/// (<see cref="ArgumentBlocks"/>). A step copies token ids and positions into the plan's input buffers, runs the
/// launches in order on one stream and copies the logits out. The decode step (one token) is captured once as a
/// CUDA graph and replayed: everything that changes per token lives in device buffers the kernels read (positions
/// drive rope, the KV-cache row and the attention length), so the graph needs no update. Steps of several tokens
/// (prompts, up to the plan's n_batch) patch the n_tokens arguments and re-derive grids with the launchers' rules; a
/// launch with a batch kernel (the tiled GEMM of the matmuls) runs it instead from <see cref="BatchMinTokens"/> tokens,
/// and one-token steps below <see cref="ShortAttentionPositions"/> (by default every one) run the launches' short kernels (the
/// attention's one-token kernel): two decode graphs, the step's position picks one.
/// Streamed layers (tiers B, C) go through the plan's slots on a transfer stream ordered by events
/// (<see cref="CudaStreamer"/>); the host replays the plan's instruction stream (<see cref="StreamSchedule"/>: launch,
/// prefetch, wait, and a release after each streamed layer's last launch) and such a plan runs without the graph.
/// Greedy decoding (<see cref="DecodeGreedy"/>) replays a second graph, the decode step without its copies: the plan's
/// argmax op writes each step's next position into the input buffer the next step reads, and its token into one of
/// two words of mapped host memory, which the next step's embedding reads in place and the host reads as the step
/// completes (no copy between steps); the host keeps two steps queued.</summary>
public sealed unsafe class CudaModel : ILanguageModel, IGreedyDecoder, IDisposable
{
    public ModelConfig Config { get; }
    public int MaxContext { get; }
    public int MaxBatch { get; }
    public string DeviceName => _cu.Name;

    private readonly CudaContext _cu;
    private readonly Plan _plan;
    private readonly List<IntPtr> _modules = new();
    private readonly ulong _device;                 // device arena
    private readonly IntPtr _pinnedHost;            // pinned arena (host view), mapped into the device
    private readonly ulong[] _arenaBase;            // [arena] device address the kernels use
    private readonly IntPtr _stream;
    private readonly Step[] _steps;                 // one pass: launches and the streaming actions, in host order
    private readonly CudaStreamer? _streamer;       // null when every layer is resident

    /// <summary>The streaming engine's links for <c>--benchmark</c>; null when every layer is resident.</summary>
    public IStreamingLinks? Streaming => _streamer;

    // One entry per launch instruction, in order; all native memory, allocated once.
    private readonly int _launchCount;
    private readonly bool[] _skipped;                // [launch] left out by ENGINE_CUDA_SKIP (Skips)
    private readonly Instruction[] _launches;
    private readonly IntPtr[] _functions;
    private readonly IntPtr[] _stepFunctions;        // for the current multi-token step: the batch kernel where chosen
    private readonly IntPtr[] _batchFunctions;       // the batch kernel of each launch (Zero: none)
    private readonly int[] _batchMinTokens;          // steps of at least this many tokens run it (int.MaxValue: none)
    private readonly SplitK.Workspace[] _split;      // the batch kernel's split-k workspace (capacity 0: it never splits)
    private readonly int _gemmSlots;                 // tiled-GEMM groups the GPU runs at once (2 an SM: 128 registers × 256 threads)
    private readonly IntPtr[] _shortFunctions;       // the short kernel of each launch (Zero: none)
    private readonly LaunchShape[] _shortShapes;     // its one-token shape
    private readonly bool _hasShort;
    private readonly LaunchShape[] _oneTokenShapes;  // from the plan (checked against the launchers at load)
    private readonly LaunchShape[] _stepShapes;      // for the current multi-token step
    private readonly byte* _blocks;                  // [launch × Stride] argument blocks
    private readonly nuint* _sizes;                  // [launch] CU_LAUNCH_PARAM_BUFFER_SIZE values
    private readonly void** _extra;                  // [launch × 5] cuLaunchKernel extra arrays
    private int _packedTokens;

    // The epilogue (final norm, lm_head, argmax: the launches after the last layer's) runs over the rows whose logits
    // the step returns, as the CPU backend's does (llama.cpp computes only the rows it outputs, too): a prompt pass
    // that returns the last token's logits runs the lm_head over one row, and a pass that returns none (the earlier
    // batches of a long prompt) skips the epilogue. Argmax keeps the step's block: it reads the step's last row, which
    // the lm_head writes in its place either way.
    private readonly bool[] _epilogue;               // [launch] after the layers
    private readonly bool[] _rowLaunch;              // [launch] an epilogue launch that runs over the returned rows
    private readonly bool _epilogueByRows;           // every epilogue launch is a row launch or argmax (else: all rows)
    private readonly byte* _rowBlocks;               // [launch × Stride] the row launches' blocks (ArgumentBlocks.PackRows)
    private readonly void** _rowExtra;               // [launch × 5] their extra arrays

    /// <summary>Steps of at least this many tokens run a launch's batch kernel (the tensor-core GEMM) instead of its
    /// GEMV. A GEMM pass of up to 64 tokens costs about the same (one 64-token tile column), since split-k
    /// (<see cref="SplitK"/>) ~9–10 ms for an 8B on the H200 where it took ~23 ms before. Measured (8B, H200, GEMV
    /// against GEMM by ENGINE_GEMM_MIN_TOKENS, docs/benchmarks.md "Session 24"): at 8 tokens the GEMM is ahead for
    /// Q8_0 (953 vs 722 tok/s) and Q4_K_M (832 vs 771), behind for Q4_0 (941 vs 995); from 12 tokens ahead for all
    /// three (1.3–1.8×). It was 16 (H100, before split-k: the GEMV won at 8 tokens, 435 vs 271 tok/s).
    /// ENGINE_GEMM_MIN_TOKENS overrides it (0 or less: never), for measuring both.</summary>
    public int BatchMinTokens { get; } = int.TryParse(Environment.GetEnvironmentVariable("ENGINE_GEMM_MIN_TOKENS"), out int m) ? (m <= 0 ? int.MaxValue : m) : 8;

    /// <summary>Steps of at least this many tokens run the attention's batch kernel (the tiled tensor-core attention,
    /// kernels/AttentionTiled.cs) instead of its kernel. Its grid is a group per query head and 64 tokens, so short
    /// steps leave most SMs idle where the kernel's own grid (a group per kv head and token) fills them. Measured on 8B
    /// Q4_K_M (H100, a prompt from position 0, docs/benchmarks.md "Session 18"), the tiled kernel against the kernel's
    /// own: pp32 −5.5 %, pp64 −4.4 %, pp128 −1.6 %, pp256 +2.0 %, pp512 +7.7 %, pp2048 +30 %.
    /// ENGINE_ATTENTION_MIN_TOKENS overrides it (0 or less: never).</summary>
    public int AttentionBatchMinTokens { get; } = int.TryParse(Environment.GetEnvironmentVariable("ENGINE_ATTENTION_MIN_TOKENS"), out int a) ? (a <= 0 ? int.MaxValue : a) : 256;

    /// <summary>One-token steps at positions below this run the launches' short kernels (attention_quant_short: a query
    /// head's context in up to 8 ranges of whole 128-position passes) instead of their kernels; by default every one-token
    /// step does. Since session 14's reduce-scatter passes (docs/benchmarks.md "Session 14") the short kernel is the faster
    /// at every context measured, 8B Q4_K_M decode against the ranged kernel: +7.6 % at 2500 positions, +8.8 % at 4000,
    /// +11 % at 6000, +14 % at 8000, +19 % at 12000, +22 % at 16000 (Q8_0 +8 to +16 % from 6000 on; a 1B shape, head_dim
    /// 64, +12 to +32 % from 2500 on; a 70B shape, eight query heads a kv head, +4 to +14 %), though it reads each K/V
    /// row once a query head and the ranged kernel once for the kv head's query heads (L2 serves the repeats); before it,
    /// the ranged kernel took contexts past 2048. ENGINE_CUDA_SHORT_POSITIONS=N overrides it (0: never), for measuring
    /// both.</summary>
    public int ShortAttentionPositions { get; } = int.TryParse(Environment.GetEnvironmentVariable("ENGINE_CUDA_SHORT_POSITIONS"), out int sp) ? Math.Max(0, sp) : int.MaxValue;

    // Step I/O: pinned host staging and the plan's input/output buffers.
    private readonly int* _hostTokens, _hostPositions;   // [n_batch]
    private readonly float* _hostLogits;                 // [n_batch, n_vocab]
    private readonly ulong _tokensBuffer, _positionsBuffer, _logitsBuffer;
    private readonly IntPtr[] _decodeGraphs = new IntPtr[2];   // [short context ? 1 : 0]
    private readonly IntPtr[] _greedyGraphs = new IntPtr[4];   // [short context ? 2 : 0] + step parity: the decode step
                                                                // without its input and logits copies (GreedyGraph)
    private readonly int _argmaxLaunch;               // the launch of the plan's argmax op (-1: none)
    private readonly int _embedLaunch;                // the other launch that takes the tokens buffer (-1: none)
    private readonly IntPtr _nextHost;                // [2] mapped pinned: the tokens of the two greedy steps in flight
    private readonly ulong _nextDevice;               // the same two words as the kernels address them
    private readonly IntPtr[] _nextReady = new IntPtr[2];   // recorded after each greedy step
    private readonly bool _useGraph;
    private readonly bool[] _pdl;                     // [launch] launched with programmatic dependent launch
    private bool _disposed, _ownsContext;

    private CudaModel(CudaContext cu, Plan plan, string modelPath)
    {
        _cu = cu;
        _plan = plan;
        Config = plan.Config;
        MaxContext = plan.Inputs.Ctx;
        MaxBatch = plan.Inputs.Batch;
        if (ArgumentBlocks.Verify(plan) is { } mismatch) throw new CudaPlanException(mismatch);
        _steps = StreamSchedule.Build(plan);
        // A streamed step forks onto the transfer stream and joins back through events; it is replayed directly,
        // not captured (the graph stays for resident plans).
        _useGraph = Environment.GetEnvironmentVariable("ENGINE_CUDA_GRAPH") != "0" && plan.Layers.All(l => l.Tier == Tier.A);
        // Programmatic dependent launch on Hopper for resident plans (a streamed plan's kernels also wait on transfer
        // events; they keep the plain stream order): see PdlLaunch. ENGINE_CUDA_PDL=0 turns it off, =small keeps it
        // off the matmuls (for comparisons).
        string pdlMode = cu.Sm >= 90 && plan.Layers.All(l => l.Tier == Tier.A) ? Environment.GetEnvironmentVariable("ENGINE_CUDA_PDL") ?? "" : "0";

        // Modules: one per kernel, for this device's architecture.
        string? arch = Engine.Kernels.Ptx.PtxModules.ArchitectureFor(cu.Sm / 10, cu.Sm % 10);
        int sm = arch is null ? 0 : int.Parse(arch.AsSpan(3), System.Globalization.CultureInfo.InvariantCulture);
        var functions = new Dictionary<uint, IntPtr>();
        foreach (var k in plan.Kernels)
        {
            var module = plan.Ptx.FirstOrDefault(m => m.Sm == sm && m.Name == k.Entry)
                ?? throw new CudaPlanException($"the plan has no PTX for {k.Entry} on sm_{cu.Sm} ({cu.Name}): re-run ntc plan --hw auto on this machine");
            var handle = cu.LoadModule(System.Text.Encoding.ASCII.GetString(module.Text));
            _modules.Add(handle);
            functions[k.Id] = cu.GetFunction(handle, KernelTable.All[(int)k.Id].PtxEntry);
        }

        // Arenas.
        var device = plan.Arenas[Arenas.Device];
        _device = cu.Alloc((ulong)device.Size);
        Check(cuMemsetD8(_device, 0, (ulong)Math.Max(device.Size, 1)), "cuMemsetD8");
        var pinned = plan.Arenas[Arenas.Pinned];
        ulong pinnedDevice = 0;
        if (pinned.Size > 0) (_pinnedHost, pinnedDevice) = cu.AllocMapped((ulong)pinned.Size);
        _arenaBase = [_device, pinnedDevice, 0];
        _stream = cu.CreateStream();
        UploadWeights(modelPath);
        _streamer = CudaStreamer.Create(cu, plan, _device, (byte*)_pinnedHost, modelPath);

        // Step buffers.
        PlanBuffer Find(string name, BufferRole role) => plan.Buffers.FirstOrDefault(b => b.Name == name && b.Role == role)
            ?? throw new CudaPlanException($"the plan has no {role} buffer '{name}'");
        _tokensBuffer = _device + (ulong)Find(TokensBuffer, BufferRole.Input).Offset;
        _positionsBuffer = _device + (ulong)Find("positions", BufferRole.Input).Offset;
        _logitsBuffer = _device + (ulong)Find("logits", BufferRole.Output).Offset;
        _hostTokens = (int*)cu.AllocPinned((ulong)MaxBatch * 4);
        _hostPositions = (int*)cu.AllocPinned((ulong)MaxBatch * 4);
        _hostLogits = (float*)cu.AllocPinned((ulong)MaxBatch * (ulong)Config.VocabSize * 4);
        (_nextHost, _nextDevice) = cu.AllocMapped(2 * 4);

        // Launch list.
        _launches = plan.Instructions.Where(i => i.Opcode == Opcode.Launch).ToArray();
        _launchCount = _launches.Length;
        _argmaxLaunch = Array.FindLastIndex(_launches, l => KernelTable.All[(int)l.KernelId].Family == "argmax");
        _embedLaunch = TokensReader(plan, _launches, _argmaxLaunch);
        _skipped = Skips(_launches, Environment.GetEnvironmentVariable(SkipVariable));
        SkippedLaunches = _skipped.Count(x => x);
        _functions = new IntPtr[_launchCount];
        _stepFunctions = new IntPtr[_launchCount];
        _batchFunctions = new IntPtr[_launchCount];
        _batchMinTokens = new int[_launchCount];
        _split = new SplitK.Workspace[_launchCount];
        _gemmSlots = 2 * cu.MultiprocessorCount;
        _shortFunctions = new IntPtr[_launchCount];
        _shortShapes = new LaunchShape[_launchCount];
        _oneTokenShapes = new LaunchShape[_launchCount];
        _stepShapes = new LaunchShape[_launchCount];
        _pdl = new bool[_launchCount];
        int stride = ArgumentBlocks.Stride;
        _blocks = (byte*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, _launchCount) * stride), 16);
        _sizes = (nuint*)NativeMemory.Alloc((nuint)Math.Max(1, _launchCount), (nuint)sizeof(nuint));
        _extra = (void**)NativeMemory.Alloc((nuint)Math.Max(1, _launchCount) * 5, (nuint)sizeof(void*));
        for (int i = 0; i < _launchCount; i++)
        {
            var ins = _launches[i];
            var block = new Span<byte>(_blocks + (long)i * stride, stride);
            ArgumentBlocks.Pack(plan, ins, _arenaBase, 1, block);
            var shape = Launchers.ShapeOf((KernelId)ins.KernelId, block);
            var s = ins.Shape;
            if (shape.GridX != s.GridX || shape.GridY != s.GridY || shape.GridZ != s.GridZ || shape.BlockX != s.BlockX)
                throw new CudaPlanException($"instruction {ins.OpName} (layer {ins.Layer}): the plan's launch shape {s.GridX}x{s.GridY}x{s.GridZ}/{s.BlockX} differs from the launcher's {shape.GridX}x{shape.GridY}x{shape.GridZ}/{shape.BlockX}: re-run ntc plan");
            _oneTokenShapes[i] = GemvBlock(shape, ins.KernelId);
            _functions[i] = functions[ins.KernelId];
            _pdl[i] = PdlLaunch(KernelTable.All[(int)ins.KernelId].Family, pdlMode);
            _stepFunctions[i] = _functions[i];
            if (ins.HasBatchKernel) _batchFunctions[i] = functions[ins.BatchKernelId];
            if (ins.HasBatchKernel) _split[i] = SplitK.WorkspaceOf(plan, ins);
            _batchMinTokens[i] = !ins.HasBatchKernel ? int.MaxValue
                : KernelTable.All[(int)ins.KernelId].Family.StartsWith("attention", StringComparison.Ordinal) ? AttentionBatchMinTokens : BatchMinTokens;
            if (ins.HasShortKernel)
            {
                _shortFunctions[i] = functions[ins.ShortKernelId];
                _shortShapes[i] = Launchers.ShapeOf((KernelId)ins.ShortKernelId, block);
                _hasShort = true;
            }
            _sizes[i] = (nuint)KernelTable.All[(int)ins.KernelId].ArgumentBytes;
            void** x = _extra + 5 * i;
            x[0] = (void*)CU_LAUNCH_PARAM_BUFFER_POINTER; x[1] = _blocks + (long)i * stride;
            x[2] = (void*)CU_LAUNCH_PARAM_BUFFER_SIZE; x[3] = _sizes + i;
            x[4] = (void*)CU_LAUNCH_PARAM_END;
            if (s.SharedBytes > 48 * 1024)
                Check(cuFuncSetAttribute(_functions[i], CuFunctionAttribute.MaxDynamicSharedSizeBytes, (int)s.SharedBytes), "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
        }
        _packedTokens = 1;

        // The epilogue over the returned rows: blocks of its own (the step's blocks stay packed for n tokens).
        _epilogue = new bool[_launchCount];
        _rowLaunch = new bool[_launchCount];
        int firstLayer = Array.FindIndex(_launches, l => l.Layer >= 0);
        _epilogueByRows = firstLayer >= 0;
        for (int i = firstLayer + 1; firstLayer >= 0 && i < _launchCount; i++)
        {
            if (_launches[i].Layer >= 0) continue;
            _epilogue[i] = true;
            _rowLaunch[i] = ArgumentBlocks.CanPackRows(plan, _launches[i], MaxBatch);
            _epilogueByRows &= _rowLaunch[i] || KernelTable.All[(int)_launches[i].KernelId].Family == "argmax";
        }
        _rowBlocks = (byte*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, _launchCount) * stride), 16);
        _rowExtra = (void**)NativeMemory.Alloc((nuint)Math.Max(1, _launchCount) * 5, (nuint)sizeof(void*));
        for (int i = 0; i < _launchCount; i++)
        {
            void** x = _rowExtra + 5 * i;
            x[0] = (void*)CU_LAUNCH_PARAM_BUFFER_POINTER; x[1] = _rowBlocks + (long)i * stride;
            x[2] = (void*)CU_LAUNCH_PARAM_BUFFER_SIZE; x[3] = _sizes + i;
            x[4] = (void*)CU_LAUNCH_PARAM_END;
        }
    }

    /// <summary>Opens the plan on <paramref name="cu"/>; one-line <see cref="CudaPlanException"/> for a plan this
    /// backend cannot run (streamed layers, a cpu plan, another GPU), <see cref="CudaException"/> for driver errors.</summary>
    public static CudaModel Load(CudaContext cu, Plan plan, string modelPath, bool ownsContext = false)
    {
        if (plan.Arenas[Arenas.Device].Kind != ArenaKind.Device)
            throw new CudaPlanException("the plan was made for the cpu backend (no device arena): re-run ntc plan --hw auto on the GPU machine");
        var model = new CudaModel(cu, plan, modelPath);
        model._ownsContext = ownsContext;
        return model;
    }

    private void UploadWeights(string modelPath)
    {
        const int Chunk = 64 << 20;
        byte* staging = (byte*)_cu.AllocPinned(Chunk);
        try
        {
            using SafeFileHandle file = File.OpenHandle(modelPath, FileMode.Open, FileAccess.Read);
            // Tier-B layer images into the pinned arena, whole (the transfer stream copies each as one block); an
            // image's 4 KiB-rounded end may pass the end of the file: those bytes are zero.
            long fileLength = RandomAccess.GetLength(file);
            foreach (var layer in _plan.Layers.Where(l => l.Tier == Tier.B))
            {
                byte* image = (byte*)_pinnedHost + layer.HomeOffset;
                long inFile = Math.Clamp(fileLength - layer.ImageFileOffset, 0, layer.ImageSize);
                for (long done = 0; done < inFile; done += Chunk)
                    ReadExactly(file, new Span<byte>(image + done, (int)Math.Min(Chunk, inFile - done)), layer.ImageFileOffset + done, modelPath);
                if (inFile < layer.ImageSize) NativeMemory.Clear(image + inFile, (nuint)(layer.ImageSize - inFile));
            }
            // Tier A to its device offset, tier H into the pinned arena; tiers B and C are streamed into their slots.
            foreach (var t in _plan.Tensors.Where(t => t.Tier is Tier.A or Tier.H))
            {
                for (long done = 0; done < t.Size; done += Chunk)
                {
                    int n = (int)Math.Min(Chunk, t.Size - done);
                    if (t.Tier == Tier.H)
                    {
                        ReadExactly(file, new Span<byte>((byte*)_pinnedHost + t.HomeOffset + done, n), t.FileOffset + done, modelPath);
                        continue;
                    }
                    ReadExactly(file, new Span<byte>(staging, n), t.FileOffset + done, modelPath);
                    Check(cuMemcpyHtoD(_arenaBase[t.DeviceArena] + (ulong)(t.DeviceOffset + done), staging, (ulong)n), "cuMemcpyHtoD(weights)");
                }
            }
        }
        finally { _cu.FreePinned(staging); }
    }

    private static void ReadExactly(SafeFileHandle file, Span<byte> into, long offset, string path)
    {
        while (into.Length > 0)
        {
            int n = RandomAccess.Read(file, into, offset);
            if (n <= 0) throw new IOException($"{path}: ends before offset {offset} (the plan's tensor data): re-run ntc plan");
            into = into[n..];
            offset += n;
        }
    }

    public void Forward(ReadOnlySpan<int> tokens, int startPos, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int n = tokens.Length, vocab = Config.VocabSize;
        bool all = ForwardArguments.Check(this, tokens, startPos, logits);

        for (int done = 0; done < n; done += MaxBatch)
        {
            // Every pass (a decode token or one prompt batch) runs the streamed layers once: prefill streams each
            // layer once per n_batch tokens.
            int count = Math.Min(MaxBatch, n - done);
            bool last = done + count == n;
            for (int i = 0; i < count; i++) { _hostTokens[i] = tokens[done + i]; _hostPositions[i] = startPos + done + i; }
            // Logits rows to bring back (and the epilogue's rows): every row when all are wanted, else the last pass's
            // last row, else none.
            int firstRow = all ? 0 : last ? count - 1 : 0, rows = all ? count : last ? 1 : 0;
            bool shortContext = count == 1 && ShortContext(startPos + done);
            if (count == 1 && _useGraph) RunDecodeGraph(shortContext);
            else
            {
                Enqueue(count, firstRow, rows, shortContext: shortContext);
                Check(cuStreamSynchronize(_stream), "cuStreamSynchronize");
                _streamer?.CollectCopyTimes();
            }
            if (rows > 0)
            {
                var src = new ReadOnlySpan<float>(_hostLogits + (long)firstRow * vocab, rows * vocab);
                src.CopyTo(all ? logits.Slice(done * vocab, rows * vocab) : logits);
            }
        }
    }

    /// <summary>Whether a one-token step at <paramref name="position"/> runs the short kernels.</summary>
    private bool ShortContext(int position) => _hasShort && position < ShortAttentionPositions;

    /// <summary>Inputs in, every launch, logits rows out: on the compute stream, for a step of n tokens; a streamed
    /// plan's prefetches, waits and releases in between (<see cref="StreamSchedule"/> order). The epilogue runs over
    /// rows firstRow .. firstRow + rows − 1 (<see cref="_rowLaunch"/>; not at all for none), whose logits are copied out
    /// unless <paramref name="copyLogits"/> is false (the greedy graph). Without <paramref name="inputs"/> the step
    /// reads the tokens and positions the device holds (the greedy graph); with <paramref name="shortContext"/>
    /// (one-token steps) launches with a short kernel run it.</summary>
    private void Enqueue(int n, int firstRow, int rows, bool inputs = true, bool shortContext = false, bool copyLogits = true)
    {
        int vocab = Config.VocabSize;
        if (inputs) CopyInputs(n);
        Prepare(n);
        var shapes = n == 1 ? _oneTokenShapes : _stepShapes;
        bool someRows = _epilogueByRows && rows < n;
        if (someRows && rows > 0) PrepareRows(firstRow, rows);
        foreach (var step in _steps)
        {
            switch (step.Kind)
            {
                case StepKind.Prefetch: _streamer!.Prefetch(step.Index); continue;
                case StepKind.Wait: _streamer!.Wait(step.Index, _stream); continue;
                case StepKind.Release: _streamer!.Release(step.Index, _stream); continue;
            }
            int i = step.Index;
            CuResult r;
            uint id;
            if (_skipped[i]) continue;
            if (someRows && _epilogue[i] && rows == 0) continue;
            if (someRows && _rowLaunch[i]) (r, id) = LaunchRows(i, rows);
            else
            {
                var s = shapes[i];
                if (s.IsEmpty) continue;
                bool useShort = shortContext && n == 1 && _shortFunctions[i] != IntPtr.Zero;
                r = useShort ? Launch(i, _shortShapes[i], _shortFunctions[i]) : Launch(i, s, n == 1 ? _functions[i] : _stepFunctions[i]);
                var ins = _launches[i];
                id = useShort ? ins.ShortKernelId : n > 1 && _stepFunctions[i] == _batchFunctions[i] ? ins.BatchKernelId : ins.KernelId;
            }
            if (r != CuResult.Success)
                throw new CudaException($"cuLaunchKernel({KernelTable.All[(int)id].Name}, op {_launches[i].OpName}, layer {_launches[i].Layer})", r);
        }
        if (rows > 0 && copyLogits)
            Check(cuMemcpyDtoHAsync(_hostLogits + (long)firstRow * vocab, _logitsBuffer + (ulong)firstRow * (ulong)vocab * 4, (ulong)rows * (ulong)vocab * 4, _stream), "cuMemcpyDtoHAsync(logits)");
    }

    /// <summary>The row launches' blocks for rows firstRow .. firstRow + rows − 1 of the step.</summary>
    private void PrepareRows(int firstRow, int rows)
    {
        for (int i = 0; i < _launchCount; i++)
            if (_rowLaunch[i])
                ArgumentBlocks.PackRows(_plan, _launches[i], _arenaBase, firstRow, rows, MaxBatch,
                    new Span<byte>(_rowBlocks + (long)i * ArgumentBlocks.Stride, ArgumentBlocks.Stride));
    }

    /// <summary>Launches row launch <paramref name="i"/> over the rows <see cref="PrepareRows"/> packed,
    /// with the kernel <see cref="Prepare"/> would pick for a step of that many tokens.</summary>
    private (CuResult, uint) LaunchRows(int i, int rows)
    {
        var (shape, function, id) = KernelFor(i, rows, new ReadOnlySpan<byte>(_rowBlocks + (long)i * ArgumentBlocks.Stride, ArgumentBlocks.Stride));
        return (Launch(i, shape, function, _rowExtra + 5 * i), id);
    }

    /// <summary>The first n token ids and positions of the pinned staging into the plan's input buffers.</summary>
    private void CopyInputs(int n)
    {
        Check(cuMemcpyHtoDAsync(_tokensBuffer, _hostTokens, (ulong)n * 4, _stream), "cuMemcpyHtoDAsync(tokens)");
        Check(cuMemcpyHtoDAsync(_positionsBuffer, _hostPositions, (ulong)n * 4, _stream), "cuMemcpyHtoDAsync(positions)");
    }

    /// <summary>The measurement knob that leaves launches out of every step: outputs are wrong, the rest of the chain
    /// runs as planned, so a step's time without them can be measured (docs/benchmarks.md "Where a token goes on the
    /// H200").</summary>
    public const string SkipVariable = "ENGINE_CUDA_SKIP";

    /// <summary>How many of the step's launches <see cref="SkipVariable"/> leaves out (0 unless it names some).</summary>
    public int SkippedLaunches { get; }

    /// <summary>Per launch, whether <paramref name="skip"/> (comma-separated kernel families or op names, e.g.
    /// <c>rms_norm,attention</c> or <c>ffn_down</c>) leaves it out: launches of the layers, and the op lm_head by
    /// name; never the argmax, which greedy decoding needs.</summary>
    public static bool[] Skips(IReadOnlyList<Instruction> launches, string? skip)
    {
        var names = (skip ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var skipped = new bool[launches.Count];
        for (int i = 0; i < launches.Count && names.Length > 0; i++)
        {
            var l = launches[i];
            skipped[i] = (l.Layer >= 0 || l.OpName == "lm_head")
                && (names.Contains(l.OpName) || names.Contains(KernelTable.All[(int)l.KernelId].Family));
        }
        return skipped;
    }

    /// <summary>ENGINE_CUDA_GEMV_BLOCK=N (a multiple of 32 up to 1024; for measurements): the GEMV families' groups get
    /// N threads instead of the spec's 128 (their lane loops take any warp count; the grid is unchanged).</summary>
    private static readonly uint s_gemvBlock =
        uint.TryParse(Environment.GetEnvironmentVariable("ENGINE_CUDA_GEMV_BLOCK"), out uint b) && b % 32 == 0 && b is >= 32 and <= 1024 ? b : 0;

    private static LaunchShape GemvBlock(LaunchShape shape, uint kernelId) =>
        s_gemvBlock != 0 && KernelTable.All[(int)kernelId].Family.StartsWith("gemv", StringComparison.Ordinal) ? shape with { BlockX = s_gemvBlock } : shape;

    /// <summary>Whether a launch of <paramref name="family"/> gets programmatic dependent launch (kernels/Pdl.cs): every
    /// launch by default (its launch and scheduling overlap the previous kernel's tail). With the fused launches of
    /// session 5 (9 a layer) the matmuls gain from it too: 8B decode +0 to +3.6 % for Q8_0, Q4_K_M and Q4_0,
    /// 24 interleaved pairs on three H100 machines, all in its favour (in session 2, with 12 launches a layer, the matmuls had lost
    /// 2-4 % with it; docs/benchmarks.md). ENGINE_CUDA_PDL=small keeps it off the matmuls (to compare), =0 off.</summary>
    internal static bool PdlLaunch(string family, string mode) => mode switch
    {
        "0" => false,
        "small" => !family.StartsWith("gemv", StringComparison.Ordinal) && !family.StartsWith("gemm", StringComparison.Ordinal),
        _ => true,
    };

    /// <summary>Launch <paramref name="i"/> (its decode or batch <paramref name="function"/>) on the compute stream, with programmatic dependent launch where
    /// <see cref="PdlLaunch"/> says so; its arguments from the step's block, or <paramref name="extra"/> (a row launch's).</summary>
    private CuResult Launch(int i, LaunchShape s, IntPtr function, void** extra = null)
    {
        uint shared = _launches[i].Shape.SharedBytes;
        if (extra == null) extra = _extra + 5 * i;
        return _pdl[i]
            ? LaunchProgrammatic(function, s.GridX, s.GridY, s.GridZ, s.BlockX, shared, _stream, extra)
            : cuLaunchKernel(function, s.GridX, s.GridY, s.GridZ, s.BlockX, 1, 1, shared, _stream, null, extra);
    }

    /// <summary>Patches the n_tokens arguments of every block for a step of n tokens and derives its grids.</summary>
    private void Prepare(int n)
    {
        if (n != _packedTokens)
        {
            for (int i = 0; i < _launchCount; i++)
            {
                var block = ArgumentsOf(i);
                ArgumentBlocks.PatchTokens(_launches[i], n, block);
                (_stepShapes[i], _stepFunctions[i], _) = KernelFor(i, n, block);
            }
            _packedTokens = n;
        }
    }

    /// <summary>Launch <paramref name="i"/>'s kernel for <paramref name="n"/> tokens with the argument block packed for
    /// them: its batch kernel from <see cref="_batchMinTokens"/> on, else its kernel, and the grid the launcher derives
    /// (the plan's one-token shape for one).</summary>
    private (LaunchShape Shape, IntPtr Function, uint Id) KernelFor(int i, int n, ReadOnlySpan<byte> block)
    {
        var ins = _launches[i];
        if (n >= _batchMinTokens[i])
        {
            var shape = Launchers.ShapeOf((KernelId)ins.BatchKernelId, block);
            var w = _split[i];
            if (w.Capacity > 0) shape = shape with { GridZ = SplitK.Of((long)shape.GridX * shape.GridY, w.Cols, _gemmSlots, w.Capacity) };
            return (shape, _batchFunctions[i], ins.BatchKernelId);
        }
        return (n == 1 ? _oneTokenShapes[i] : GemvBlock(Launchers.ShapeOf((KernelId)ins.KernelId, block), ins.KernelId), _functions[i], ins.KernelId);
    }

    /// <summary>The one-token step as a CUDA graph, captured at the first decode (of a short or a long context) and
    /// replayed after: its copies read the pinned token/position staging and write the pinned logits row at replay
    /// time (always: n_vocab floats, cheaper than a graph without them).</summary>
    private void RunDecodeGraph(bool shortContext)
    {
        int g = shortContext ? 1 : 0;
        if (_decodeGraphs[g] == IntPtr.Zero)
        {
            Prepare(1);
            _decodeGraphs[g] = Capture(() => Enqueue(1, 0, 1, shortContext: shortContext));
        }
        Check(cuGraphLaunch(_decodeGraphs[g], _stream), "cuGraphLaunch");
        Check(cuStreamSynchronize(_stream), "cuStreamSynchronize");
    }

    /// <summary>Resident plans with an argmax op replay the greedy graph (streamed plans run without graphs);
    /// ENGINE_CUDA_GREEDY=0 turns it off (each token's logits out and the host's argmax, for comparisons).</summary>
    public bool CanDecodeGreedy => _useGraph && _argmaxLaunch >= 0 && _embedLaunch >= 0 && s_greedy;

    private static readonly bool s_greedy = Environment.GetEnvironmentVariable("ENGINE_CUDA_GREEDY") != "0";

    public int DecodeGreedy(int token, int startPos, int maxSteps, Func<int, bool> onToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!CanDecodeGreedy) throw new InvalidOperationException("this plan has no greedy decode on the device (a streamed plan, or a plan without the argmax op)");
        ForwardArguments.CheckGreedy(this, token, startPos, maxSteps);
        if (maxSteps == 0) return 0;
        if (_nextReady[0] == IntPtr.Zero)
        {
            _nextReady[0] = _cu.CreateEvent(timing: false);
            _nextReady[1] = _cu.CreateEvent(timing: false);
        }
        // Step s runs at position startPos + s (the argmax advances it on the device): the graphs of its context length.
        for (int g = 0; g < 2; g++)
            if (_greedyGraphs[2 * g] == IntPtr.Zero && (g == 1 ? ShortContext(startPos) : !ShortContext(startPos + maxSteps - 1)))
            {
                _greedyGraphs[2 * g] = GreedyGraph(g == 1, 0);
                _greedyGraphs[2 * g + 1] = GreedyGraph(g == 1, 1);
            }
        // Step s (parity p = s % 2) reads its token from word 1 − p and writes the next into word p: the first step's
        // token goes into word 1 (nothing runs on the stream here: every call ends synchronized).
        Volatile.Write(ref ((int*)_nextHost)[1], token);
        Interlocked.MemoryBarrier();
        _hostPositions[0] = startPos;
        CopyInputs(1);
        // Word p is written again by step s + 2, which is queued only after step s's token was read. So two steps are
        // always in flight, and the GPU never waits for the host between tokens.
        int launched = 0, delivered = 0;
        try
        {
            while (launched < Math.Min(2, maxSteps)) QueueGreedyStep(launched++, startPos);
            while (delivered < launched)
            {
                int slot = delivered & 1;
                Check(cuEventSynchronize(_nextReady[slot]), "cuEventSynchronize(greedy step)");
                int next = Volatile.Read(ref ((int*)_nextHost)[slot]);
                delivered++;
                if (launched < maxSteps) QueueGreedyStep(launched++, startPos);
                if (!onToken(next)) break;
            }
        }
        finally { Check(cuStreamSynchronize(_stream), "cuStreamSynchronize"); }
        return delivered;
    }

    private void QueueGreedyStep(int step, int startPos)
    {
        int slot = step & 1;
        Check(cuGraphLaunch(_greedyGraphs[(ShortContext(startPos + step) ? 2 : 0) + slot], _stream), "cuGraphLaunch(greedy)");
        Check(cuEventRecord(_nextReady[slot], _stream), "cuEventRecord(greedy step)");
    }

    /// <summary>The greedy graph of a step of parity <paramref name="parity"/>: the one-token step without its input and
    /// logits copies, whose embedding reads the token from mapped word 1 − parity and whose argmax writes the next one
    /// into word parity (the two launches' blocks are repointed for the capture and packed back after it).</summary>
    private IntPtr GreedyGraph(bool shortContext, int parity)
    {
        Prepare(1);
        RepointTokens(_embedLaunch, _nextDevice + 4 * (ulong)(1 - parity));
        RepointTokens(_argmaxLaunch, _nextDevice + 4 * (ulong)parity);
        try { return Capture(() => Enqueue(1, 0, 1, inputs: false, shortContext: shortContext, copyLogits: false)); }
        finally
        {
            ArgumentBlocks.Pack(_plan, _launches[_embedLaunch], _arenaBase, 1, ArgumentsOf(_embedLaunch));
            ArgumentBlocks.Pack(_plan, _launches[_argmaxLaunch], _arenaBase, 1, ArgumentsOf(_argmaxLaunch));
        }
    }

    /// <summary>Points launch <paramref name="i"/>'s view of the plan's tokens buffer at one word of mapped host memory.</summary>
    private void RepointTokens(int i, ulong address) =>
        ArgumentBlocks.Repoint(_plan, _launches[i], TokensBuffer, address, 1, ArgumentsOf(i));

    /// <summary>Launch <paramref name="i"/>'s packed argument block.</summary>
    private Span<byte> ArgumentsOf(int i) => new(_blocks + (long)i * ArgumentBlocks.Stride, ArgumentBlocks.Stride);

    /// <summary>The plan's input buffer of token ids (llama.graph's tensor).</summary>
    private const string TokensBuffer = "tokens";

    /// <summary>The launch before the argmax that takes the plan's tokens buffer (the embedding), which the greedy
    /// graphs repoint with the argmax's; -1 where there is none or more than one.</summary>
    public static int TokensReader(Plan plan, IReadOnlyList<Instruction> launches, int argmax)
    {
        int found = -1;
        for (int i = 0; i < launches.Count; i++)
            if (i != argmax && ArgumentBlocks.TakesBuffer(plan, launches[i], TokensBuffer))
            {
                if (found >= 0) return -1;
                found = i;
            }
        return found;
    }

    /// <summary>The launches <paramref name="enqueue"/> issues on the compute stream, captured as an instantiated graph.</summary>
    private IntPtr Capture(Action enqueue)
    {
        Check(cuStreamSynchronize(_stream), "cuStreamSynchronize");
        Check(cuStreamBeginCapture(_stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
        IntPtr graph;
        try { enqueue(); }
        finally { Check(cuStreamEndCapture(_stream, &graph), "cuStreamEndCapture"); }
        IntPtr exec;
        Check(cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags");
        Check(cuGraphDestroy(graph), "cuGraphDestroy");
        return exec;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        cuCtxSynchronize();
        foreach (var g in _decodeGraphs.Concat(_greedyGraphs))
            if (g != IntPtr.Zero) cuGraphExecDestroy(g);
        foreach (var e in _nextReady) if (e != IntPtr.Zero) cuEventDestroy(e);
        _streamer?.Dispose();
        foreach (var m in _modules) cuModuleUnload(m);
        cuStreamDestroy(_stream);
        _cu.Free(_device);
        if (_pinnedHost != IntPtr.Zero) _cu.FreePinned((void*)_pinnedHost);
        _cu.FreePinned(_hostTokens); _cu.FreePinned(_hostPositions); _cu.FreePinned(_hostLogits); _cu.FreePinned((void*)_nextHost);
        NativeMemory.AlignedFree(_blocks); NativeMemory.Free(_sizes); NativeMemory.Free(_extra);
        NativeMemory.AlignedFree(_rowBlocks); NativeMemory.Free(_rowExtra);
        if (_ownsContext) _cu.Dispose();
    }
}

/// <summary>A plan the CUDA backend cannot run here; the message is one line saying why and what to do.</summary>
public sealed class CudaPlanException(string message) : Exception(message);

using System.Runtime.InteropServices;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cuda;
using Engine.Runtime.Generated;

namespace Engine.Runtime.Cpu;

/// <summary>The plan's instruction stream translated once, at load, for the CPU backend (docs/cpu-backend.md
/// "Replaying the plan"): the host workspace laid out by the plan's buffer table (every input, activation, output and
/// KV-cache buffer of the device arena at its plan offset, in one allocation), and one <see cref="CpuStep"/> per launch
/// with its weights bound through <see cref="CpuWeights"/>, its views resolved to host pointers and its scalars read.
/// Load-time rewrites, each exact: consecutive gemv launches that share an input become one step (Q, K, V: one pool
/// pass, one activation quantization); quantize launches, and rms_norm's quantized output, are folded into the next
/// matmul step, because the CPU matmul quantizes its input itself (<see cref="MatMul"/>); the streamer's waits come
/// from the plan and a release follows each streamed layer's last launch (<see cref="StreamSchedule"/>). Everything
/// the token loop trusts is checked here: kernel ids and argument kinds, shapes of weights against the launch's
/// scalars and the model, and that every view holds n_batch tokens; a defect is one <see cref="PlanException"/> line
/// naming the instruction.</summary>
public sealed unsafe class CpuProgram : IDisposable
{
    public CpuStep[] Steps { get; }
    /// <summary>Tokens one pass holds: the plan's n_batch.</summary>
    public int Batch { get; }
    /// <summary>Positions the KV cache holds: the plan's n_ctx.</summary>
    public int Context { get; }
    public int* Tokens { get; }          // [n_batch] the plan's tokens input
    public int* Positions { get; }       // [n_batch] the plan's positions input
    public float* Logits { get; }        // [n_batch, n_vocab] the plan's logits output
    /// <summary>Widest matmul input (columns) and widest output of a fused matmul (the CPU's private scratch rows).</summary>
    public int MaxMatMulColumns { get; }
    public int MaxScratchRows { get; }
    /// <summary>The rope table's parameters, from the plan's rope launches (all must agree); null without rope.</summary>
    public (float FreqBase, float FreqScale, float[]? FreqFactors)? Rope { get; }

    private byte* _workspace;

    private CpuProgram(CpuStep[] steps, int batch, int context, byte* workspace, int* tokens, int* positions, float* logits,
        int maxColumns, int maxScratchRows, (float, float, float[]?)? rope)
    {
        (Steps, Batch, Context) = (steps, batch, context);
        _workspace = workspace;
        Tokens = tokens;
        Positions = positions;
        Logits = logits;
        (MaxMatMulColumns, MaxScratchRows, Rope) = (maxColumns, maxScratchRows, rope);
    }

    /// <summary>The steps as tests and logs see them.</summary>
    public IReadOnlyList<CpuStepInfo> Describe() =>
        Steps.Select(s => new CpuStepInfo(s.Kind, s.Layer, s.Instruction, s.Launches, s.Epilogue, s.F32Activations)).ToArray();

    /// <summary>Translates <paramref name="plan"/> over <paramref name="weights"/> (bound through the plan's tensor
    /// table). With a <paramref name="streamed"/> engine the plan's waits and the releases become steps; without one
    /// (every weight read in place from the map) they are left out.</summary>
    public static CpuProgram Build(Plan plan, CpuWeights weights, bool streamed)
    {
        var c = plan.Config;
        int batch = plan.Inputs.Batch, ctx = plan.Inputs.Ctx;
        if (batch < 1 || ctx < 1) throw new PlanException($"plan inputs: n_batch {batch} and n_ctx {ctx} must be positive");
        if (ArgumentBlocks.Verify(plan) is { } mismatch) throw new PlanException(mismatch);

        // The workspace: the device arena's buffers the kernels read and write, at their plan offsets.
        var hosted = plan.Buffers.Where(b => b.Arena == Arenas.Device && b.Role is BufferRole.Input or BufferRole.Activation
            or BufferRole.Output or BufferRole.KvCache).ToList();
        long size = hosted.Count == 0 ? 0 : hosted.Max(b => b.Offset + b.Size);
        byte* workspace = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(size, 1), 64);
        NativeMemory.Clear(workspace, (nuint)Math.Max(size, 1));
        var normCopies = new Dictionary<string, nint>(StringComparer.Ordinal);
        try
        {
            return Translate(plan, weights, streamed, c, batch, ctx, workspace, normCopies);
        }
        catch
        {
            foreach (var p in normCopies.Values) NativeBuffers.Free((void*)p);
            NativeMemory.AlignedFree(workspace);
            throw;
        }
    }

    private static CpuProgram Translate(Plan plan, CpuWeights weights, bool streamed, ModelConfig c, int batch, int ctx, byte* workspace,
        Dictionary<string, nint> normCopies)
    {
        PlanBuffer Named(string name, BufferRole role) => plan.Buffers.FirstOrDefault(b => b.Name == name && b.Role == role)
            ?? throw new PlanException($"the plan has no {role} buffer '{name}'");
        byte* Host(PlanBuffer b, string what, long bytes)
        {
            if (b.Arena != Arenas.Device || b.Role is not (BufferRole.Input or BufferRole.Activation or BufferRole.Output or BufferRole.KvCache))
                throw new PlanException($"{what}: buffer '{b.Name}' ({b.Role}, arena {b.Arena}) is not a workspace buffer of the device arena");
            if (b.Size < bytes) throw new PlanException($"{what}: buffer '{b.Name}' holds {b.Size} bytes, needs {bytes}");
            return workspace + b.Offset;
        }
        var tokensBuffer = Named("tokens", BufferRole.Input);
        var positionsBuffer = Named("positions", BufferRole.Input);
        var logitsBuffer = Named("logits", BufferRole.Output);
        int* tokens = (int*)Host(tokensBuffer, "tokens", 4L * batch);
        int* positions = (int*)Host(positionsBuffer, "positions", 4L * batch);
        float* logits = (float*)Host(logitsBuffer, "logits", 4L * batch * c.VocabSize);

        Step[] schedule;
        try { schedule = StreamSchedule.Build(plan); }
        catch (CudaPlanException e) { throw new PlanException(e.Message); }
        var launches = new List<int>();
        for (int i = 0; i < plan.Instructions.Count; i++)
            if (plan.Instructions[i].Opcode == Opcode.Launch) launches.Add(i);
        var layerOfStream = new int[plan.Layers.Count];
        for (int l = 0; l < plan.Layers.Count; l++)
            if (plan.Layers[l].StreamIndex >= 0 && plan.Layers[l].StreamIndex < layerOfStream.Length) layerOfStream[plan.Layers[l].StreamIndex] = l;

        var steps = new List<CpuStep>();
        int folded = 0, firstFolded = -1, maxColumns = 1, maxScratch = 1;
        bool inLayers = false;
        (float, float, float[]?)? rope = null;
        foreach (var s in schedule)
        {
            if (s.Kind is StepKind.Wait or StepKind.Release)
            {
                if (streamed)
                    steps.Add(new CpuStep { Kind = s.Kind == StepKind.Wait ? CpuStepKind.Wait : CpuStepKind.Release, Layer = layerOfStream[s.Index], Instruction = -1 });
                continue;
            }
            if (s.Kind == StepKind.Prefetch) continue;   // the streamer's copy thread runs ahead in this order by itself
            int index = launches[s.Index];
            var ins = plan.Instructions[index];
            var entry = KernelTable.All[(int)ins.KernelId];
            string where = $"instruction {index} ({ins.OpName}, layer {ins.Layer}, {entry.Name})";
            if (ins.Layer >= c.LayerCount) throw new PlanException($"{where}: layer {ins.Layer} ≥ n_layer {c.LayerCount}");
            if (ins.Layer >= 0) inLayers = true;

            KernelArg Arg(string name)
            {
                for (int j = 0; j < entry.Params.Count; j++)
                    if (entry.Params[j].Name == name) return ins.Arguments[j];
                throw new PlanException($"{where}: {entry.Name} has no argument {name}");
            }
            int I32(string name)
            {
                var a = Arg(name);
                if (a.Kind != ArgKind.I32) throw new PlanException($"{where}: argument {name} is {a.Kind}, the cpu backend needs a constant");
                return (int)a.Value;
            }
            int PerToken(string name)
            {
                var a = Arg(name);
                if (a.Kind != ArgKind.Tokens || a.Value < 1 || a.Value > int.MaxValue)
                    throw new PlanException($"{where}: argument {name} is {a.Kind} {a.Value}, expected a positive multiple of n_tokens");
                return (int)a.Value;
            }
            float F32(string name) => BitConverter.Int32BitsToSingle((int)Arg(name).Value);
            void Equal(string what, long value, long expected)
            {
                if (value != expected) throw new PlanException($"{where}: {what} is {value}, expected {expected}");
            }
            PlanBuffer Buffer(string name)
            {
                var a = Arg(name);
                if (a.Kind != ArgKind.Buffer || a.Value < 0 || a.Value >= plan.Buffers.Count)
                    throw new PlanException($"{where}: argument {name} is {a.Kind} {a.Value}, expected a buffer");
                return plan.Buffers[(int)a.Value];
            }
            float* Floats(string name, long perToken) => (float*)Host(Buffer(name), $"{where}: argument {name}", 4 * perToken * batch);
            int* Ints(string name) => (int*)Host(Buffer(name), $"{where}: argument {name}", 4L * batch);
            Half* Cache(string name) => (Half*)Host(Buffer(name), $"{where}: argument {name}", 2L * ctx * c.KvDim);
            string? TensorName(string name)
            {
                var a = Arg(name);
                if (a.Kind == ArgKind.None) return null;
                if (a.Kind != ArgKind.Tensor || a.Value < 0 || a.Value >= plan.Tensors.Count)
                    throw new PlanException($"{where}: argument {name} is {a.Kind} {a.Value}, expected a tensor");
                return plan.Tensors[(int)a.Value].Name;
            }
            WeightMatrix Matrix(string name) =>
                TensorName(name) is { } t && weights.Matrices.TryGetValue(t, out var m) ? m
                    : throw new PlanException($"{where}: argument {name} is not a weight matrix the cpu backend bound");
            float* Vector(string name, int length)
            {
                string t = TensorName(name) ?? throw new PlanException($"{where}: argument {name} is empty");
                if (!weights.Vectors.TryGetValue(t, out var v)) throw new PlanException($"{where}: argument {name} ({t}) is not a vector the cpu backend bound");
                Equal($"length of {t}", v.Length, length);
                if (!normCopies.TryGetValue(t, out var p))
                {
                    p = (nint)NativeBuffers.Floats(v.Length);
                    v.CopyTo(new Span<float>((float*)p, v.Length));
                    normCopies[t] = p;
                }
                return (float*)p;
            }
            // Rope and attention take the model's head counts and head size.
            void HeadsOfTheModel()
            {
                Equal("n_head", I32("n_head"), c.HeadCount);
                Equal("n_head_kv", I32("n_head_kv"), c.HeadCountKv);
                Equal("head_dim", I32("head_dim"), c.HeadDim);
            }
            void OneTokenPerRow() => Equal("n_tokens (per token)", PerToken("n_tokens"), 1);
            // The rope table's parameters: every rope launch (rope, rope_kv_store) must give the same.
            void RopeTable()
            {
                float[]? factors = TensorName("freq_factors") is { } f
                    ? weights.Vectors.TryGetValue(f, out var v) ? v : throw new PlanException($"{where}: freq_factors ({f}) is not a vector the cpu backend bound")
                    : null;
                var mine = (F32("freq_base"), F32("freq_scale"), factors);
                if (rope is { } r && (BitConverter.SingleToInt32Bits(r.Item1) != BitConverter.SingleToInt32Bits(mine.Item1)
                    || BitConverter.SingleToInt32Bits(r.Item2) != BitConverter.SingleToInt32Bits(mine.Item2) || r.Item3 != mine.factors))
                    throw new PlanException($"{where}: rope parameters differ from the first rope launch's (the cpu backend builds one rope table)");
                rope = mine;
            }

            var key = Launchers.CpuKeys[(int)ins.KernelId];
            var family = key.Family;
            var step = new CpuStep { Layer = ins.Layer, Instruction = folded > 0 ? firstFolded : index, Launches = 1 + folded, Epilogue = ins.Layer < 0 && inLayers };
            switch (family)
            {
                case KernelFamilyId.Quantize:
                    if (folded++ == 0) firstFolded = index;   // the next matmul quantizes its input itself
                    continue;
                case KernelFamilyId.Embedding:
                {
                    var table = Matrix("table");
                    int cols = I32("cols");
                    Equal("cols", cols, table.Columns);
                    OneTokenPerRow();
                    step.Kind = CpuStepKind.Embedding;
                    step.W0 = table;
                    step.Tokens = Ints("tokens");
                    step.Y0 = Floats("y", cols);
                    step.Cols = cols;
                    break;
                }
                case KernelFamilyId.RmsNorm:
                {
                    int cols = I32("cols");
                    OneTokenPerRow();
                    step.Kind = CpuStepKind.RmsNorm;
                    step.X = Floats("x", cols);
                    step.Weight = Vector("w", cols);
                    step.Y0 = Floats("y", cols);
                    step.Cols = cols;
                    step.Scalar = F32("eps");
                    break;
                }
                case KernelFamilyId.Gemv or KernelFamilyId.GemvAdd or KernelFamilyId.GemvSwiglu:
                {
                    bool swiglu = family == KernelFamilyId.GemvSwiglu, add = family == KernelFamilyId.GemvAdd;
                    var w = Matrix(swiglu ? "gate" : "w");
                    int rows = I32("rows"), cols = I32("cols");
                    Equal("rows", rows, w.Rows);
                    Equal("cols", cols, w.Columns);
                    OneTokenPerRow();
                    step.Kind = swiglu ? CpuStepKind.MatMulSwiGlu : add ? CpuStepKind.MatMulAdd : CpuStepKind.MatMul;
                    step.W0 = w;
                    step.Matrices = 1;
                    step.F32Activations = key.F32Activations;
                    step.X = Floats(add ? "a" : "x", cols);
                    step.Y0 = Floats("y", rows);
                    if (swiglu)
                    {
                        step.W1 = Matrix("up");
                        Equal("rows of up", step.W1.Rows, rows);
                        Equal("cols of up", step.W1.Columns, cols);
                        step.Matrices = 2;
                    }
                    if (!Disjoint(step.Y0, (long)rows * batch, step.X, (long)cols * batch))
                        throw new PlanException($"{where}: output y overlaps input {(add ? "a" : "x")} (a matmul reads its input while writing)");
                    if (swiglu || add) maxScratch = Math.Max(maxScratch, rows);
                    maxColumns = Math.Max(maxColumns, cols);
                    break;
                }
                case KernelFamilyId.GemvQkv:   // the fused q/k/v projections: one pass over the three matrices
                {
                    var wq = Matrix("wq");
                    int rows = I32("rows"), kvDim = I32("kv_dim"), cols = I32("cols");
                    Equal("rows", rows, wq.Rows);
                    Equal("cols", cols, wq.Columns);
                    step.W1 = Matrix("wk");
                    step.W2 = Matrix("wv");
                    Equal("rows of wk", step.W1.Rows, kvDim);
                    Equal("rows of wv", step.W2.Rows, kvDim);
                    Equal("cols of wk", step.W1.Columns, cols);
                    Equal("cols of wv", step.W2.Columns, cols);
                    OneTokenPerRow();
                    step.Kind = CpuStepKind.MatMul;
                    step.W0 = wq;
                    step.Matrices = 3;
                    step.F32Activations = key.F32Activations;
                    step.X = Floats("x", cols);
                    step.Y0 = Floats("q", rows);
                    step.Y1 = Floats("k", kvDim);
                    step.Y2 = Floats("v", kvDim);
                    long input = (long)cols * batch, q = (long)rows * batch, kv = (long)kvDim * batch;
                    if (!Disjoint(step.Y0, q, step.X, input) || !Disjoint(step.Y1, kv, step.X, input) || !Disjoint(step.Y2, kv, step.X, input)
                        || !Disjoint(step.Y0, q, step.Y1, kv) || !Disjoint(step.Y0, q, step.Y2, kv) || !Disjoint(step.Y1, kv, step.Y2, kv))
                        throw new PlanException($"{where}: outputs q, k, v overlap each other or the input x");
                    maxColumns = Math.Max(maxColumns, cols);
                    break;
                }
                case KernelFamilyId.Rope or KernelFamilyId.RopeKvStore:
                    HeadsOfTheModel();
                    OneTokenPerRow();
                    step.Kind = family == KernelFamilyId.Rope ? CpuStepKind.Rope : CpuStepKind.RopeKvStore;
                    step.X = Floats("q", c.QDim);
                    step.X2 = Floats("k", c.KvDim);
                    step.Positions = Ints("positions");
                    if (family == KernelFamilyId.RopeKvStore)   // the rotated k and v into the caches
                    {
                        step.X3 = Floats("v", c.KvDim);
                        step.KCache = Cache("k_cache");
                        step.VCache = Cache("v_cache");
                        step.Cols = c.KvDim;
                    }
                    RopeTable();
                    break;
                case KernelFamilyId.KvStore:
                    Equal("kv_dim", I32("kv_dim"), c.KvDim);
                    OneTokenPerRow();
                    step.Kind = CpuStepKind.KvStore;
                    step.X = Floats("k", c.KvDim);
                    step.X2 = Floats("v", c.KvDim);
                    step.KCache = Cache("k_cache");
                    step.VCache = Cache("v_cache");
                    step.Positions = Ints("positions");
                    step.Cols = c.KvDim;
                    break;
                case KernelFamilyId.Attention or KernelFamilyId.AttentionQuant:   // the 8-bit output: the matmul quantizes itself
                    HeadsOfTheModel();
                    OneTokenPerRow();
                    step.Kind = CpuStepKind.Attention;
                    step.X = Floats("q", c.QDim);
                    step.KCache = Cache("k_cache");
                    step.VCache = Cache("v_cache");
                    step.Positions = Ints("positions");
                    step.Y0 = Floats("y", c.QDim);
                    step.Scalar = F32("scale");
                    break;
                case KernelFamilyId.Add:
                {
                    int n = PerToken("n");
                    step.Kind = CpuStepKind.Add;
                    step.X = Floats("x", n);
                    step.X2 = Floats("y", n);
                    step.Cols = n;
                    break;
                }
                case KernelFamilyId.Swiglu:
                {
                    int n = PerToken("n");
                    step.Kind = CpuStepKind.SwiGlu;
                    step.X = Floats("gate", n);
                    step.X2 = Floats("up", n);
                    step.Y0 = Floats("y", n);
                    step.Cols = n;
                    break;
                }
                case KernelFamilyId.Argmax:
                    Equal("n_vocab", I32("n_vocab"), c.VocabSize);
                    OneTokenPerRow();
                    step.Kind = CpuStepKind.ArgMax;
                    step.X = Floats("logits", c.VocabSize);
                    step.Tokens = Ints("tokens");
                    step.Positions = Ints("positions");
                    step.Cols = c.VocabSize;
                    break;
                default:
                    throw new PlanException($"{where}: kernel family {family} has no cpu implementation");
            }
            folded = 0;
            if (step.Kind == CpuStepKind.MatMul && steps.Count > 0 && CanJoin(steps[^1], step, batch))
            {
                var last = steps[^1];
                if (last.Matrices == 1) { last.W1 = step.W0; last.Y1 = step.Y0; }
                else { last.W2 = step.W0; last.Y2 = step.Y0; }
                last.Matrices++;
                last.Launches += step.Launches;
                steps[^1] = last;
                continue;
            }
            steps.Add(step);
        }
        if (folded > 0) throw new PlanException($"the plan ends with {folded} quantize launch(es) that no matmul reads");

        // An epilogue that is not row-wise (no such op in llama.graph) runs in full in every pass.
        var array = steps.ToArray();
        if (array.Any(s => s.Epilogue && s.Kind is not (CpuStepKind.RmsNorm or CpuStepKind.MatMul or CpuStepKind.MatMulAdd
                or CpuStepKind.MatMulSwiGlu or CpuStepKind.Add or CpuStepKind.SwiGlu or CpuStepKind.ArgMax)))
            for (int i = 0; i < array.Length; i++) array[i].Epilogue = false;
        return new CpuProgram(array, batch, ctx, workspace, tokens, positions, logits, maxColumns, maxScratch, rope)
        {
            _normCopies = normCopies.Values.ToArray(),
        };
    }

    /// <summary>Two gemv steps may run as one pool pass when they read the same input of the same width and no output
    /// overlaps the input or another output over n_batch rows (then the second never reads what the first writes, and
    /// no two rows of the pass write the same float).</summary>
    private static bool CanJoin(in CpuStep last, in CpuStep next, int batch)
    {
        if (last.Kind != CpuStepKind.MatMul || last.Matrices >= 3 || last.Layer != next.Layer || last.Epilogue != next.Epilogue
            || last.X != next.X || last.W0.Columns != next.W0.Columns || last.F32Activations != next.F32Activations)
            return false;
        long input = (long)next.W0.Columns * batch, output = (long)next.W0.Rows * batch;
        return Disjoint(next.Y0, output, next.X, input) && Disjoint(last.Y0, (long)last.W0.Rows * batch, next.Y0, output)
            && (last.Matrices < 2 || Disjoint(last.Y1, (long)last.W1.Rows * batch, next.Y0, output));
    }

    private static bool Disjoint(float* a, long countA, float* b, long countB) => a + countA <= b || b + countB <= a;

    private nint[] _normCopies = [];   // native f32 copies of the norm vectors, one per tensor, shared by its steps

    public void Dispose()
    {
        foreach (var p in _normCopies) NativeBuffers.Free((void*)p);
        _normCopies = [];
        if (_workspace != null) NativeMemory.AlignedFree(_workspace);
        _workspace = null;
    }
}

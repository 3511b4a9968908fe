using System.Diagnostics;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Microsoft.Win32.SafeHandles;

namespace Engine.Plans.Synth;

/// <summary>What to synthesize.</summary>
public sealed record SynthOptions(SynthPreset Preset, SynthType Type, string Output)
{
    /// <summary>Layer count override (1..the preset's); null keeps the preset's.</summary>
    public int? Layers { get; init; }
    public string? VocabFrom { get; init; }
    public bool HeaderOnly { get; init; }
    public ulong Seed { get; init; } = 1;
    /// <summary>Worker threads; null uses every core. The bytes written do not depend on it.</summary>
    public int? Threads { get; init; }
}

/// <summary>Writes a Llama GGUF of real shapes and random weights that llama.cpp loads: weights ~N(0, 0.02²)
/// (Irwin–Hall approximation), norm weights 1 ± 0.02, rope_freqs as the converter computes them, each weight
/// quantized with the reference codecs to the type llama.cpp's quantizer would pick for that file type.
/// Every chunk of rows draws from its own stream derived from (seed, tensor index, chunk index), so the file
/// is the same bytes whatever the thread count. Written into OUT.part by positional writes in parallel, then
/// renamed.</summary>
public static class ModelSynthesizer
{
    public const float WeightStd = 0.02f;

    /// <summary>Chunks hold about this many elements (whole rows): small enough to spread a tensor over many
    /// cores, large enough that each positional write is a few hundred KB or more.</summary>
    private const int ChunkElements = 1 << 20;

    private enum Fill { Normal, Norm, RopeFactors }

    private sealed record TensorPlan(string Name, GgmlType Type, long[] Dims, Fill Fill, int Layer);

    /// <summary>The header (metadata and tensor infos) of the file <paramref name="o"/> describes, and the
    /// plan of how each tensor is filled.</summary>
    public static GgufWriter BuildHeader(SynthOptions o) => Build(o, out _);

    private static GgufWriter Build(SynthOptions o, out List<TensorPlan> plan)
    {
        var p = o.Preset;
        int layers = o.Layers ?? p.LayerCount;
        if (layers < 1 || layers > p.LayerCount)
            throw new ArgumentOutOfRangeException(nameof(o), layers, $"--layers must be 1..{p.LayerCount} for {p.Name}");
        const string arch = "llama";
        var w = new GgufWriter();
        w.Set(GgufKeys.Architecture, arch);
        w.Set(GgufKeys.Name, $"synth-{p.Name}-{o.Type}");
        int vocab = p.VocabSize;
        if (o.VocabFrom != null)
        {
            using var v = GgufFile.Open(o.VocabFrom);
            vocab = SynthVocabulary.CopyFrom(w, v);
        }
        else
        {
            SynthVocabulary.Synthesize(w, vocab);
        }
        w.Set(GgufKeys.ContextLength(arch), (uint)p.ContextLength);
        w.Set(GgufKeys.EmbeddingLength(arch), (uint)p.EmbeddingLength);
        w.Set(GgufKeys.BlockCount(arch), (uint)layers);
        w.Set(GgufKeys.FeedForwardLength(arch), (uint)p.FeedForwardLength);
        w.Set(GgufKeys.RopeDimensionCount(arch), (uint)p.HeadDim);
        w.Set(GgufKeys.HeadCount(arch), (uint)p.HeadCount);
        w.Set(GgufKeys.HeadCountKv(arch), (uint)p.HeadCountKv);
        w.Set(GgufKeys.RmsEpsilon(arch), p.RmsEpsilon);
        w.Set(GgufKeys.RopeFreqBase(arch), p.RopeFreqBase);
        w.Set(GgufKeys.VocabSize(arch), (uint)vocab);
        w.Set(GgufKeys.FileType, (uint)o.Type);
        w.Set(GgufKeys.QuantizationVersion, 2u);   // GGML_QNT_VERSION

        plan = new List<TensorPlan>();
        var tensors = plan;
        void Add(string name, Fill fill, int layer, params long[] dims)
        {
            GgmlType t = dims.Length == 1 ? GgmlType.F32 : TensorTypeRules.WeightType(o.Type, name, layer, layers, p.TiedOutput);
            tensors.Add(new TensorPlan(name, t, dims, fill, layer));
        }

        int kvDim = p.HeadCountKv * p.HeadDim;
        if (p.RopeScalingFactor != null) Add(TensorNames.RopeFreqs, Fill.RopeFactors, -1, p.HeadDim / 2);
        Add(TensorNames.TokenEmbedding, Fill.Normal, -1, p.EmbeddingLength, vocab);
        for (int l = 0; l < layers; l++)
        {
            Add(TensorNames.AttnNorm(l), Fill.Norm, l, p.EmbeddingLength);
            Add(TensorNames.AttnQ(l), Fill.Normal, l, p.EmbeddingLength, p.HeadCount * p.HeadDim);
            Add(TensorNames.AttnK(l), Fill.Normal, l, p.EmbeddingLength, kvDim);
            Add(TensorNames.AttnV(l), Fill.Normal, l, p.EmbeddingLength, kvDim);
            Add(TensorNames.AttnOutput(l), Fill.Normal, l, p.HeadCount * p.HeadDim, p.EmbeddingLength);
            Add(TensorNames.FfnNorm(l), Fill.Norm, l, p.EmbeddingLength);
            Add(TensorNames.FfnGate(l), Fill.Normal, l, p.EmbeddingLength, p.FeedForwardLength);
            Add(TensorNames.FfnUp(l), Fill.Normal, l, p.EmbeddingLength, p.FeedForwardLength);
            Add(TensorNames.FfnDown(l), Fill.Normal, l, p.FeedForwardLength, p.EmbeddingLength);
        }
        Add(TensorNames.OutputNorm, Fill.Norm, -1, p.EmbeddingLength);
        if (!p.TiedOutput) Add(TensorNames.Output, Fill.Normal, -1, p.EmbeddingLength, vocab);

        foreach (var t in plan) w.AddTensor(t.Name, t.Type, t.Dims);
        return w;
    }

    /// <summary>Writes the file. <paramref name="progress"/> (stderr in the CLI) gets a line about once a
    /// second and a summary. Returns the file size.</summary>
    public static long Write(SynthOptions o, TextWriter? progress = null)
    {
        var writer = Build(o, out var plan);
        if (o.HeaderOnly)
        {
            writer.WriteHeaderOnly(o.Output);
            long size = new FileInfo(o.Output).Length;
            progress?.WriteLine($"synth: {o.Output}: header only, {plan.Count} tensors, logical size {Gb(size)}");
            return size;
        }

        var layout = writer.Layout();
        var work = new List<(int Tensor, long FirstRow, int Rows)>();
        for (int i = 0; i < plan.Count; i++)
        {
            long rowLen = plan[i].Dims[0];
            long rows = plan[i].Dims.Length == 1 ? 1 : plan[i].Dims[1];
            int rowsPerChunk = (int)Math.Max(1, ChunkElements / rowLen);
            for (long r = 0; r < rows; r += rowsPerChunk) work.Add((i, r, (int)Math.Min(rowsPerChunk, rows - r)));
        }

        string part = o.Output + ".part";
        var clock = Stopwatch.StartNew();
        long written = 0;
        try
        {
            using (var handle = File.OpenHandle(part, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
            {
                RandomAccess.SetLength(handle, layout.FileSize);
                RandomAccess.Write(handle, layout.Header, 0);
                using var timer = progress == null ? null : new Timer(_ =>
                {
                    long done = Interlocked.Read(ref written);
                    progress.WriteLine($"synth: {Gb(done)} / {Gb(layout.FileSize)} ({100.0 * done / layout.FileSize:F0} %), {Gb((long)(done / Math.Max(clock.Elapsed.TotalSeconds, 1e-3)))}/s");
                }, null, 1000, 1000);

                var options = new ParallelOptions { MaxDegreeOfParallelism = o.Threads ?? Environment.ProcessorCount };
                Parallel.For(0, work.Count, options,
                    () => new ChunkBuffers(),
                    (k, _, buffers) =>
                    {
                        var (ti, firstRow, rows) = work[k];
                        var t = plan[ti];
                        int rowLen = (int)t.Dims[0];
                        int rowBytes = (int)GgmlTypeInfo.RowBytes(t.Type, rowLen);
                        var values = buffers.Floats(rowLen);
                        var bytes = buffers.Bytes(rows * rowBytes);
                        // Row by row: the row's values stay in L1 between generation and quantization.
                        var normals = NormalsFor(o, t, ti, firstRow, rowLen);
                        for (int r = 0; r < rows; r++)
                        {
                            FillRow(o, t, ref normals, values);
                            SynthQuantizers.QuantizeRow(t.Type, values, bytes.Slice(r * rowBytes, rowBytes));
                        }
                        RandomAccess.Write(handle, bytes, layout.Slots[ti].FileOffset + firstRow * rowBytes);
                        Interlocked.Add(ref written, bytes.Length);
                        return buffers;
                    },
                    _ => { });
            }
            File.Move(part, o.Output, overwrite: true);
        }
        catch
        {
            try { File.Delete(part); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        double s = clock.Elapsed.TotalSeconds;
        progress?.WriteLine($"synth: {o.Output}: {plan.Count} tensors, {Gb(layout.FileSize)} in {s:F1} s ({Gb((long)(layout.FileSize / Math.Max(s, 1e-3)))}/s, {o.Threads ?? Environment.ProcessorCount} threads)");
        return layout.FileSize;
    }

    /// <summary>The stream of a chunk: derived from (seed, tensor index, chunk index), so independent of which
    /// thread writes the chunk.</summary>
    private static SynthNormals NormalsFor(SynthOptions o, TensorPlan t, int tensorIndex, long firstRow, int rowLen)
    {
        ulong tensorSeed = SynthRandom.Derive(o.Seed, (ulong)tensorIndex);
        return new SynthNormals(SynthRandom.Derive(tensorSeed, (ulong)(firstRow / Math.Max(1, ChunkElements / rowLen))));
    }

    private static void FillRow(SynthOptions o, TensorPlan t, ref SynthNormals normals, Span<float> values)
    {
        switch (t.Fill)
        {
            case Fill.RopeFactors:
                var p = o.Preset;
                RopeFactors.Llama3(p.HeadDim, p.RopeFreqBase, p.RopeScalingFactor ?? 1).CopyTo(values);
                return;
            case Fill.Norm:
                normals.Fill(values, 1f, WeightStd);
                return;
            case Fill.Normal:
                normals.Fill(values, 0f, WeightStd);
                return;
        }
    }

    private static string Gb(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1L << 20):F1} MiB";

    /// <summary>Per-thread scratch, grown once and reused across chunks.</summary>
    private sealed class ChunkBuffers
    {
        private float[] _floats = [];
        private byte[] _bytes = [];

        public Span<float> Floats(int n)
        {
            if (_floats.Length < n) _floats = new float[n];
            return _floats.AsSpan(0, n);
        }

        public Span<byte> Bytes(int n)
        {
            if (_bytes.Length < n) _bytes = new byte[n];
            return _bytes.AsSpan(0, n);
        }
    }
}

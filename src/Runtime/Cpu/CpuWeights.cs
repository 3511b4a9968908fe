using Engine.Plans.Gguf;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;

namespace Engine.Runtime.Cpu;

/// <summary>One transformer block's weights: matrices stay in the mapped file, norm vectors are f32 copies.</summary>
public sealed class LayerWeights
{
    public required float[] AttnNorm { get; init; }   // [n_embd]
    public required WeightMatrix Q { get; init; }     // [n_head·head_dim rows, n_embd cols]
    public required WeightMatrix K { get; init; }     // [n_head_kv·head_dim, n_embd]
    public required WeightMatrix V { get; init; }     // [n_head_kv·head_dim, n_embd]
    public required WeightMatrix O { get; init; }     // [n_embd, n_head·head_dim]
    public required float[] FfnNorm { get; init; }    // [n_embd]
    public required WeightMatrix Gate { get; init; }  // [n_ff, n_embd]
    public required WeightMatrix Up { get; init; }    // [n_ff, n_embd]
    public required WeightMatrix Down { get; init; }  // [n_embd, n_ff]
}

/// <summary>Where one tensor's bytes are and what they hold: the input of <see cref="CpuWeights.Bind"/>.
/// <see cref="Data"/> is where the kernels read it; <see cref="LoadData"/> where its bytes can be read while binding
/// (the same, except for a streamed layer, whose slot holds its weights only while it runs: its norm vectors are
/// copied from the mapped file instead).</summary>
public readonly unsafe struct BoundTensor(byte* data, GgmlType type, long[] dims, long fileOffset, byte* loadData = null)
{
    public readonly byte* Data = data;
    public readonly GgmlType Type = type;
    public readonly long[] Dims = dims;      // GGUF order, row length first
    public readonly long FileOffset = fileOffset;
    public readonly byte* LoadData = loadData != null ? loadData : data;
}

/// <summary>Every weight the CPU forward pass reads, located and checked once. <see cref="Bind"/> is the one place a
/// model meets its tensors; <see cref="FromPlan"/> feeds it the plan's tensor table over the mapped GGUF (what ntrun
/// does), <see cref="FromGguf"/> the GGUF's own tensor infos (kernel tests without a plan).</summary>
public sealed unsafe class CpuWeights
{
    public required WeightMatrix TokenEmbedding { get; init; }   // [n_vocab rows, n_embd cols]
    public required LayerWeights[] Layers { get; init; }
    public required float[] OutputNorm { get; init; }            // [n_embd]
    public required WeightMatrix Output { get; init; }           // [n_vocab, n_embd]; token_embd when tied
    public float[]? RopeFreqs { get; init; }                     // [rope_dims / 2] (Llama 3.1)
    /// <summary>Every bound matrix by tensor name (a plan's launch names its weights by tensor).</summary>
    public required IReadOnlyDictionary<string, WeightMatrix> Matrices { get; init; }
    /// <summary>Every bound vector (norm weights, rope_freqs) by tensor name, as f32.</summary>
    public required IReadOnlyDictionary<string, float[]> Vectors { get; init; }

    /// <summary>Binds the weights through the plan's tensor table: each tensor where <paramref name="kernelAddress"/>
    /// puts it (the streaming engine: tier A in the map, tier H in the pinned arena, tiers B and C in their layer's
    /// slot; <see cref="Streaming.HostArenas.KernelAddress"/>), or at its recorded file offset in
    /// <paramref name="mappedModel"/> (the GGUF the plan was checked against, mapped whole) when none is given.</summary>
    public static CpuWeights FromPlan(Plan plan, byte* mappedModel, string modelPath, Func<PlanTensor, nint>? kernelAddress = null)
    {
        var table = new Dictionary<string, PlanTensor>(plan.Tensors.Count, StringComparer.Ordinal);
        foreach (var t in plan.Tensors) table[t.Name] = t;
        return Bind(plan.Config, modelPath, name =>
        {
            if (!table.TryGetValue(name, out var t)) return null;
            byte* inFile = mappedModel + t.FileOffset;
            return new BoundTensor(kernelAddress != null ? (byte*)kernelAddress(t) : inFile, t.Type, t.Dims, t.FileOffset, inFile);
        });
    }

    /// <summary>Binds the weights by the GGUF's own tensor infos.</summary>
    public static CpuWeights FromGguf(GgufFile file, ModelConfig config) =>
        Bind(config, file.Path, name => file.FindTensor(name) is { } t ? new BoundTensor(file.TensorPointer(t), t.Type, t.Dims, t.FileOffset) : null);

    /// <summary>Binds the weights of <paramref name="config"/>, checking every tensor's presence, type and shape; a
    /// defect throws one <see cref="GgufException"/> naming the file, tensor, value and limit.</summary>
    public static CpuWeights Bind(ModelConfig config, string modelPath, Func<string, BoundTensor?> find)
    {
        int d = config.EmbeddingLength, ff = config.FeedForwardLength, vocab = config.VocabSize;
        var matrices = new Dictionary<string, WeightMatrix>(StringComparer.Ordinal);
        var vectors = new Dictionary<string, float[]>(StringComparer.Ordinal);
        BoundTensor Tensor(string name) =>
            find(name) ?? throw new GgufException(modelPath, 0, name, "(missing)", "required tensor not in the model");
        WeightMatrix Matrix(string name, int rows, int cols)
        {
            var t = Tensor(name);
            if (!WeightMatrix.IsSupported(t.Type))
                throw new GgufException(modelPath, t.FileOffset, name + ".type", t.Type.ToString(),
                    "unsupported by the CPU backend (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
            if (t.Dims.Length != 2 || t.Dims[0] != cols || t.Dims[1] != rows)
                throw new GgufException(modelPath, t.FileOffset, name + ".shape", Shape(t.Dims), $"expected [{cols}, {rows}]");
            return matrices[name] = new WeightMatrix(t.Data, t.Type, rows, cols);
        }
        float[] Vector(string name, int length)
        {
            var t = Tensor(name);
            long elements = 1;
            foreach (long x in t.Dims) elements *= x;
            if (elements != length)
                throw new GgufException(modelPath, t.FileOffset, name + ".shape", Shape(t.Dims), $"expected [{length}]");
            if (!WeightMatrix.IsSupported(t.Type))
                throw new GgufException(modelPath, t.FileOffset, name + ".type", t.Type.ToString(), "unsupported by the CPU backend");
            var m = new WeightMatrix(t.LoadData, t.Type, 1, length);
            var v = new float[length];
            fixed (float* p = v) m.DequantizeRow(0, p);
            return vectors[name] = v;
        }

        var layers = new LayerWeights[config.LayerCount];
        for (int l = 0; l < layers.Length; l++)
            layers[l] = new LayerWeights
            {
                AttnNorm = Vector(TensorNames.AttnNorm(l), d),
                Q = Matrix(TensorNames.AttnQ(l), config.QDim, d),
                K = Matrix(TensorNames.AttnK(l), config.KvDim, d),
                V = Matrix(TensorNames.AttnV(l), config.KvDim, d),
                O = Matrix(TensorNames.AttnOutput(l), d, config.QDim),
                FfnNorm = Vector(TensorNames.FfnNorm(l), d),
                Gate = Matrix(TensorNames.FfnGate(l), ff, d),
                Up = Matrix(TensorNames.FfnUp(l), ff, d),
                Down = Matrix(TensorNames.FfnDown(l), d, ff),
            };
        var embedding = Matrix(TensorNames.TokenEmbedding, vocab, d);
        return new CpuWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            OutputNorm = Vector(TensorNames.OutputNorm, d),
            Output = config.TiedOutput ? embedding : Matrix(TensorNames.Output, vocab, d),
            RopeFreqs = config.HasRopeFreqs ? Vector(TensorNames.RopeFreqs, config.RopeDimensions / 2) : null,
            Matrices = matrices,
            Vectors = vectors,
        };
    }

    private static string Shape(long[] dims) => "[" + string.Join(", ", dims) + "]";
}

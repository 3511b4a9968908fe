using Engine.Plans.Gguf;

namespace Engine.Plans.Model;

/// <summary>Hyper-parameters of a Llama-family model, read once from GGUF metadata (llama-model.cpp
/// llm_load_hparams is the model for defaults). Shapes in comments use GGUF order (row length first).</summary>
public sealed record ModelConfig
{
    public required string Architecture { get; init; }
    public string Name { get; init; } = "";
    public required int EmbeddingLength { get; init; }     // n_embd
    public required int LayerCount { get; init; }         // n_layer
    public required int FeedForwardLength { get; init; }  // n_ff
    public required int HeadCount { get; init; }          // n_head
    public required int HeadCountKv { get; init; }        // n_head_kv
    public required int HeadDim { get; init; }            // n_embd / n_head unless key_length says otherwise
    public required int VocabSize { get; init; }
    public required int TrainedContext { get; init; }
    public required float RmsEpsilon { get; init; }
    public required float RopeFreqBase { get; init; }
    public required int RopeDimensions { get; init; }
    /// <summary>True when the file carries rope_freqs.weight (Llama 3.1 frequency scaling factors).</summary>
    public bool HasRopeFreqs { get; init; }
    /// <summary>True when output.weight is absent and the token embedding is reused (tied output).</summary>
    public bool TiedOutput { get; init; }
    public long FileType { get; init; } = -1;

    public int KvDim => HeadCountKv * HeadDim;
    public int QDim => HeadCount * HeadDim;

    public static readonly string[] SupportedArchitectures = ["llama"];

    public static ModelConfig FromGguf(GgufFile f)
    {
        string arch = f.GetString(GgufKeys.Architecture);
        if (Array.IndexOf(SupportedArchitectures, arch) < 0)
            throw new GgufException(f.Path, 0, GgufKeys.Architecture, $"\"{arch}\"", "unsupported architecture (supported: llama)");
        int embd = Positive(f, GgufKeys.EmbeddingLength(arch));
        int heads = Positive(f, GgufKeys.HeadCount(arch));
        int headsKv = (int)f.GetIntOr(GgufKeys.HeadCountKv(arch), heads);
        if (headsKv <= 0 || heads % headsKv != 0)
            throw new GgufException(f.Path, 0, GgufKeys.HeadCountKv(arch), headsKv.ToString(), $"must divide head_count ({heads})");
        int headDim = (int)f.GetIntOr(GgufKeys.KeyLength(arch), embd / heads);
        var tokens = f.GetArrayOrNull<string>(GgufKeys.TokenizerTokens);
        long vocab = f.GetIntOr(GgufKeys.VocabSize(arch), tokens?.Length ?? 0);
        var emb = f.FindTensor(TensorNames.TokenEmbedding);
        if (vocab == 0 && emb != null && emb.Dims.Length == 2) vocab = emb.Dims[1];
        return new ModelConfig
        {
            Architecture = arch,
            Name = f.GetStringOrNull(GgufKeys.Name) ?? "",
            EmbeddingLength = embd,
            LayerCount = Positive(f, GgufKeys.BlockCount(arch)),
            FeedForwardLength = Positive(f, GgufKeys.FeedForwardLength(arch)),
            HeadCount = heads,
            HeadCountKv = headsKv,
            HeadDim = headDim,
            VocabSize = (int)vocab,
            TrainedContext = (int)f.GetIntOr(GgufKeys.ContextLength(arch), 2048),
            RmsEpsilon = (float)f.GetFloatOr(GgufKeys.RmsEpsilon(arch), 1e-5),
            RopeFreqBase = (float)f.GetFloatOr(GgufKeys.RopeFreqBase(arch), 10000.0),
            RopeDimensions = (int)f.GetIntOr(GgufKeys.RopeDimensionCount(arch), headDim),
            HasRopeFreqs = f.FindTensor(TensorNames.RopeFreqs) != null,
            TiedOutput = f.FindTensor(TensorNames.Output) == null,
            FileType = f.GetIntOr(GgufKeys.FileType, -1),
        };
    }

    private static int Positive(GgufFile f, string key)
    {
        long v = f.GetInt(key);
        if (v <= 0 || v > int.MaxValue) throw new GgufException(f.Path, 0, key, v.ToString(), "must be a positive int32");
        return (int)v;
    }
}

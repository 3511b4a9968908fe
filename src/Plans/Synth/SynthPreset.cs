namespace Engine.Plans.Synth;

/// <summary>A model shape <c>ntc synth</c> can fill with random weights. Llama 3.x shapes from Meta's
/// config.json files; <see cref="RopeScalingFactor"/> set means the file carries rope_freqs.weight computed
/// as llama.cpp's converter does (rope_type "llama3", low 1, high 4, original context 8192).</summary>
public sealed record SynthPreset(
    string Name,
    int EmbeddingLength,
    int LayerCount,
    int HeadCount,
    int HeadCountKv,
    int FeedForwardLength,
    int VocabSize,
    float RopeFreqBase,
    int ContextLength,
    bool TiedOutput,
    float? RopeScalingFactor,
    float RmsEpsilon = 1e-5f)
{
    public int HeadDim => EmbeddingLength / HeadCount;

    /// <summary>CI-sized: every row length a multiple of 256 so every K-quant applies; 2 layers so Q4_K_M's
    /// use_more_bits layer (the last) carries Q6_K; separate output so both output layouts are exercised.</summary>
    public static readonly SynthPreset Tiny = new("tiny", 256, 2, 4, 2, 768, 512, 10000f, 2048, TiedOutput: false, RopeScalingFactor: null);

    /// <summary>Llama 3.2 1B: tied output; its rope scaling factor is 32 (config.json rope_scaling).</summary>
    public static readonly SynthPreset Llama3_1B = new("llama3-1b", 2048, 16, 32, 8, 8192, 128256, 500000f, 131072, TiedOutput: true, RopeScalingFactor: 32f);

    /// <summary>Llama 3.1 8B.</summary>
    public static readonly SynthPreset Llama3_8B = new("llama3-8b", 4096, 32, 32, 8, 14336, 128256, 500000f, 131072, TiedOutput: false, RopeScalingFactor: 8f);

    /// <summary>Llama 3.1 70B.</summary>
    public static readonly SynthPreset Llama3_70B = new("llama3-70b", 8192, 80, 64, 8, 28672, 128256, 500000f, 131072, TiedOutput: false, RopeScalingFactor: 8f);

    public static readonly IReadOnlyList<SynthPreset> All = [Tiny, Llama3_1B, Llama3_8B, Llama3_70B];

    public static SynthPreset? Find(string name) => All.FirstOrDefault(p => p.Name == name);
}

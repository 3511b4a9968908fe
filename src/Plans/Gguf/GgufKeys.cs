namespace Engine.Plans.Gguf;

/// <summary>The one table of GGUF metadata keys and tensor names (llama.cpp's gguf-py constants.py and
/// llama-arch.cpp). Nothing else in the engine spells them.</summary>
public static class GgufKeys
{
    public const string Magic = "GGUF";

    // general.*
    public const string Architecture = "general.architecture";
    public const string Name = "general.name";
    public const string Alignment = "general.alignment";
    public const string FileType = "general.file_type";
    public const string QuantizationVersion = "general.quantization_version";

    // {arch}.* — formatted with the architecture name
    public static string ContextLength(string arch) => $"{arch}.context_length";
    public static string EmbeddingLength(string arch) => $"{arch}.embedding_length";
    public static string BlockCount(string arch) => $"{arch}.block_count";
    public static string FeedForwardLength(string arch) => $"{arch}.feed_forward_length";
    public static string HeadCount(string arch) => $"{arch}.attention.head_count";
    public static string HeadCountKv(string arch) => $"{arch}.attention.head_count_kv";
    public static string RmsEpsilon(string arch) => $"{arch}.attention.layer_norm_rms_epsilon";
    public static string KeyLength(string arch) => $"{arch}.attention.key_length";
    public static string ValueLength(string arch) => $"{arch}.attention.value_length";
    public static string RopeDimensionCount(string arch) => $"{arch}.rope.dimension_count";
    public static string RopeFreqBase(string arch) => $"{arch}.rope.freq_base";
    public static string RopeScalingType(string arch) => $"{arch}.rope.scaling.type";
    public static string RopeScalingFactor(string arch) => $"{arch}.rope.scaling.factor";
    public static string RopeScalingOrigContext(string arch) => $"{arch}.rope.scaling.original_context_length";
    public static string VocabSize(string arch) => $"{arch}.vocab_size";

    // tokenizer.ggml.*
    public const string TokenizerModel = "tokenizer.ggml.model";
    public const string TokenizerPre = "tokenizer.ggml.pre";
    public const string TokenizerTokens = "tokenizer.ggml.tokens";
    public const string TokenizerScores = "tokenizer.ggml.scores";
    public const string TokenizerTokenType = "tokenizer.ggml.token_type";
    public const string TokenizerMerges = "tokenizer.ggml.merges";
    public const string TokenizerBosId = "tokenizer.ggml.bos_token_id";
    public const string TokenizerEosId = "tokenizer.ggml.eos_token_id";
    public const string TokenizerEotId = "tokenizer.ggml.eot_token_id";
    public const string TokenizerEomId = "tokenizer.ggml.eom_token_id";
    public const string TokenizerUnknownId = "tokenizer.ggml.unknown_token_id";
    public const string TokenizerPaddingId = "tokenizer.ggml.padding_token_id";
    public const string TokenizerSeparatorId = "tokenizer.ggml.seperator_token_id"; // sic, as llama.cpp spells it
    public const string TokenizerAddBos = "tokenizer.ggml.add_bos_token";
    public const string TokenizerAddEos = "tokenizer.ggml.add_eos_token";
    public const string TokenizerAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
    public const string TokenizerChatTemplate = "tokenizer.chat_template";
}

/// <summary>Tensor names of the Llama architecture (llama-arch.cpp LLM_TENSOR_NAMES).</summary>
public static class TensorNames
{
    public const string TokenEmbedding = "token_embd.weight";
    public const string OutputNorm = "output_norm.weight";
    public const string Output = "output.weight";
    public const string RopeFreqs = "rope_freqs.weight";

    public static string AttnNorm(int layer) => $"blk.{layer}.attn_norm.weight";
    public static string AttnQ(int layer) => $"blk.{layer}.attn_q.weight";
    public static string AttnK(int layer) => $"blk.{layer}.attn_k.weight";
    public static string AttnV(int layer) => $"blk.{layer}.attn_v.weight";
    public static string AttnOutput(int layer) => $"blk.{layer}.attn_output.weight";
    public static string FfnNorm(int layer) => $"blk.{layer}.ffn_norm.weight";
    public static string FfnGate(int layer) => $"blk.{layer}.ffn_gate.weight";
    public static string FfnUp(int layer) => $"blk.{layer}.ffn_up.weight";
    public static string FfnDown(int layer) => $"blk.{layer}.ffn_down.weight";

    /// <summary>Per-layer tensor names in file order, as llama.cpp's converter writes them.</summary>
    public static IEnumerable<string> Layer(int layer)
    {
        yield return AttnNorm(layer);
        yield return AttnQ(layer);
        yield return AttnK(layer);
        yield return AttnV(layer);
        yield return AttnOutput(layer);
        yield return FfnNorm(layer);
        yield return FfnGate(layer);
        yield return FfnUp(layer);
        yield return FfnDown(layer);
    }

    /// <summary>The layer index of a "blk.N." tensor, or -1 for a global tensor.</summary>
    public static int LayerOf(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int dot = name.IndexOf('.', 4);
        return dot > 4 && int.TryParse(name.AsSpan(4, dot - 4), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int l) ? l : -1;
    }
}

/// <summary>Maps the layer-graph spec's weight roles to GGUF tensor names.</summary>
public static class WeightRoles
{
    public static string TensorName(string role, int layer) => role switch
    {
        "token_embd" => TensorNames.TokenEmbedding,
        "output_norm" => TensorNames.OutputNorm,
        "output" => TensorNames.Output,
        "rope_freqs" => TensorNames.RopeFreqs,
        "attn_norm" => TensorNames.AttnNorm(layer),
        "attn_q" => TensorNames.AttnQ(layer),
        "attn_k" => TensorNames.AttnK(layer),
        "attn_v" => TensorNames.AttnV(layer),
        "attn_output" => TensorNames.AttnOutput(layer),
        "ffn_norm" => TensorNames.FfnNorm(layer),
        "ffn_gate" => TensorNames.FfnGate(layer),
        "ffn_up" => TensorNames.FfnUp(layer),
        "ffn_down" => TensorNames.FfnDown(layer),
        _ => throw new ArgumentException("unknown weight role " + role),
    };
}

using Engine.Plans.Gguf;

namespace Engine.Plans.Synth;

/// <summary>File types <c>ntc synth</c> writes, numbered as llama.h enum llama_ftype (general.file_type).</summary>
public enum SynthType
{
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 7,
    Q4_K_M = 15,
    Q5_K_M = 17,
    Q6_K = 18,
}

/// <summary>Which tensor type each weight gets in a file of a given <see cref="SynthType"/>: the subset of
/// llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) that applies to Llama without an imatrix.</summary>
public static class TensorTypeRules
{
    public static readonly IReadOnlyList<string> Names = ["F16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"];

    public static SynthType? Parse(string name) => name switch
    {
        "F16" => SynthType.F16,
        "Q8_0" => SynthType.Q8_0,
        "Q4_0" => SynthType.Q4_0,
        "Q4_K_M" => SynthType.Q4_K_M,
        "Q5_K_M" => SynthType.Q5_K_M,
        "Q6_K" => SynthType.Q6_K,
        _ => null,
    };

    /// <summary>The type quantized weights start from before the per-tensor rules (llama_model_quantize_impl's
    /// default_type).</summary>
    public static GgmlType DefaultType(SynthType t) => t switch
    {
        SynthType.F16 => GgmlType.F16,
        SynthType.Q8_0 => GgmlType.Q8_0,
        SynthType.Q4_0 => GgmlType.Q4_0,
        SynthType.Q4_K_M => GgmlType.Q4_K,
        SynthType.Q5_K_M => GgmlType.Q5_K,
        SynthType.Q6_K => GgmlType.Q6_K,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>llama-quant.cpp use_more_bits: the first and last eighth of the layers and every third between.</summary>
    public static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>The type of a 2-D weight. 1-D tensors (norms, rope_freqs) are always F32 (llama.cpp does not
    /// quantize them). <paramref name="layer"/> is −1 for global tensors.</summary>
    public static GgmlType WeightType(SynthType fileType, string name, int layer, int layers, bool tiedOutput)
    {
        GgmlType t = DefaultType(fileType);
        if (fileType == SynthType.F16) return t;   // F16 is not a quantized type: no per-tensor rules
        bool outputLike = name == TensorNames.Output || (tiedOutput && name == TensorNames.TokenEmbedding);
        if (outputLike)
            return t == GgmlType.Q8_0 ? t : GgmlType.Q6_K;   // every row here is a multiple of 256
        if (fileType is not (SynthType.Q4_K_M or SynthType.Q5_K_M)) return t;   // the _M rules: Q6_K where use_more_bits
        if (name == TensorNames.AttnV(layer))
        {
            if (UseMoreBits(layer, layers)) return GgmlType.Q6_K;
            return layers == 80 ? GgmlType.Q5_K : t;      // LLM_TYPE_70B: attn_v Q4_K → Q5_K (Q5_K_M's already is)
        }
        if (name == TensorNames.FfnDown(layer) && UseMoreBits(layer, layers)) return GgmlType.Q6_K;
        return t;
    }
}

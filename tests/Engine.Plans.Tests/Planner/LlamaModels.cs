using Engine.Plans.Gguf;

namespace Engine.Plans.Tests.Planner;

/// <summary>Llama-shaped header-only GGUFs: real tensor infos and sizes, a sparse data region, so a 70B plan
/// costs a few KB of disk. Tensor order is the converter's (token_embd, rope_freqs, blk.0.., output_norm, output).</summary>
public sealed record LlamaShape(string Name, int Layers, int Embd, int Ff, int Heads, int HeadsKv, int Vocab, bool RopeFreqs = false, bool Tied = false)
{
    public static readonly LlamaShape Tiny = new("tiny", 2, 256, 512, 4, 2, 512, Tied: true);
    public static readonly LlamaShape Llama8B = new("Llama-3.1-8B", 32, 4096, 14336, 32, 8, 128256, RopeFreqs: true);
    public static readonly LlamaShape Llama70B = new("Llama-3.1-70B", 80, 8192, 28672, 64, 8, 128256, RopeFreqs: true);
}

public static class LlamaModels
{
    /// <summary>A whole-file type ("Q8_0", "Q6_K", "F32", "Q4_0") or "Q4_K_M", which mixes Q4_K, Q5_K and Q6_K
    /// as llama.cpp's llama_tensor_get_type does (use_more_bits layers get Q6_K attn_v/ffn_down; 70B attn_v Q5_K).</summary>
    public static GgmlType TypeOf(string fileType, string role, int layer, LlamaShape s)
    {
        if (role is "attn_norm" or "ffn_norm" or "output_norm" or "rope_freqs") return GgmlType.F32;
        if (fileType != "Q4_K_M") return Enum.Parse<GgmlType>(fileType);
        bool moreBits = layer < s.Layers / 8 || layer >= 7 * s.Layers / 8 || (layer - s.Layers / 8) % 3 == 2;
        return role switch
        {
            "output" => GgmlType.Q6_K,
            "attn_v" => moreBits ? GgmlType.Q6_K : s.Layers >= 80 ? GgmlType.Q5_K : GgmlType.Q4_K,
            "ffn_down" => moreBits ? GgmlType.Q6_K : GgmlType.Q4_K,
            _ => GgmlType.Q4_K,
        };
    }

    public static string Write(string dir, LlamaShape s, string fileType, Func<string, int, GgmlType>? typeOverride = null)
    {
        var w = new GgufWriter();
        int headDim = s.Embd / s.Heads;
        w.Set(GgufKeys.Architecture, "llama");
        w.Set(GgufKeys.Name, s.Name);
        w.Set(GgufKeys.ContextLength("llama"), 131072u);
        w.Set(GgufKeys.EmbeddingLength("llama"), (uint)s.Embd);
        w.Set(GgufKeys.BlockCount("llama"), (uint)s.Layers);
        w.Set(GgufKeys.FeedForwardLength("llama"), (uint)s.Ff);
        w.Set(GgufKeys.HeadCount("llama"), (uint)s.Heads);
        w.Set(GgufKeys.HeadCountKv("llama"), (uint)s.HeadsKv);
        w.Set(GgufKeys.RmsEpsilon("llama"), 1e-5f);
        w.Set(GgufKeys.RopeFreqBase("llama"), 500000f);
        w.Set(GgufKeys.VocabSize("llama"), (uint)s.Vocab);
        w.Set(GgufKeys.TokenizerModel, "gpt2");
        w.Set(GgufKeys.TokenizerPre, "llama-bpe");
        w.Set(GgufKeys.TokenizerTokens, Enumerable.Range(0, 8).Select(i => "t" + i).ToArray());
        w.Set(GgufKeys.TokenizerBosId, 1u);
        w.Set(GgufKeys.TokenizerEosId, 2u);
        GgmlType T(string role, int layer) => typeOverride?.Invoke(role, layer) ?? TypeOf(fileType, role, layer, s);
        w.AddTensor(TensorNames.TokenEmbedding, T("token_embd", -1), s.Embd, s.Vocab);
        if (s.RopeFreqs) w.AddTensor(TensorNames.RopeFreqs, GgmlType.F32, headDim / 2);
        for (int l = 0; l < s.Layers; l++)
        {
            w.AddTensor(TensorNames.AttnNorm(l), T("attn_norm", l), s.Embd);
            w.AddTensor(TensorNames.AttnQ(l), T("attn_q", l), s.Embd, s.Heads * headDim);
            w.AddTensor(TensorNames.AttnK(l), T("attn_k", l), s.Embd, s.HeadsKv * headDim);
            w.AddTensor(TensorNames.AttnV(l), T("attn_v", l), s.Embd, s.HeadsKv * headDim);
            w.AddTensor(TensorNames.AttnOutput(l), T("attn_output", l), s.Heads * headDim, s.Embd);
            w.AddTensor(TensorNames.FfnNorm(l), T("ffn_norm", l), s.Embd);
            w.AddTensor(TensorNames.FfnGate(l), T("ffn_gate", l), s.Embd, s.Ff);
            w.AddTensor(TensorNames.FfnUp(l), T("ffn_up", l), s.Embd, s.Ff);
            w.AddTensor(TensorNames.FfnDown(l), T("ffn_down", l), s.Ff, s.Embd);
        }
        w.AddTensor(TensorNames.OutputNorm, GgmlType.F32, s.Embd);
        if (!s.Tied) w.AddTensor(TensorNames.Output, T("output", -1), s.Embd, s.Vocab);
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, $"{s.Name}-{fileType}.gguf");
        w.WriteHeaderOnly(path);
        return path;
    }
}

/// <summary>A temporary directory removed at dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "engine-planner-" + Guid.NewGuid().ToString("N")[..12]);
    public TempDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

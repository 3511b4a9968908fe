using Engine.Graph;

namespace Engine.Plans.Cli;

/// <summary>The Llama layer program written by hand, until the generator emits it from src/Graph/llama.graph
/// (then this file goes and ntc takes the generated instance). The planner itself only consumes a
/// <see cref="LayerProgram"/>; nothing in src/Plans depends on these ops. Decode, one token: llama.cpp's
/// llm_build_llama graph with the fused ops the kernels provide.</summary>
public static class InterimLlamaProgram
{
    public static LayerProgram Build()
    {
        static GraphTensor W(string name, string role, bool perLayer, params string[] shape) => new(name, TensorRole.Weight, shape, role, perLayer);
        static GraphTensor A(string name, params string[] shape) => new(name, TensorRole.Activation, shape);
        var tensors = new List<GraphTensor>
        {
            new("tokens", TensorRole.Input, ["n_batch"]),
            new("pos", TensorRole.Input, ["n_batch"]),
            W("token_embd", "token_embd", false, "n_embd", "n_vocab"),
            W("attn_norm", "attn_norm", true, "n_embd"),
            W("attn_q", "attn_q", true, "n_embd", "n_head*head_dim"),
            W("attn_k", "attn_k", true, "n_embd", "n_head_kv*head_dim"),
            W("attn_v", "attn_v", true, "n_embd", "n_head_kv*head_dim"),
            W("attn_output", "attn_output", true, "n_head*head_dim", "n_embd"),
            W("ffn_norm", "ffn_norm", true, "n_embd"),
            W("ffn_gate", "ffn_gate", true, "n_embd", "n_ff"),
            W("ffn_up", "ffn_up", true, "n_embd", "n_ff"),
            W("ffn_down", "ffn_down", true, "n_ff", "n_embd"),
            W("output_norm", "output_norm", false, "n_embd"),
            W("output", "output", false, "n_embd", "n_vocab"),
            W("rope_freqs", "rope_freqs", false, "head_dim/2"),
            A("x", "n_embd"),                       // residual stream, carried across layers
            A("xn", "n_embd"),                      // normalised input of a block
            A("q", "n_head*head_dim"),
            A("k", "n_head_kv*head_dim"),
            A("v", "n_head_kv*head_dim"),
            A("attn", "n_head*head_dim"),
            A("scores", "n_ctx", "n_head"),         // attention probabilities of one step
            A("proj", "n_embd"),                    // attn_output / ffn_down result before the residual add
            A("h", "n_ff"),                         // silu(gate) * up
            new("k_cache", TensorRole.KvCache, ["n_head_kv*head_dim", "n_ctx"], PerLayer: true),
            new("v_cache", TensorRole.KvCache, ["n_head_kv*head_dim", "n_ctx"], PerLayer: true),
            new("logits", TensorRole.Output, ["n_vocab"]),
        };
        GraphOp Op(OpKind k, string name, string[] ins, string[] outs, string? w = null) => new(k, name, ins, outs, w);
        var prologue = new[] { Op(OpKind.Embedding, "embed", ["tokens"], ["x"], "token_embd") };
        var layer = new[]
        {
            Op(OpKind.RmsNorm, "attn_norm", ["x"], ["xn"], "attn_norm"),
            Op(OpKind.MatMul, "q", ["xn"], ["q"], "attn_q"),
            Op(OpKind.MatMul, "k", ["xn"], ["k"], "attn_k"),
            Op(OpKind.MatMul, "v", ["xn"], ["v"], "attn_v"),
            Op(OpKind.Rope, "rope_q", ["q", "pos", "rope_freqs"], ["q"]),
            Op(OpKind.Rope, "rope_k", ["k", "pos", "rope_freqs"], ["k"]),
            Op(OpKind.KvStore, "kv_store", ["k", "v", "pos"], ["k_cache", "v_cache"]),
            Op(OpKind.Attention, "attention", ["q", "k_cache", "v_cache", "pos"], ["attn", "scores"]),
            Op(OpKind.MatMul, "attn_out", ["attn"], ["proj"], "attn_output"),
            Op(OpKind.Add, "attn_res", ["x", "proj"], ["x"]),
            Op(OpKind.RmsNorm, "ffn_norm", ["x"], ["xn"], "ffn_norm"),
            Op(OpKind.MatMulSwiGlu, "gate_up", ["xn", "ffn_up"], ["h"], "ffn_gate"),
            Op(OpKind.MatMul, "down", ["h"], ["proj"], "ffn_down"),
            Op(OpKind.Add, "ffn_res", ["x", "proj"], ["x"]),
        };
        var epilogue = new[]
        {
            Op(OpKind.RmsNorm, "out_norm", ["x"], ["xn"], "output_norm"),
            Op(OpKind.MatMul, "output", ["xn"], ["logits"], "output"),
        };
        return new LayerProgram("llama", tensors, prologue, layer, epilogue);
    }
}

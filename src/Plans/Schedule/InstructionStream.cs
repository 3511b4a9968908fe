using Engine.Graph;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>Builds one token step's instruction stream from the layer program: prologue, the body once per layer
/// (with the streamed layers' wait/prefetch around it), epilogue. <paramref name="launch"/> turns an op of a layer
/// (-1 outside the body) into its launches (<see cref="KernelBinding.Launches"/>: one, or a fused op's unfused launches
/// in a layer whose weights the fused kernel cannot take): the kernel of each op is its family × the
/// type of the weight it reads (Q4_K_M files mix Q4_K, Q5_K and Q6_K, so the same op may use different kernels in
/// different layers).</summary>
public static class InstructionStream
{
    /// <param name="streamOrder">stream index per layer (-1 resident); slot = index % slots.</param>
    public static List<Instruction> Build(LayerProgram program, int layerCount, int[] streamOrder, int slots, Func<GraphOp, int, IEnumerable<Instruction>> launch)
    {
        var list = new List<Instruction>();
        var streamedLayers = Enumerable.Range(0, layerCount).Where(l => streamOrder[l] >= 0).OrderBy(l => streamOrder[l]).ToList();
        for (int j = 0; j < Math.Min(slots, streamedLayers.Count); j++) list.Add(new Instruction(Opcode.Prefetch, streamedLayers[j]));
        foreach (var op in program.Prologue) list.AddRange(launch(op, -1));
        for (int l = 0; l < layerCount; l++)
        {
            int j = streamOrder[l];
            if (j >= 0) list.Add(new Instruction(Opcode.Wait, l));
            foreach (var op in program.Layer) list.AddRange(launch(op, l));
            if (j >= 0 && j + slots < streamedLayers.Count) list.Add(new Instruction(Opcode.Prefetch, streamedLayers[j + slots]));
        }
        foreach (var op in program.Epilogue) list.AddRange(launch(op, -1));
        return list;
    }
}

using Engine.Graph;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>Resolves a program op's operand to a plan argument for a given layer (-1 outside the body).</summary>
public delegate KernelArg OperandResolver(string graphTensor, int layer);

/// <summary>Builds one token step's instruction stream from the layer program: prologue, the body once per layer
/// (with the streamed layers' wait/prefetch around it), epilogue. The kernel of each op is its family × the type
/// of the weight it reads (Q4_K_M files mix Q4_K, Q5_K and Q6_K, so the same op may use different kernels in
/// different layers).</summary>
public static class InstructionStream
{
    public sealed record Result(List<Instruction> Instructions, List<KernelInfo> Kernels);

    /// <param name="weightType">ggml type of the weight an op reads in a layer, or null when the weight is absent.</param>
    /// <param name="streamOrder">stream index per layer (-1 resident); slot = index % slots.</param>
    public static Result Build(LayerProgram program, int layerCount, int[] streamOrder, int slots,
        OperandResolver resolve, Func<string, int, uint?> weightType, Func<string, long> elements, int heads)
    {
        var list = new List<Instruction>();
        var kernels = new SortedDictionary<uint, KernelInfo>();
        var streamedLayers = Enumerable.Range(0, layerCount).Where(l => streamOrder[l] >= 0).OrderBy(l => streamOrder[l]).ToList();
        for (int j = 0; j < Math.Min(slots, streamedLayers.Count); j++) list.Add(new Instruction(Opcode.Prefetch, streamedLayers[j]));
        foreach (var op in program.Prologue) list.Add(Launch(op, -1));
        for (int l = 0; l < layerCount; l++)
        {
            int j = streamOrder[l];
            if (j >= 0) list.Add(new Instruction(Opcode.Wait, l));
            foreach (var op in program.Layer) list.Add(Launch(op, l));
            if (j >= 0 && j + slots < streamedLayers.Count) list.Add(new Instruction(Opcode.Prefetch, streamedLayers[j + slots]));
        }
        foreach (var op in program.Epilogue) list.Add(Launch(op, -1));
        return new Result(list, kernels.Values.ToList());

        Instruction Launch(GraphOp op, int layer)
        {
            var args = new List<KernelArg>();
            uint wtype = PlanFormat.NoWeightType;
            if (op.Weight != null)
            {
                var a = resolve(op.Weight, layer);
                args.Add(a);
                wtype = weightType(op.Weight, layer) ?? PlanFormat.NoWeightType;
            }
            foreach (var n in op.Inputs) if (n != op.Weight) args.Add(resolve(n, layer));
            foreach (var n in op.Outputs) args.Add(resolve(n, layer));
            long rows, cols;
            if (op.Kind is OpKind.MatMul or OpKind.MatMulSwiGlu && op.Weight != null)
            {
                cols = elements(op.Inputs.First(n => n != op.Weight));
                rows = elements(op.Outputs[0]);
                args.Add(new KernelArg(ArgKind.Immediate, cols));
                args.Add(new KernelArg(ArgKind.Immediate, rows));
            }
            else
            {
                cols = elements(op.Outputs.Count > 0 ? op.Outputs[0] : op.Inputs[0]);
                rows = 1;
                args.Add(new KernelArg(ArgKind.Immediate, cols));
            }
            uint id = PlanFormat.KernelId((int)op.Kind, wtype);
            if (!kernels.ContainsKey(id))
            {
                string type = wtype == PlanFormat.NoWeightType ? "" : ((Engine.Plans.Gguf.GgmlType)wtype).ToString();
                kernels[id] = new KernelInfo(id, op.Kind.ToString(), wtype, type.Length == 0 ? op.Kind.ToString() : op.Kind + "_" + type);
            }
            return new Instruction(Opcode.Launch, layer, id, op.Name, Shape(op.Kind, rows, cols, heads), args.ToArray());
        }
    }

    /// <summary>Launch shapes of plan version 1 (docs/plan-format.md "instructions"), until the generated
    /// launchers supply their grid rules.</summary>
    private static LaunchShape Shape(OpKind kind, long rows, long n, int heads)
    {
        static uint Ceil(long a, long b) => (uint)((a + b - 1) / b);
        return kind switch
        {
            OpKind.MatMul or OpKind.MatMulSwiGlu => new LaunchShape(Ceil(rows, 8), 1, 1, 256, 1, 1, 0),
            OpKind.RmsNorm => new LaunchShape(1, 1, 1, 256, 1, 1, 0),
            OpKind.Attention => new LaunchShape((uint)Math.Max(1, heads), 1, 1, 128, 1, 1, 0),
            _ => new LaunchShape(Ceil(n, 256), 1, 1, 256, 1, 1, 0),
        };
    }
}

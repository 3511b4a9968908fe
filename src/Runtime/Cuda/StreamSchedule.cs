using Engine.Plans.PlanFile;

namespace Engine.Runtime.Cuda;

/// <summary>What the host does at one point of a step: a kernel launch on the compute stream, or one of the three
/// streaming actions. <see cref="Index"/> is the launch's index in the launch list for <see cref="StepKind.Launch"/>,
/// the streamed layer's stream index otherwise.</summary>
public enum StepKind : byte
{
    /// <summary>cuLaunchKernel on the compute stream.</summary>
    Launch,
    /// <summary>The plan's prefetch: on the transfer stream, wait for the slot's 'released' event, copy the layer's
    /// image into its slot (tier C: after the host read it into staging), record the layer's 'loaded' event.</summary>
    Prefetch,
    /// <summary>The plan's wait: the compute stream waits for the layer's 'loaded' event.</summary>
    Wait,
    /// <summary>Not in the plan: after the layer's last launch, record its slot's 'released' event on the compute
    /// stream (the next copy into that slot waits for it).</summary>
    Release,
}

public readonly record struct Step(StepKind Kind, int Index);

/// <summary>The host-side order of one step of a streamed plan, built once at load from the plan's instruction stream
/// (launch, prefetch, wait) with a <see cref="StepKind.Release"/> added after each streamed layer's last launch, and
/// checked by replaying it against the slots (<see cref="Verify"/>). Events order the two streams, but only in the order
/// the host issues them: cuStreamWaitEvent waits for the most recent cuEventRecord issued before it. So a copy into a
/// slot is safe exactly when, in this host order, the release of the slot's previous occupant comes before the copy's
/// prefetch; a launch reads its weights exactly when its layer's wait came before it. Verify checks both, for a pass
/// that follows an earlier pass (every slot released), which is every pass: each runs the same steps.</summary>
public static class StreamSchedule
{
    /// <summary>The steps of one pass of <paramref name="plan"/>. Launches are numbered in instruction order (the
    /// runtime's launch list). A plan with no streamed layer gives only launches. One-line
    /// <see cref="CudaPlanException"/> when the stream is malformed.</summary>
    public static Step[] Build(Plan plan)
    {
        var ins = plan.Instructions;
        var lastLaunch = new int[plan.Layers.Count];
        Array.Fill(lastLaunch, -1);
        for (int i = 0; i < ins.Count; i++)
            if (ins[i].Opcode == Opcode.Launch && ins[i].Layer >= 0) lastLaunch[ins[i].Layer] = i;

        var steps = new List<Step>(ins.Count + plan.Layers.Count);
        int launch = 0;
        for (int i = 0; i < ins.Count; i++)
        {
            var x = ins[i];
            switch (x.Opcode)
            {
                case Opcode.Launch:
                    steps.Add(new Step(StepKind.Launch, launch++));
                    if (x.Layer >= 0 && lastLaunch[x.Layer] == i && plan.Layers[x.Layer].Tier != Tier.A)
                        steps.Add(new Step(StepKind.Release, plan.Layers[x.Layer].StreamIndex));
                    break;
                case Opcode.Prefetch:
                case Opcode.Wait:
                    if (x.Layer < 0 || x.Layer >= plan.Layers.Count || plan.Layers[x.Layer].Tier == Tier.A)
                        throw new CudaPlanException($"instruction {i}: {x.Opcode} of layer {x.Layer}, which is not a streamed layer: re-run ntc plan");
                    steps.Add(new Step(x.Opcode == Opcode.Prefetch ? StepKind.Prefetch : StepKind.Wait, plan.Layers[x.Layer].StreamIndex));
                    break;
                default:
                    throw new CudaPlanException($"instruction {i}: opcode {(int)x.Opcode} is unknown to this runtime: re-run ntc plan");
            }
        }
        var result = steps.ToArray();
        var slotOf = new int[plan.Layers.Count(l => l.Tier != Tier.A)];
        var layerOfLaunch = plan.Instructions.Where(x => x.Opcode == Opcode.Launch)
            .Select(x => x.Layer >= 0 && plan.Layers[x.Layer].Tier != Tier.A ? plan.Layers[x.Layer].StreamIndex : -1).ToArray();
        foreach (var l in plan.Layers.Where(l => l.Tier != Tier.A))
        {
            if (l.StreamIndex < 0 || l.StreamIndex >= slotOf.Length || l.Slot < 0 || l.Slot >= plan.Inputs.Slots)
                throw new CudaPlanException($"streamed layer with stream index {l.StreamIndex}, slot {l.Slot}: outside {slotOf.Length} streamed layers / {plan.Inputs.Slots} slots: re-run ntc plan");
            slotOf[l.StreamIndex] = l.Slot;
        }
        if (Verify(result, slotOf, plan.Inputs.Slots, layerOfLaunch) is { } why)
            throw new CudaPlanException($"the plan's prefetch/wait order is unsafe for two streams: {why}: re-run ntc plan");
        return result;
    }

    /// <summary>Replays one pass against the slots, starting with every slot released (as after any earlier pass):
    /// null when every copy lands in a released slot, every launch of a streamed layer runs after its wait and before its
    /// release while its slot holds it, and every streamed layer is prefetched, waited for and released exactly once;
    /// else the first violation. <paramref name="slotOf"/>: slot per stream index; <paramref name="streamIndexOfLaunch"/>:
    /// per launch, the stream index of its layer, −1 for resident layers and globals.</summary>
    public static string? Verify(ReadOnlySpan<Step> steps, int[] slotOf, int slots, int[] streamIndexOfLaunch)
    {
        int n = slotOf.Length;
        var occupant = new int[slots];
        var released = new bool[slots];
        Array.Fill(occupant, -1);
        Array.Fill(released, true);
        var prefetched = new bool[n];
        var waited = new bool[n];
        var done = new bool[n];
        foreach (var s in steps)
        {
            switch (s.Kind)
            {
                case StepKind.Launch:
                {
                    int j = streamIndexOfLaunch[s.Index];
                    if (j < 0) break;
                    if (!waited[j]) return $"a launch of stream index {j} comes before its wait";
                    if (done[j]) return $"a launch of stream index {j} comes after its release";
                    break;
                }
                case StepKind.Prefetch:
                {
                    int k = slotOf[s.Index];
                    if (prefetched[s.Index]) return $"stream index {s.Index} is prefetched twice in a pass";
                    if (!released[k]) return $"stream index {s.Index} is copied into slot {k} before stream index {occupant[k]} released it";
                    prefetched[s.Index] = true;
                    occupant[k] = s.Index;
                    released[k] = false;
                    break;
                }
                case StepKind.Wait:
                    if (!prefetched[s.Index] || occupant[slotOf[s.Index]] != s.Index)
                        return $"stream index {s.Index} is waited for while its slot does not hold it";
                    if (waited[s.Index]) return $"stream index {s.Index} is waited for twice in a pass";
                    waited[s.Index] = true;
                    break;
                case StepKind.Release:
                {
                    int k = slotOf[s.Index];
                    if (!waited[s.Index] || occupant[k] != s.Index || done[s.Index]) return $"stream index {s.Index} is released while not loaded";
                    done[s.Index] = true;
                    released[k] = true;
                    break;
                }
            }
        }
        for (int j = 0; j < n; j++)
            if (!done[j]) return $"stream index {j} is not prefetched, waited for and released in every pass";
        return null;
    }
}

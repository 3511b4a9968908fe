using Engine.Plans.PlanFile;
using Engine.Runtime.Cuda;
using Engine.Runtime.Tests.Streaming;
using Xunit;

namespace Engine.Runtime.Tests.Cuda;

/// <summary>The host-side order the CUDA backend issues a streamed plan's launches, copies and events in
/// (<see cref="StreamSchedule"/>), built from the streaming tests' GPU-profile plans (tiers B and C, 2 and 3 slots):
/// it must be safe (every copy into a released slot, every launch between its layer's wait and release), and a plan
/// whose order is not must be refused in one line. Runs without a GPU.</summary>
public sealed class StreamScheduleTests
{
    public static TheoryData<string> GpuPlans() => new() { "all-B", "B+C", "A+B+C", "B+C 3 slots", "Q4_K_M A+B+C" };

    private static Plan Load(string name) => PlanReader.Load(StreamedPlanTests.PlanFor(name));

    [Theory]
    [MemberData(nameof(GpuPlans))]
    public void Each_streamed_layer_is_prefetched_waited_for_and_released_once_per_pass_around_its_launches(string name)
    {
        var plan = Load(name);
        int streamed = plan.Layers.Count(l => l.Tier != Tier.A);
        Assert.True(streamed > 0);
        var steps = StreamSchedule.Build(plan);

        Assert.Equal(plan.Instructions.Count(i => i.Opcode == Opcode.Launch), steps.Count(s => s.Kind == StepKind.Launch));
        Assert.Equal(Enumerable.Range(0, plan.Instructions.Count(i => i.Opcode == Opcode.Launch)),
            steps.Where(s => s.Kind == StepKind.Launch).Select(s => s.Index));
        foreach (var kind in new[] { StepKind.Prefetch, StepKind.Wait, StepKind.Release })
            Assert.Equal(Enumerable.Range(0, streamed), steps.Where(s => s.Kind == kind).Select(s => s.Index).Order());

        // Each release directly follows the last launch of its layer, and the next copy into that slot comes after it.
        var launches = plan.Instructions.Where(i => i.Opcode == Opcode.Launch).ToArray();
        for (int p = 0; p < steps.Length; p++)
        {
            if (steps[p].Kind != StepKind.Release) continue;
            int j = steps[p].Index;
            var layer = plan.Layers.Single(l => l.StreamIndex == j);
            Assert.Equal(StepKind.Launch, steps[p - 1].Kind);
            Assert.Equal(plan.Layers.ToList().IndexOf(layer), launches[steps[p - 1].Index].Layer);
            int next = j + plan.Inputs.Slots;
            if (next < streamed)
                Assert.True(Array.FindIndex(steps, s => s.Kind == StepKind.Prefetch && s.Index == next) > p);
        }
    }

    [Fact]
    public void A_resident_plan_is_its_launches_only()
    {
        var plan = PlanReader.Load(StreamedPlanTests.PlanFor("all-B")) is var streamedPlan
            ? streamedPlan with
            {
                Layers = streamedPlan.Layers.Select(l => l with { Tier = Tier.A, StreamIndex = -1, Slot = -1 }).ToList(),
                Instructions = streamedPlan.Instructions.Where(i => i.Opcode == Opcode.Launch).ToList(),
            }
            : throw new InvalidOperationException();
        var steps = StreamSchedule.Build(plan);
        Assert.All(steps, s => Assert.Equal(StepKind.Launch, s.Kind));
        Assert.Equal(plan.Instructions.Count, steps.Length);
    }

    [Fact]
    public void A_copy_issued_before_the_slot_is_released_is_refused_in_one_line()
    {
        var plan = Load("all-B");   // 5 streamed layers, 2 slots
        var ins = plan.Instructions.ToList();
        // Move the prefetch of stream index 2 (slot 0) to the start of the pass, right after those of 0 and 1: before
        // stream index 0 released slot 0.
        int layer2 = plan.Layers.ToList().FindIndex(l => l.StreamIndex == 2);
        int at = ins.FindIndex(i => i.Opcode == Opcode.Prefetch && i.Layer == layer2);
        var prefetch = ins[at];
        ins.RemoveAt(at);
        Assert.Equal([Opcode.Prefetch, Opcode.Prefetch], ins.Take(2).Select(i => i.Opcode));   // stream indices 0 and 1
        ins.Insert(2, prefetch);
        var e = Assert.Throws<CudaPlanException>(() => StreamSchedule.Build(plan with { Instructions = ins }));
        Assert.Contains("stream index 2 is copied into slot 0 before stream index 0 released it", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_launch_without_its_wait_is_refused()
    {
        var plan = Load("B+C");
        var ins = plan.Instructions.ToList();
        ins.RemoveAt(ins.FindIndex(i => i.Opcode == Opcode.Wait));
        var e = Assert.Throws<CudaPlanException>(() => StreamSchedule.Build(plan with { Instructions = ins }));
        Assert.Contains("comes before its wait", e.Message);
    }

    [Theory]
    [MemberData(nameof(GpuPlans))]
    public void Streamed_tensors_bind_inside_their_layers_slot_at_the_files_alignment(string name)
    {
        // CudaStreamer copies each image to device + slot_offset; the launches bind device + device_offset (fixed at
        // load by ArgumentBlocks.Pack). They agree when every tensor of a streamed layer sits where the image puts it.
        var plan = Load(name);
        var slots = plan.Buffers.Where(b => b.Role == BufferRole.Slot).ToList();
        Assert.Equal(plan.Inputs.Slots, slots.Count);
        foreach (var t in plan.Tensors.Where(t => t.Tier is Tier.B or Tier.C))
        {
            var layer = plan.Layers[t.Layer];
            Assert.Equal(Arenas.Device, t.DeviceArena);
            Assert.Equal(layer.SlotOffset + t.FileOffset - layer.ImageFileOffset, t.DeviceOffset);
            Assert.InRange(t.DeviceOffset + t.Size, t.DeviceOffset, layer.SlotOffset + layer.ImageSize);
            var slot = slots.Single(b => b.Offset == layer.SlotOffset);
            Assert.True(layer.ImageSize <= slot.Size);
            Assert.Equal(0, layer.SlotOffset % 4096);
            Assert.DoesNotContain(plan.Layers, l => l.Tier != Tier.A && l.Slot == layer.Slot && l.SlotOffset != layer.SlotOffset);
        }
    }
}

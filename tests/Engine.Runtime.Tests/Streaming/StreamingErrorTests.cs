using Engine.Runtime.Cli;
using Engine.Runtime.Streaming;
using Engine.Runtime.Tests.EndToEnd;
using Engine.Tests;
using Xunit;

namespace Engine.Runtime.Tests.Streaming;

/// <summary>A plan made with <c>--nvme IMAGE --lba 2</c>, where IMAGE is a regular file standing in for a raw device
/// written the seed's way (8 KiB, then the GGUF, as <c>dd seek=2 bs=4096</c> leaves it): the LBA path must give the
/// resident plan's logits, and a source that is shorter than the plan, or shrinks while streaming, must stop
/// generation with one line naming it. Also ntrun's side: the streaming table of --benchmark and one-line refusals.</summary>
[Collection("Console")]
public sealed class StreamingErrorTests
{
    private const int LbaBase = 2;

    /// <summary>A fresh device image of the GGUF and its plan (each test gets its own: some damage theirs).</summary>
    private static (string Image, string Plan) DeviceImagePlan(string tag)
    {
        string image = TestPlans.TempFile($"device-{tag}.img");
        using (var o = File.Create(image))
        {
            o.Write(new byte[LbaBase * ReadCommand.BlockSize]);
            using var model = File.OpenRead(RepoPaths.Model("stories260K.gguf"));
            model.CopyTo(o);
        }
        string plan = TestPlans.Make(RepoPaths.Model("stories260K.gguf"), TestPlans.TempFile($"device-{tag}.plan"),
            "--hw", StreamedPlanTests.TinyGpu, "--vram-budget", "828K", "--ram-budget", "1000K", "--ctx", "128",
            "--nvme", image, "--lba", LbaBase.ToString());
        return (image, plan);
    }

    private static LoadedPlan Load(string plan) => LoadedPlan.Load(plan, threads: 2,
        options: new PlanRunOptions { Backend = BackendKind.Cpu, Streaming = new StreamingOptions { Notices = TextWriter.Null } });

    [Fact]
    public void Raw_device_LBAs_give_the_resident_logits()
    {
        var (_, planPath) = DeviceImagePlan("ok");
        int[] tokens = [1, 403, 407, 261, 378];
        using var resident = TestPlans.Load("stories260K");
        using var streamed = Load(planPath);
        Assert.Equal(Engine.Plans.PlanFile.NvmeMode.Device, streamed.Plan.Inputs.NvmeMode);
        Assert.Equal(3, streamed.Plan.Layers.Count(l => l.Tier == Engine.Plans.PlanFile.Tier.C));
        var expected = new float[tokens.Length * resident.Model.Config.VocabSize];
        var actual = new float[expected.Length];
        resident.Model.Forward(tokens, 0, expected);
        streamed.Model.Forward(tokens, 0, actual);
        Assert.True(expected.AsSpan().SequenceEqual(actual));
    }

    [Fact]
    public void A_source_that_shrinks_while_streaming_stops_generation_with_one_line()
    {
        var (image, planPath) = DeviceImagePlan("shrinks");
        using var streamed = Load(planPath);
        var logits = new float[streamed.Model.Config.VocabSize];
        streamed.Model.Forward([1], 0, logits);
        using (var f = new FileStream(image, FileMode.Open, FileAccess.Write)) f.SetLength(LbaBase * ReadCommand.BlockSize + 300_000);

        // Reads run at most one pass ahead, so a read after the truncation fails within two more passes.
        var e = Assert.Throws<StreamingException>(() =>
        {
            for (int pos = 1; pos < 4; pos++) streamed.Model.Forward([1], pos, logits);
        });
        Assert.Contains(image, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // The streamer stays faulted: the next token gets the same line, not garbage.
        Assert.Equal(e.Message, Assert.Throws<StreamingException>(() => streamed.Model.Forward([1], 5, logits)).Message);
    }

    [Fact]
    public void A_source_that_does_not_match_the_plan_is_refused_at_load()
    {
        var (image, planPath) = DeviceImagePlan("longer");
        File.AppendAllText(image, "appended after planning");
        var e = Assert.Throws<StreamingException>(() => Load(planPath));
        Assert.Contains(image, e.Message);
        Assert.Contains("re-plan", e.Message);

        var (code, _, err) = Ntrun(planPath, "--backend", "cpu", "-n", "4", "--temp", "0");
        Assert.Equal(1, code);
        Assert.Equal("ntrun: " + e.Message, Assert.Single(Lines(err)));
    }

    [Fact]
    public void Mmap_baseline_of_a_raw_device_plan_is_refused_in_one_line()
    {
        var (_, planPath) = DeviceImagePlan("mmap");
        var (code, _, err) = Ntrun(planPath, "--backend", "cpu", "--stream-from", "mmap", "-n", "4");
        Assert.Equal(1, code);
        Assert.Contains("--stream-from mmap", Assert.Single(Lines(err)));
        Assert.Equal(2, Ntrun(planPath, "--stream-from", "page-cache").Code);
    }

    [Fact]
    public void A_gpu_plan_runs_on_this_cpu_only_with_backend_cpu()
    {
        string plan = StreamedPlanTests.PlanFor("B+C");
        var refused = Ntrun(plan, "-n", "4", "--temp", "0");
        if (!Engine.Plans.Hardware.HardwareProbe.Probe(null).IsCpu) return;   // a GPU box has its own GPU, never "Test GPU"
        Assert.Equal(1, refused.Code);
        Assert.Contains("made for", refused.Err);
        var ran = Ntrun(plan, "--backend", "cpu", "-n", "4", "--temp", "0", "--ids", "-t", "2");
        Assert.Equal(0, ran.Code);
        Assert.Matches(@"^\d+( \d+){3}\s*$", ran.Out);   // four ids, no notice: the cpu backend was asked for
        Assert.DoesNotContain("ntrun: using", ran.Err);
    }

    [Fact]
    public void Benchmark_of_a_streamed_plan_prints_each_link_beside_the_plan()
    {
        string plan = StreamedPlanTests.PlanFor("B+C");
        var (code, output, _) = Ntrun(plan, "--backend", "cpu", "--benchmark", "-n", "8", "-r", "1", "-t", "2", "--prompt-ids", "1 2 3 4");
        Assert.Equal(0, code);
        Assert.Contains("streaming over tg8: 5 of 5 layers through 2 slots", output);
        // Measured bytes per token equal the plan's: 2 tier-B and 3 tier-C images.
        string[] rows = output.Split('\n');
        string pinned = Assert.Single(rows, r => r.StartsWith("| pinned → slot", StringComparison.Ordinal));
        string reads = Assert.Single(rows, r => r.StartsWith("| storage → staging", StringComparison.Ordinal));
        Assert.Single(rows, r => r.StartsWith("| staging → slot", StringComparison.Ordinal));
        foreach (var row in new[] { pinned, reads })
        {
            var cells = row.Split('|', StringSplitOptions.TrimEntries);
            Assert.Equal(cells[3], cells[4]);        // bytes/token = plan bytes/token
            Assert.NotEqual("-", cells[6]);          // an achieved rate
        }
        Assert.Contains("compute waited for weights", output);
    }

    /// <summary>stderr's lines but the O_DIRECT fallback notice (a filesystem such as tmpfs refuses O_DIRECT).</summary>
    private static string[] Lines(string err) =>
        err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => !l.StartsWith("note:", StringComparison.Ordinal)).ToArray();

    private static (int Code, string Out, string Err) Ntrun(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Run(args, new StringReader("")), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }
}

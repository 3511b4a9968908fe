using Engine.Plans.Hardware;
using Engine.Plans.IoLists;
using Engine.Plans.PlanFile;
using Xunit;

namespace Engine.Plans.Tests.Planner;

public sealed class PlannerHardwareTests
{
    [Theory]
    [InlineData("rtx3090-48g", "cuda", 86, 24L << 30, 6.5e9)]
    [InlineData("rtx4090-64g", "cuda", 89, 24L << 30, 25e9)]
    [InlineData("h100-80g", "cuda", 90, 80L << 30, 55e9)]
    [InlineData("cpu-only", "cpu", 0, 0L, 0.0)]
    public void Shipped_profiles(string name, string backend, int sm, long vram, double h2d)
    {
        var p = HardwareProfiles.Resolve(name);
        Assert.Equal((name, backend, sm, vram, h2d), (p.Name, p.Backend, p.Sm, p.VramBytes, p.H2dBandwidth));
        Assert.True(p.RamBytes > 0 && p.DeviceBandwidth > 0);
        if (name == "h100-80g") Assert.Equal(3.0e12, p.DeviceBandwidth);
    }

    [Fact]
    public void Profile_file_errors_are_one_line()
    {
        using var dir = new TempDir();
        string f = dir.File("my.json");
        File.WriteAllText(f, """{ "backend": "cuda", "gpu": "X", "vram": "lots", "ram": "8G", "h2d_gbps": 1, "device_gbps": 100 }""");
        var e = Assert.Throws<PlanException>(() => HardwareProfiles.Resolve(f));
        Assert.Contains("vram = \"lots\"", e.Message);
        File.WriteAllText(f, "{ nope");
        Assert.Contains("not valid JSON", Assert.Throws<PlanException>(() => HardwareProfiles.Resolve(f)).Message);
        File.WriteAllText(f, """{ "backend": "cuda", "gpu": "X", "sm": 80, "vram": "40GiB", "ram": 68719476736, "h2d_gbps": 20, "device_gbps": 1500, "nvme": { "read_gbps": 7, "block_size": 512, "max_transfer": "1MiB" } }""");
        var p = HardwareProfiles.Resolve(f);
        Assert.Equal((40L << 30, 64L << 30, 512, 1 << 20), (p.VramBytes, p.RamBytes, p.Nvme!.BlockSize, p.Nvme.MaxTransfer));
        Assert.Equal("my", p.Name);
    }

    [Fact]
    public void Auto_probe_answers_on_any_machine()
    {
        var p = HardwareProbe.Probe(null);
        Assert.True(p.RamBytes > 0);
        Assert.True(p.IsCpu || (p.VramBytes > 0 && p.Sm > 0));
    }

    [Fact]
    public void Pcie_max_link_from_sysfs()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("max_link_speed"), "8.0 GT/s PCIe\n");
        File.WriteAllText(dir.File("max_link_width"), "8\n");
        Assert.Equal((3, 8), HardwareProbe.PcieMaxLink(dir.Path));
        File.WriteAllText(dir.File("max_link_speed"), "32.0 GT/s PCIe\n");
        File.WriteAllText(dir.File("max_link_width"), "16\n");
        Assert.Equal((5, 16), HardwareProbe.PcieMaxLink(dir.Path));
        // Gen3 x8 at 82 % of the payload rate is the seed's measured 6.5 GB/s.
        Assert.InRange(HardwareProbe.PcieLaneBytes(3) * 8 * HardwareProbe.PcieEfficiency, 6.3e9, 6.7e9);
    }

    [Theory]
    [InlineData("24G", 24L << 30)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("1.5T", 3L << 39)]
    [InlineData("4096", 4096L)]
    public void Sizes(string text, long bytes)
    {
        Assert.True(ByteSize.TryParse(text, out long b));
        Assert.Equal(bytes, b);
    }

    [Fact]
    public void Device_lbas_in_512_byte_blocks_from_base()
    {
        var src = new NvmeSource(NvmeMode.Device, "/dev/nvme0n1", 2048, 512, 128 << 10);
        var cmds = IoListBuilder.ForImage(src, 3 * 4096, 300 << 10, 8192);
        Assert.Equal([new IoCommand(2048 + 24, 256, 8192), new IoCommand(2048 + 24 + 256, 256, 8192 + (128 << 10)), new IoCommand(2048 + 24 + 512, 88, 8192 + (256 << 10))], cmds);
        var file = IoListBuilder.ForImage(src with { Mode = NvmeMode.File, LbaBase = 0 }, 3 * 4096, 300 << 10, 0);
        Assert.Equal(new IoCommand(3, 32, 0), file[0]);
        Assert.Equal((3 * 4096L, 128L << 10), IoListBuilder.FileRange(src with { Mode = NvmeMode.File, LbaBase = 0 }, file[0]));
    }
}

using Engine.Plans.PlanFile;

namespace Engine.Plans.IoLists;

/// <summary>The NVMe source of tier-C layers: the GGUF file read with O_DIRECT (LBAs are the file's 4 KiB logical
/// blocks), or a raw device holding the GGUF from <see cref="LbaBase"/> (the seed's <c>dd</c> layout).</summary>
public sealed record NvmeSource(NvmeMode Mode, string Device, long LbaBase, int BlockSize, int MaxTransfer)
{
    public const int Alignment = 4096;
}

/// <summary>Read commands for one layer image: [start, start + size) of the GGUF (already 4 KiB aligned) split into
/// commands of at most the device's maximum transfer, in order, landing at <c>stagingBase</c> + position.</summary>
public static class IoListBuilder
{
    public static List<IoCommand> ForImage(NvmeSource src, long imageFileOffset, long imageSize, long stagingBase)
    {
        if (imageFileOffset % NvmeSource.Alignment != 0 || imageSize % NvmeSource.Alignment != 0 || stagingBase % NvmeSource.Alignment != 0)
            throw new ArgumentException("layer image and staging slot must be 4 KiB aligned");
        long maxTransfer = src.MaxTransfer / NvmeSource.Alignment * NvmeSource.Alignment;
        if (maxTransfer <= 0) throw new PlanException($"NVMe max transfer {src.MaxTransfer} is below 4 KiB");
        int block = src.Mode == NvmeMode.File ? NvmeSource.Alignment : src.BlockSize;
        var list = new List<IoCommand>();
        for (long pos = 0; pos < imageSize; pos += maxTransfer)
        {
            long len = Math.Min(maxTransfer, imageSize - pos);
            long fileOffset = imageFileOffset + pos;
            long lba = (src.Mode == NvmeMode.Device ? src.LbaBase : 0) + fileOffset / block;
            list.Add(new IoCommand(lba, checked((int)(len / block)), stagingBase + pos));
        }
        return list;
    }

    /// <summary>The byte range a command reads, in GGUF file offsets (inverse of the LBA mapping).</summary>
    public static (long FileOffset, long Length) FileRange(NvmeSource src, IoCommand c)
    {
        int block = src.Mode == NvmeMode.File ? NvmeSource.Alignment : src.BlockSize;
        long lba = c.Lba - (src.Mode == NvmeMode.Device ? src.LbaBase : 0);
        return (lba * block, (long)c.BlockCount * block);
    }
}

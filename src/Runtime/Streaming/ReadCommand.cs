namespace Engine.Runtime.Streaming;

/// <summary>One read of a tier-C command list: <paramref name="BlockCount"/> logical 4 KiB blocks starting at block
/// <paramref name="Lba"/> of the opened file or device, landing at byte <paramref name="StagingOffset"/> of the staging
/// buffer. The LBA is absolute within what was opened: in file mode the GGUF file's own 4 KiB blocks, with
/// <c>--nvme DEVICE --lba BASE</c> device blocks that already include BASE (docs/plan-format.md, the I/O lists).</summary>
public readonly record struct ReadCommand(long Lba, int BlockCount, long StagingOffset)
{
    /// <summary>The logical block of every command list: O_DIRECT needs offset, length and buffer aligned to the
    /// device's logical block (512 B or 4 KiB), so 4 KiB satisfies every NVMe format.</summary>
    public const int BlockSize = 4096;

    public long ByteOffset => Lba * BlockSize;
    public long ByteLength => (long)BlockCount * BlockSize;

    /// <summary>Checks a command list once, where a plan is loaded, so the read path can trust it: every command has
    /// 1..<paramref name="maxBlocks"/> blocks, a non-negative LBA, and lands 4 KiB-aligned inside
    /// <paramref name="stagingLength"/> bytes. <paramref name="what"/> names the list in the error (e.g. "layer 12").</summary>
    public static void Validate(ReadOnlySpan<ReadCommand> commands, long stagingLength, int maxBlocks, string what)
    {
        for (int i = 0; i < commands.Length; i++)
        {
            var c = commands[i];
            string at = $"{what} read command {i}";
            if (c.BlockCount < 1 || c.BlockCount > maxBlocks)
                throw new StreamingException($"{at}: block count {c.BlockCount} is outside 1..{maxBlocks}");
            if (c.Lba < 0 || c.Lba > long.MaxValue / BlockSize - c.BlockCount)
                throw new StreamingException($"{at}: LBA {c.Lba} is out of range");
            if (c.StagingOffset < 0 || c.StagingOffset % BlockSize != 0)
                throw new StreamingException($"{at}: staging offset {c.StagingOffset} is not a non-negative multiple of {BlockSize}");
            if (c.StagingOffset > stagingLength - c.ByteLength)
                throw new StreamingException(
                    $"{at}: staging bytes {c.StagingOffset}..{c.StagingOffset + c.ByteLength} exceed the staging buffer of {stagingLength} bytes");
        }
    }
}

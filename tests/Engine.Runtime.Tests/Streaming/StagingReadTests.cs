using Xunit;
using Engine.Runtime.Streaming;

namespace Engine.Runtime.Tests.Streaming;

/// <summary>Command lists replayed through every source (O_DIRECT, buffered fallback, mmap baseline) must land the
/// file's bytes in staging exactly; errors must be one line naming the file and the LBA.</summary>
public sealed unsafe class StagingReadTests(StreamingFixture file) : IClassFixture<StreamingFixture>
{
    public enum Kind { Direct, Buffered, Mmap }

    private const int Block = ReadCommand.BlockSize;

    private StagingSource Open(Kind kind, StringWriter? notices = null, int queueDepth = 32, string? path = null)
    {
        path ??= file.FilePath;
        return kind switch
        {
            Kind.Mmap => MmapSource.Open(path, queueDepth),
            _ => DirectReader.Open(path, new DirectReaderOptions
            {
                QueueDepth = queueDepth, ForceBuffered = kind == Kind.Buffered, Notices = notices ?? new StringWriter(),
            }),
        };
    }

    /// <summary>Staging must hold the file's bytes from the aligned start, zeros past the end of the file, and the
    /// layer's own bytes at (offset mod 4 KiB).</summary>
    private void AssertStaged(AlignedBuffer staging, long byteOffset, long byteLength, long stagingBase = 0)
    {
        long start = CommandCover.AlignDown(byteOffset), end = CommandCover.AlignUp(byteOffset + byteLength);
        var staged = staging.Span.Slice((int)stagingBase, (int)(end - start));
        long inFile = Math.Min(end, file.Bytes.Length) - start;
        Assert.True(staged[..(int)inFile].SequenceEqual(file.Bytes.AsSpan((int)start, (int)inFile)),
            $"staged bytes differ from the file for range {byteOffset}+{byteLength}");
        Assert.True(staged[(int)inFile..].IndexOfAnyExcept((byte)0) < 0, "bytes past the end of the file are not zero");
        Assert.True(staged.Slice((int)(byteOffset - start), (int)byteLength).SequenceEqual(file.Bytes.AsSpan((int)byteOffset, (int)byteLength)));
    }

    public static TheoryData<Kind, long, long, int> Ranges()
    {
        var data = new TheoryData<Kind, long, long, int>();
        (long offset, long length, int maxBlocks)[] ranges =
        [
            (0, Block, 32),                                     // one aligned block
            (0, 1, 32),                                         // one byte
            (100, 200, 32),                                     // starts and ends inside one block
            (4000, 200, 32),                                    // straddles a block boundary
            (5000, 300_000, 32),                                // starts and ends mid-block, one command
            (5000, 300_000, 3),                                 // max transfer smaller than the range
            (Block * 10, Block * 20, 7),                        // aligned both ends, uneven split
            (12_345, StreamingFixture.FileSize - 12_345, 64),   // to the end of the file: partial last block
            (0, StreamingFixture.FileSize, 256),                // the whole file
            (StreamingFixture.FileSize - 10, 10, 1),            // the last 10 bytes only
        ];
        foreach (var kind in Enum.GetValues<Kind>())
            foreach (var (offset, length, maxBlocks) in ranges) data.Add(kind, offset, length, maxBlocks);
        return data;
    }

    [Theory]
    [MemberData(nameof(Ranges))]
    public void Range_lands_in_staging_exactly(Kind kind, long byteOffset, long byteLength, int maxBlocks)
    {
        var commands = CommandCover.Split(byteOffset, byteLength, maxBlocks);
        Assert.All(commands, c => Assert.InRange(c.BlockCount, 1, maxBlocks));
        using var staging = new AlignedBuffer(CommandCover.StagingBytes(commands));
        ReadCommand.Validate(commands, staging.Length, maxBlocks, "test");
        using var source = Open(kind);
        using var batch = new ReadBatch();
        source.Read(batch, commands, staging.Pointer);
        Assert.True(batch.IsCompleted);
        Assert.Null(batch.FailureMessage);
        AssertStaged(staging, byteOffset, byteLength);
    }

    [Fact]
    public void Direct_reader_uses_O_DIRECT_or_says_why_not()
    {
        var notices = new StringWriter();
        using var reader = (DirectReader)Open(Kind.Direct, notices);
        string notice = notices.ToString();
        if (reader.ReadPath == ReadPath.Direct)
        {
            Assert.Null(reader.FallbackReason);
            Assert.Equal("", notice);
        }
        else
        {
            // This filesystem refuses O_DIRECT: one notice line, and the reason kept for the caller.
            Assert.Contains("O_DIRECT", reader.FallbackReason);
            Assert.Single(notice.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains(file.FilePath, notice);
        }
    }

    [Fact]
    public void Forced_buffered_reader_reports_buffered_without_a_notice()
    {
        var notices = new StringWriter();
        using var reader = (DirectReader)Open(Kind.Buffered, notices);
        Assert.Equal(ReadPath.Buffered, reader.ReadPath);
        Assert.NotNull(reader.FallbackReason);
        Assert.Equal("", notices.ToString());
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Buffered)]
    [InlineData(Kind.Mmap)]
    public void Many_commands_in_flight_into_two_slots_reused_many_times(Kind kind)
    {
        // One block per command: 192 and 161 commands per list, two lists in flight at once (the double buffer),
        // each batch resubmitted many times with alternating lists, as the engine does layer after layer.
        (long offset, long length)[] layers = [(777, 192 * Block - 1000), (1_000_000, 160 * Block + 1)];
        var lists = layers.Select(l => CommandCover.Split(l.offset, l.length, maxBlocks: 1)).ToArray();
        Assert.All(lists, l => Assert.True(l.Length >= 64));
        long slotBytes = lists.Max(CommandCover.StagingBytes);
        using var source = Open(kind, queueDepth: 32);
        using var slotA = new AlignedBuffer(slotBytes);
        using var slotB = new AlignedBuffer(slotBytes);
        using var batchA = new ReadBatch();
        using var batchB = new ReadBatch();
        for (int round = 0; round < 12; round++)
        {
            int a = round % 2, b = 1 - a;
            slotA.Span.Fill(0xCD);
            slotB.Span.Fill(0xCD);
            source.Submit(batchA, lists[a], slotA.Pointer);
            source.Submit(batchB, lists[b], slotB.Pointer);
            batchA.Wait();
            while (!batchB.IsCompleted) Thread.Yield(); // the non-blocking poll
            batchB.ThrowIfFailed();
            AssertStaged(slotA, layers[a].offset, layers[a].length);
            AssertStaged(slotB, layers[b].offset, layers[b].length);
        }
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Buffered)]
    [InlineData(Kind.Mmap)]
    public void Small_batches_resubmitted_back_to_back_each_read_exactly_once(Kind kind)
    {
        // Tiny batches completed and resubmitted at once keep stale ring entries and late workers around: every
        // round must still read every command (staging refilled with garbage each time) and complete exactly once.
        using var source = Open(kind, queueDepth: 8);
        var batches = Enumerable.Range(0, 3).Select(_ => new ReadBatch()).ToArray();
        var slots = Enumerable.Range(0, 3).Select(_ => new AlignedBuffer(3 * Block)).ToArray();
        try
        {
            for (int round = 0; round < 300; round++)
            {
                for (int s = 0; s < 3; s++)
                {
                    slots[s].Span.Fill(0xCD);
                    long offset = (round * 7 + s * 13) % 700 * Block + s * 100;
                    source.Submit(batches[s], CommandCover.Split(offset, 2 * Block, 1), slots[s].Pointer);
                }
                for (int s = 0; s < 3; s++)
                {
                    batches[s].Wait();
                    AssertStaged(slots[s], (round * 7 + s * 13) % 700 * Block + s * 100, 2 * Block);
                }
            }
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
            foreach (var s in slots) s.Dispose();
        }
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Buffered)]
    [InlineData(Kind.Mmap)]
    public void Commands_at_a_staging_offset_land_there(Kind kind)
    {
        var commands = CommandCover.Split(9000, 50_000, maxBlocks: 4, stagingBase: 8 * Block);
        using var staging = new AlignedBuffer(CommandCover.StagingBytes(commands));
        using var source = Open(kind);
        using var batch = new ReadBatch();
        source.Read(batch, commands, staging.Pointer);
        AssertStaged(staging, 9000, 50_000, stagingBase: 8 * Block);
        Assert.True(staging.Span[..(8 * Block)].IndexOfAnyExcept((byte)0xCD) < 0, "bytes before the staging offset were written");
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Buffered)]
    [InlineData(Kind.Mmap)]
    public void Empty_command_list_completes_at_once(Kind kind)
    {
        using var staging = new AlignedBuffer(Block);
        using var source = Open(kind);
        using var batch = new ReadBatch();
        source.Submit(batch, ReadOnlyMemory<ReadCommand>.Empty, staging.Pointer);
        Assert.True(batch.IsCompleted);
        batch.Wait();
    }

    public static TheoryData<Kind, long, int> PastEnd()
    {
        long lastBlock = StreamingFixture.FileSize / Block;         // the partial last block
        var data = new TheoryData<Kind, long, int>();
        foreach (var kind in Enum.GetValues<Kind>())
        {
            data.Add(kind, lastBlock + 1, 1);      // starts after the end of the file
            data.Add(kind, lastBlock, 2);          // a whole block past the partial last one
            data.Add(kind, lastBlock - 3, 8);      // mostly inside, runs 4 blocks past the end
            data.Add(kind, 1_000_000, 1);          // far past the end
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(PastEnd))]
    public void Command_past_the_end_of_the_file_is_a_short_read(Kind kind, long lba, int blocks)
    {
        ReadCommand[] commands = [new(0, 1, 0), new(lba, blocks, Block), new(2, 1, (1 + blocks) * Block)];
        using var staging = new AlignedBuffer((2 + blocks) * Block);
        using var source = Open(kind);
        using var batch = new ReadBatch();
        source.Submit(batch, commands, staging.Pointer);
        var e = Assert.Throws<StreamingException>(batch.Wait);
        Assert.Contains(file.FilePath, e.Message);
        Assert.Contains("short read", e.Message);
        Assert.Contains($"LBA {lba}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(e.Message, batch.FailureMessage);

        // The source stays usable: the next batch (a good one) reads normally.
        var good = CommandCover.Split(0, 3 * Block, 1);
        source.Read(batch, good, staging.Pointer);
        AssertStaged(staging, 0, 3 * Block);
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Buffered)]
    [InlineData(Kind.Mmap)]
    public void Missing_file_is_one_error_line(Kind kind)
    {
        string missing = Path.Combine(file.Directory, "no-such-model.gguf");
        var e = Assert.Throws<StreamingException>(() => Open(kind, path: missing).Dispose());
        Assert.Contains(missing, e.Message);
        Assert.Contains("ENOENT", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Directory_is_refused_with_one_line()
    {
        var e = Assert.Throws<StreamingException>(() => Open(Kind.Direct, path: file.Directory).Dispose());
        Assert.Contains(file.Directory, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Mmap)]
    public void Plan_size_mismatch_is_refused(Kind kind)
    {
        using var source = Open(kind);
        source.CheckMatchesPlan(StreamingFixture.FileSize);
        var e = Assert.Throws<StreamingException>(() => source.CheckMatchesPlan(StreamingFixture.FileSize + 1));
        Assert.Contains(file.FilePath, e.Message);
        Assert.Contains($"{StreamingFixture.FileSize + 1}", e.Message);
        Assert.Contains("re-plan", e.Message);
    }

    [Theory]
    [InlineData(Kind.Direct)]
    [InlineData(Kind.Buffered)]
    public void File_changed_after_open_is_refused(Kind kind)
    {
        string path = Path.Combine(file.Directory, $"changing-{kind}.bin");
        File.WriteAllBytes(path, file.Bytes);
        using var source = Open(kind, path: path);
        source.CheckMatchesPlan(StreamingFixture.FileSize);
        File.SetLastWriteTimeUtc(path, File.GetLastWriteTimeUtc(path).AddSeconds(-5)); // same size, rewritten
        var e = Assert.Throws<StreamingException>(() => source.CheckMatchesPlan(StreamingFixture.FileSize));
        Assert.Contains("changed while streaming", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void File_shrunk_under_the_plan_is_a_short_read()
    {
        string path = Path.Combine(file.Directory, "shrinking.bin");
        File.WriteAllBytes(path, file.Bytes);
        using var source = Open(Kind.Direct, path: path);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write)) stream.SetLength(100 * Block);
        var commands = CommandCover.Split(0, StreamingFixture.FileSize, 16);
        using var staging = new AlignedBuffer(CommandCover.StagingBytes(commands));
        using var batch = new ReadBatch();
        source.Submit(batch, commands, staging.Pointer);
        var e = Assert.Throws<StreamingException>(batch.Wait);
        Assert.Contains("short read", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Throws<StreamingException>(() => source.CheckMatchesPlan(StreamingFixture.FileSize));
    }

    [Theory]
    [InlineData(0, 0, 0L, "block count 0 is outside 1..8")]
    [InlineData(0, 9, 0L, "block count 9 is outside 1..8")]
    [InlineData(-1, 1, 0L, "LBA -1 is out of range")]
    [InlineData(0, 1, 100L, "staging offset 100 is not")]
    [InlineData(0, 2, 3 * 4096L, "exceed the staging buffer of 16384 bytes")]
    public void Invalid_command_is_refused_at_validation(long lba, int blocks, long stagingOffset, string expected)
    {
        ReadCommand[] commands = [new(5, 1, 0), new(lba, blocks, stagingOffset)];
        var e = Assert.Throws<StreamingException>(() => ReadCommand.Validate(commands, 4 * Block, 8, "layer 3"));
        Assert.StartsWith("layer 3 read command 1: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Unaligned_staging_buffer_is_refused()
    {
        using var staging = new AlignedBuffer(2 * Block);
        using var source = Open(Kind.Direct);
        using var batch = new ReadBatch();
        Assert.Throws<ArgumentException>(() => source.Submit(batch, CommandCover.Split(0, Block, 1), staging.Pointer + 512));
        Assert.True(batch.IsCompleted);
    }
}

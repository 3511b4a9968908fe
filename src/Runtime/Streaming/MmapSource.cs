using System.IO.MemoryMappedFiles;

namespace Engine.Runtime.Streaming;

/// <summary><c>--stream-from mmap</c>: the seed's baseline, serving the same command lists by copying out of a
/// memory map of the GGUF file, so every byte goes through the page cache and page faults. Kept for comparison
/// benchmarks against <see cref="DirectReader"/>. A file truncated while mapped raises SIGBUS on access, which no
/// check here can prevent; <see cref="StagingSource.CheckMatchesPlan"/> catches changes made before.</summary>
public sealed unsafe class MmapSource : StagingSource
{
    private readonly MemoryMappedFile? map;
    private readonly MemoryMappedViewAccessor? view;
    private readonly byte* mapped;

    private MmapSource(string path, long length, DateTime writeTimeUtc, int queueDepth)
        : base(path, length, isRegularFile: true, writeTimeUtc)
    {
        if (length > 0)
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            mapped = p + view.PointerOffset;
        }
        StartWorkers(queueDepth, "ntrun-mmap");
    }

    /// <summary>Maps the file at <paramref name="path"/>; <paramref name="queueDepth"/> threads copy out of it.</summary>
    public static MmapSource Open(string path, int queueDepth = 32)
    {
        if (queueDepth < 1) throw new StreamingException($"{path}: queue depth {queueDepth} must be at least 1");
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new StreamingException($"{path}: cannot open for streaming: ENOENT (No such file or directory)");
            return new MmapSource(path, info.Length, info.LastWriteTimeUtc, queueDepth);
        }
        catch (StreamingException) { throw; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StreamingException($"{path}: cannot map for streaming: {e.Message.ReplaceLineEndings(" ")}");
        }
    }

    protected override void ReadRange(in ReadCommand command, byte* destination, long offset, long length, long requested) =>
        Buffer.MemoryCopy(mapped + offset, destination, length, length);

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (view != null)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        map?.Dispose();
    }
}

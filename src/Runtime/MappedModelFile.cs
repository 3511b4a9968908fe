using System.IO.MemoryMappedFiles;
using Engine.Plans.PlanFile;

namespace Engine.Runtime;

/// <summary>The GGUF a plan runs, mapped read-only and whole, so weights are read in place (llama.cpp's default
/// mmap). Nothing here parses the file: the plan's tensor table says where every tensor is, and the plan was
/// already checked against this file's size and header hash. A file truncated while mapped raises SIGBUS on access,
/// which no check can prevent; the size is checked once more here, at map time.</summary>
public sealed unsafe class MappedModelFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;

    public string Path { get; }
    public long Length { get; }
    /// <summary>Byte 0 of the file.</summary>
    public byte* Base { get; }

    private MappedModelFile(string path, long length)
    {
        Path = path;
        Length = length;
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        Base = p + _view.PointerOffset;
    }

    /// <summary>Maps <paramref name="path"/>, which must still be <paramref name="expectedLength"/> bytes long.</summary>
    public static MappedModelFile Open(string path, long expectedLength)
    {
        long length;
        try { length = new FileInfo(path).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PlanException($"{path}: cannot read the model: {e.Message}"); }
        if (length != expectedLength || length == 0)
            throw new PlanException($"{path}: {length} bytes, the plan was made for {expectedLength}: the file changed since the check, re-run");
        try { return new MappedModelFile(path, length); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PlanException($"{path}: cannot map the model: {e.Message}"); }
    }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}

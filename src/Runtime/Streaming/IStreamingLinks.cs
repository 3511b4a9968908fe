namespace Engine.Runtime.Streaming;

/// <summary>What <c>ntrun --benchmark</c> reports about a streaming engine: the CPU backend's
/// <see cref="LayerStreamer"/> or the CUDA backend's transfer stream (<see cref="Cuda.CudaStreamer"/>).</summary>
public interface IStreamingLinks
{
    StreamCounters Counters { get; }
    long PassBytesPinned { get; }
    long PassBytesNvme { get; }
    string? ReadPathDescription { get; }
    int SlotCount { get; }
    int StreamedLayerCount { get; }
    /// <summary>Who copies into the slots, for the table's link names ("copy thread", "transfer stream").</summary>
    string Copier { get; }
    /// <summary>Whether <see cref="StreamCounters.ComputeWaitTicks"/> is measured (the CUDA compute stream's waits
    /// happen on the device and are not).</summary>
    bool MeasuresComputeWait { get; }
}

namespace Engine.Runtime.Cpu;

/// <summary>Work split across the pool's threads: <see cref="Execute"/> is called once on every thread with its
/// index (0 is the calling thread) and the thread count, and must touch only its own share.</summary>
public interface IParallelWork
{
    void Execute(int thread, int threadCount);
}

/// <summary>A persistent pool of worker threads for the token loop (ggml-cpu's threadpool is the model): the
/// caller runs share 0 itself, workers run the others, and <see cref="Run"/> returns when all are done, so
/// consecutive runs are separated by a barrier. Workers spin briefly for the next op (ops are microseconds apart in
/// decode) and then sleep on a monitor, so an idle pool costs nothing. No allocation per run.</summary>
public sealed class WorkerPool : IDisposable
{
    private const int SpinIterations = 2000;

    private readonly Thread[] _workers;
    private readonly object _gate = new();
    private IParallelWork? _work;
    private long _generation;
    private int _pending;
    private int _sleepers;
    private volatile bool _stopping;
    private Exception? _failure;

    public int ThreadCount { get; }

    public WorkerPool(int threadCount, long minParallelWork = DefaultMinParallelWork)
    {
        MinParallelWork = minParallelWork;
        if (threadCount < 1) throw new ArgumentOutOfRangeException(nameof(threadCount), threadCount, "at least one thread");
        ThreadCount = threadCount;
        _workers = new Thread[threadCount - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int index = i + 1;
            _workers[i] = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = "ntrun-cpu-" + index };
            _workers[i].Start();
        }
    }

    /// <summary>Below this many multiply-adds an op runs on the calling thread alone: waking and waiting for the
    /// workers costs more than it saves (microseconds, far more when the cores are shared).</summary>
    public const long DefaultMinParallelWork = 1 << 16;

    /// <summary>The threshold in force (tests set 0 to split every op).</summary>
    public long MinParallelWork { get; }

    /// <summary>Runs <paramref name="work"/> on every thread and waits for all of them; work of fewer than
    /// <see cref="MinParallelWork"/> multiply-adds runs on the calling thread alone.</summary>
    public void Run(IParallelWork work, long multiplyAdds)
    {
        if (multiplyAdds < MinParallelWork || _workers.Length == 0) work.Execute(0, 1);
        else Run(work);
    }

    /// <summary>Runs <paramref name="work"/> on every thread and waits for all of them.</summary>
    public void Run(IParallelWork work)
    {
        if (_workers.Length == 0) { work.Execute(0, 1); return; }
        _work = work;
        Volatile.Write(ref _pending, _workers.Length);
        Interlocked.Increment(ref _generation);           // full fence: publishes _work and _pending
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_gate) Monitor.PulseAll(_gate);
        work.Execute(0, ThreadCount);
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
        if (_failure != null)
        {
            var e = _failure;
            _failure = null;
            throw new InvalidOperationException("a CPU worker thread failed", e);
        }
    }

    private void WorkerLoop(int index)
    {
        long seen = 0;
        while (true)
        {
            long gen;
            int spins = 0;
            while ((gen = Volatile.Read(ref _generation)) == seen && !_stopping)
            {
                if (++spins < SpinIterations) { Thread.SpinWait(20); continue; }
                lock (_gate)
                {
                    Interlocked.Increment(ref _sleepers);     // full fence before re-reading the generation
                    while (Volatile.Read(ref _generation) == seen && !_stopping) Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
            }
            if (_stopping) return;
            seen = gen;
            try { _work!.Execute(index, ThreadCount); }
            catch (Exception e) { _failure ??= e; }
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _workers) t.Join();
    }

    /// <summary>The share [start, end) of <paramref name="count"/> items that thread <paramref name="thread"/>
    /// owns, in units of <paramref name="grain"/> so threads do not share cache lines of output.</summary>
    public static (int Start, int End) Share(int count, int thread, int threadCount, int grain = 1)
    {
        int units = (count + grain - 1) / grain;
        int start = (int)((long)units * thread / threadCount) * grain;
        int end = (int)((long)units * (thread + 1) / threadCount) * grain;
        return (Math.Min(start, count), Math.Min(end, count));
    }
}

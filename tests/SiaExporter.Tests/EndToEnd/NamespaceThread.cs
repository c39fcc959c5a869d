using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A dedicated thread living in a named network namespace: work handed to <see cref="Run{T}"/>
/// executes there. The network namespace belongs to the thread (setns(CLONE_NEWNET) moves only
/// the caller), so this thread is never a pool thread and never leaves. A socket is bound to the
/// namespace it was created in: create sockets here, then use them from any thread.
/// </summary>
public sealed class NamespaceThread : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;

    public NamespaceThread(string netnsName)
    {
        Namespace = netnsName;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _thread = new Thread(() =>
        {
            try
            {
                Enter(netnsName);
                ready.SetResult();
            }
            catch (Exception e)
            {
                ready.SetException(e);
                return;
            }
            foreach (var item in _work.GetConsumingEnumerable()) item();
        })
        {
            IsBackground = true,
            Name = $"netns {netnsName}",
        };
        _thread.Start();
        ready.Task.GetAwaiter().GetResult();
    }

    public string Namespace { get; }

    private static void Enter(string netnsName)
    {
        var path = $"/var/run/netns/{netnsName}";
        var fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0)
            throw new InvalidOperationException($"open({path}) failed: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (Libc.setns(fd, Libc.CLONE_NEWNET) != 0)
                throw new InvalidOperationException($"setns({path}, CLONE_NEWNET) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Runs <paramref name="action"/> inside the namespace and waits for it; exceptions are rethrown here.</summary>
    public T Run<T>(Func<T> action)
    {
        if (Thread.CurrentThread == _thread) return action();
        T result = default!;
        ExceptionDispatchInfo? error = null;
        using var done = new ManualResetEventSlim();
        _work.Add(() =>
        {
            try { result = action(); }
            catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
            finally { done.Set(); }
        });
        done.Wait();
        error?.Throw();
        return result;
    }

    public void Run(Action action) => Run(() => { action(); return 0; });

    /// <summary>The inode of this thread's network namespace (to check the switch took place).</summary>
    public string NamespaceIdentity() => Run(() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? "?");

    public void Dispose()
    {
        _work.CompleteAdding();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(10));
        _work.Dispose();
    }
}

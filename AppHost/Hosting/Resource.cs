namespace Crm.AppHost.Hosting;

/// <summary>Lifecycle states shown on the console table and the dashboard.</summary>
public enum ResourceState { NotStarted, Waiting, Starting, Running, Restarting, Stopping, Stopped, Failed }

/// <summary>
/// Something the AppHost runs or points to: a server, a database, a service. Holds what the
/// dashboard shows: state, health, endpoints, restarts, uptime and the last log lines.
/// </summary>
public abstract class Resource(string name)
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Name { get; } = name;
    public abstract string Type { get; }
    public ResourceState State { get; set; } = ResourceState.NotStarted;

    /// <summary>Healthy / Degraded / Unhealthy for resources that have a health check, else null.</summary>
    public string? Health { get; set; }

    /// <summary>Why the health is not Healthy: the failing checks of a service, what a server's probe saw.</summary>
    public string? HealthDescription { get; set; }

    /// <summary>Every health check of a service with its result (Degraded shown as such), as its /health last said.</summary>
    public IReadOnlyList<HealthCheckResult> HealthChecks { get; set; } = [];
    public int Restarts { get; set; }
    public int? ProcessId { get; set; }
    public DateTimeOffset? StartedAt { get; set; }

    /// <summary>Endpoint name to URL, in display order.</summary>
    public List<KeyValuePair<string, string>> Endpoints { get; } = [];

    /// <summary>Resources that must be up before this one starts.</summary>
    public List<Resource> WaitsFor { get; } = [];

    public LogBuffer Logs { get; } = new(2000);

    /// <summary>Completes once the resource is up (accepting connections, or healthy for a project).</summary>
    public Task WhenReady => _ready.Task;
    public bool IsReady => _ready.Task.IsCompleted;

    public void MarkReady() => _ready.TrySetResult();

    public void SetEndpoint(string name, string url)
    {
        lock (Endpoints)
        {
            Endpoints.RemoveAll(e => e.Key == name);
            Endpoints.Add(new(name, url));
        }
    }
}

/// <summary>A resource a project can reference: it contributes environment variables (Aspire's contract).</summary>
public interface IResourceWithEnvironmentContract
{
    string Name { get; }
    void AddReferenceEnvironment(IDictionary<string, string?> environment);
}

/// <summary>The last N lines of a resource's output; each line has a sequence number, so a live tail can wait for the next ones.</summary>
public sealed class LogBuffer(int capacity)
{
    private readonly Queue<(long Seq, string Line)> _lines = new();
    private long _seq;
    private TaskCompletionSource _added = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Add(string line)
    {
        TaskCompletionSource added;
        lock (_lines)
        {
            _lines.Enqueue((++_seq, line));
            while (_lines.Count > capacity) _lines.Dequeue();
            added = _added;
            _added = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        added.TrySetResult();
    }

    public IReadOnlyList<string> Snapshot()
    {
        lock (_lines) return [.. _lines.Select(l => l.Line)];
    }

    /// <summary>The lines after <paramref name="afterSeq"/> and the sequence number of the last one.</summary>
    public (IReadOnlyList<string> Lines, long LastSeq) Since(long afterSeq)
    {
        lock (_lines) return ([.. _lines.Where(l => l.Seq > afterSeq).Select(l => l.Line)], _seq);
    }

    /// <summary>Completes when the next line is added.</summary>
    public Task NextAsync()
    {
        lock (_lines) return _added.Task;
    }
}

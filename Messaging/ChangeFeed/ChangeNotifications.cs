using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging.ChangeFeed;

/// <summary>
/// Wakes the change feed's waiting readers when change events commit. Writers call <see cref="Committed"/> (through
/// <see cref="Outbox.Wake"/>) after their commit: readers in this process wake at once, and an announcer sends
/// <c>NOTIFY change_events</c> on a connection of its own for the other instances, which LISTEN on one connection per
/// process (started by the first reader). The writers' transactions never notify: a notifying transaction holds a lock
/// shared by the whole server through its commit, which would make every write of every service commit one at a time.
/// The announcer coalesces: one NOTIFY in flight, one more if woken meanwhile, and its commits skip the WAL flush.
/// While the database is away readers simply fall back to their poll.
/// </summary>
public sealed class ChangeNotifications(NpgsqlDataSource dataSource, OutboxDataSource relay, IOptions<ChangeFeedOptions> options,
    ILogger<ChangeNotifications> logger) : IAsyncDisposable
{
    private const string Channel = "change_events";
    private readonly ChangeFeedOptions _options = options.Value;
    // Our own NOTIFYs come back to our listener; the readers here were woken already.
    private readonly string _instance = Guid.NewGuid().ToString("N");
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _announce = new(0, 1);
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _listening;
    private Task? _announcing;

    /// <summary>Completes at the next commit of change events. Take it before reading, so a commit during the read is not missed.</summary>
    public Task NextAsync()
    {
        lock (_gate)
        {
            _listening ??= Task.Run(ListenAsync);
            return _next.Task;
        }
    }

    /// <summary>A transaction of this process that wrote change events has committed.</summary>
    public void Committed()
    {
        Pulse();
        if (!_options.Announce) return;
        lock (_gate) _announcing ??= Task.Run(AnnounceAsync);
        if (_announce.CurrentCount > 0) return; // one is due already (spares the exception below on most commits under load)
        try { _announce.Release(); }
        catch (SemaphoreFullException) { /* one is due already */ }
    }

    private void Pulse()
    {
        TaskCompletionSource done;
        lock (_gate)
        {
            done = _next;
            _next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        done.TrySetResult();
    }

    private async Task ListenAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(ct);
                connection.Notification += (_, e) => { if (e.Payload != _instance) Pulse(); };
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                    await listen.ExecuteNonQueryAsync(ct);
                Pulse(); // whatever committed while nobody listened
                while (true) await connection.WaitAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Change feed notifications interrupted ({Error}); readers poll meanwhile", e.Message);
                try { await Task.Delay(TimeSpan.FromSeconds(1), ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    private async Task AnnounceAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var connection = await relay.Announcer.OpenConnectionAsync(ct);
                // A lost NOTIFY costs a reader one poll, so its commit need not wait for the WAL flush (it holds the
                // server-wide notify lock until then).
                await using (var set = new NpgsqlCommand("SET synchronous_commit = off", connection))
                    await set.ExecuteNonQueryAsync(ct);
                await using var notify = new NpgsqlCommand($"NOTIFY {Channel}, '{_instance}'", connection);
                while (true)
                {
                    await _announce.WaitAsync(ct);
                    await notify.ExecuteNonQueryAsync(ct);
                    if (_options.AnnounceInterval > TimeSpan.Zero) await Task.Delay(_options.AnnounceInterval, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning("Announcing change events to other instances interrupted ({Error}); their readers poll meanwhile", e.Message);
                try { await Task.Delay(TimeSpan.FromSeconds(1), ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var task in new[] { _listening, _announcing })
        {
            if (task is null) continue;
            try { await task; }
            catch (Exception) { /* stopping */ }
        }
    }
}

/// <summary>How change feed readers wait for new events (section <c>ChangeFeed</c>).</summary>
public sealed class ChangeFeedOptions
{
    /// <summary>A caught-up reader reads again after this long without a wake-up (a safety net for a lost one).</summary>
    public TimeSpan IdlePoll { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// A reader whose horizon a running transaction holds back reads again after this long (or <see cref="IdlePoll"/> if
    /// shorter): the transaction may end without writing an event, and then no commit wakes the reader.
    /// </summary>
    public TimeSpan HeldPoll { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Tell other instances' readers about this instance's commits (NOTIFY after commit).</summary>
    public bool Announce { get; set; } = true;

    /// <summary>Least time between two announcements: under load one NOTIFY stands for many commits.</summary>
    public TimeSpan AnnounceInterval { get; set; } = TimeSpan.FromMilliseconds(2);
}

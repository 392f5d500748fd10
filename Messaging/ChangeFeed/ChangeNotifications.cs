using Microsoft.Extensions.Logging;
using Npgsql;

namespace Crm.Messaging.ChangeFeed;

/// <summary>
/// One LISTEN connection per process on the channel the outbox trigger notifies when change events commit
/// (migration 0004); every waiting feed reader wakes on it. Started by the first reader. While it cannot listen
/// (database away) readers simply fall back to their poll.
/// </summary>
public sealed class ChangeNotifications(NpgsqlDataSource dataSource, ILogger<ChangeNotifications> logger) : IAsyncDisposable
{
    private const string Channel = "change_events";
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _listening;

    /// <summary>Completes at the next commit of change events. Take it before reading, so a commit during the read is not missed.</summary>
    public Task NextAsync()
    {
        lock (_gate)
        {
            _listening ??= Task.Run(ListenAsync);
            return _next.Task;
        }
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
                connection.Notification += (_, _) => Pulse();
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

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_listening is not null)
        {
            try { await _listening; }
            catch (Exception) { /* stopping */ }
        }
        _stop.Dispose();
    }
}

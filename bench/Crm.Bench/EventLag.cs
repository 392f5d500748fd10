using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Crm.Bench;

public sealed record EventLagResult(
    double TargetRate, double AchievedRate, double SendSeconds, int Sent, int SendErrors, int Received, int Duplicates,
    bool AllArrived, double WaitedSeconds, Latency LagFromReturn, Latency LagFromCallStart, Latency RecordOrderLatency,
    int ArrivedBeforeReturn, CpuUsage Cpu, string? FirstError, IReadOnlyList<LagSecond> PerSecond, IReadOnlyList<double> LagsMs);

/// <summary>One second of the paced run (by call start): calls started, their p50/max call latency and p50/max event lag (from return).</summary>
public sealed record LagSecond(int Second, int Calls, double CallP50, double CallMax, double LagP50, double LagMax);

/// <summary>
/// A plain RabbitMQ consumer (RabbitMQ.Client, no MassTransit) on its own exclusive queue bound to the fanout
/// exchange MassTransit publishes OrderPaid to; it notes the arrival time of each envelope by externalOrderId.
/// </summary>
public sealed class EventLagProbe : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _channel;
    private readonly string _prefix;
    private readonly ConcurrentDictionary<string, long> _arrivals = new();
    private int _duplicates;

    private EventLagProbe(IConnection connection, IChannel channel, string prefix)
    {
        _connection = connection;
        _channel = channel;
        _prefix = prefix;
    }

    public int Count => _arrivals.Count;
    public int Duplicates => _duplicates;

    public bool TryGetArrival(string externalOrderId, out long timestamp) => _arrivals.TryGetValue(externalOrderId, out timestamp);

    public static async Task<EventLagProbe> StartAsync(Uri amqp, string exchange, string externalIdPrefix, CancellationToken ct)
    {
        var factory = new ConnectionFactory { Uri = amqp, ClientProvidedName = "crm-bench-probe" };
        var connection = await factory.CreateConnectionAsync(ct);
        var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        // Same declaration as MassTransit's, so it is a no-op when the exchange exists.
        await channel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: ct);
        var queue = await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: ct);
        await channel.QueueBindAsync(queue.QueueName, exchange, routingKey: "", cancellationToken: ct);

        var probe = new EventLagProbe(connection, channel, externalIdPrefix);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            var now = Stopwatch.GetTimestamp();
            probe.OnMessage(delivery.Body.Span, now);
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue.QueueName, autoAck: true, consumer, ct);
        return probe;
    }

    private void OnMessage(ReadOnlySpan<byte> body, long arrivedAt)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            using var envelope = JsonDocument.ParseValue(ref reader);
            if (!envelope.RootElement.TryGetProperty("message", out var message)) return;
            if (!message.TryGetProperty("externalOrderId", out var ext)) return;
            var id = ext.GetString();
            if (id is null || !id.StartsWith(_prefix, StringComparison.Ordinal)) return;
            if (!_arrivals.TryAdd(id, arrivedAt)) Interlocked.Increment(ref _duplicates);
        }
        catch (JsonException)
        {
            // not an envelope we understand: not ours
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _channel.CloseAsync();
            await _connection.CloseAsync();
        }
        catch (Exception) { /* broker already gone */ }
        _channel.Dispose();
        _connection.Dispose();
    }
}

/// <summary>Open loop: starts calls on a fixed schedule (rate per second) whatever the previous ones are doing.</summary>
public static class OpenLoop
{
    public sealed record Call(long StartedAt, long ReturnedAt, bool Ok);

    public static async Task<(Call[] Calls, double SendSeconds, string? FirstError)> RunAsync(
        double rate, TimeSpan duration, Func<int, Task> send, CancellationToken ct)
    {
        var total = (int)Math.Round(rate * duration.TotalSeconds);
        var calls = new Call[total];
        var interval = Stopwatch.Frequency / rate;
        var inflight = new List<Task>(total);
        string? firstError = null;
        var t0 = Stopwatch.GetTimestamp();

        async Task One(int i)
        {
            var started = Stopwatch.GetTimestamp();
            var ok = true;
            try { await send(i); }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                ok = false;
                Interlocked.CompareExchange(ref firstError, e.GetType().Name + ": " + e.Message, null);
            }
            calls[i] = new Call(started, Stopwatch.GetTimestamp(), ok);
        }

        var next = 0;
        while (next < total)
        {
            ct.ThrowIfCancellationRequested();
            var now = Stopwatch.GetTimestamp();
            while (next < total && t0 + (long)(next * interval) <= now)
                inflight.Add(One(next++));
            if (next < total) await Task.Delay(1, ct);
        }
        var sendSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        await Task.WhenAll(inflight);
        return (calls, sendSeconds, firstError);
    }
}

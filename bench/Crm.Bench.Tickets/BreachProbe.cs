using System.Collections.Concurrent;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Crm.Bench.Tickets;

/// <summary>One SlaBreached as received: the wall-clock instants the latency is computed from.</summary>
public sealed record Breach(Guid TicketId, string Target, DateTime DueAt, DateTime DetectedAt, DateTime ReceivedAt);

/// <summary>
/// A plain RabbitMQ consumer (no MassTransit) on its own exclusive queue bound to the fanout exchange MassTransit
/// publishes SlaBreached to. It stamps each envelope with the wall clock on arrival: due times are wall-clock instants.
/// </summary>
public sealed class BreachProbe : IAsyncDisposable
{
    public const string Exchange = "Crm.Contracts:SlaBreached";
    private readonly IConnection _connection;
    private readonly IChannel _channel;
    private readonly ConcurrentDictionary<(Guid, string), Breach> _breaches = new();
    private int _duplicates;

    private BreachProbe(IConnection connection, IChannel channel)
    {
        _connection = connection;
        _channel = channel;
    }

    public int Duplicates => _duplicates;

    public bool TryGet(Guid ticketId, string target, out Breach breach) => _breaches.TryGetValue((ticketId, target), out breach!);

    public int CountOf(IReadOnlySet<Guid> tickets) => _breaches.Keys.Count(k => tickets.Contains(k.Item1));

    public static async Task<BreachProbe> StartAsync(Uri amqp, CancellationToken ct)
    {
        var factory = new ConnectionFactory { Uri = amqp, ClientProvidedName = "crm-bench-tickets-probe" };
        var connection = await factory.CreateConnectionAsync(ct);
        var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        // Declared as MassTransit declares it, so this is a no-op when the exchange exists.
        await channel.ExchangeDeclareAsync(Exchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: ct);
        var queue = await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: ct);
        await channel.QueueBindAsync(queue.QueueName, Exchange, routingKey: "", cancellationToken: ct);
        var probe = new BreachProbe(connection, channel);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            probe.OnMessage(delivery.Body.Span, DateTime.UtcNow);
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue.QueueName, autoAck: true, consumer, ct);
        return probe;
    }

    private void OnMessage(ReadOnlySpan<byte> body, DateTime receivedAt)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            using var envelope = JsonDocument.ParseValue(ref reader);
            if (!envelope.RootElement.TryGetProperty("message", out var m)) return;
            var breach = new Breach(m.GetProperty("ticketId").GetGuid(), m.GetProperty("target").GetString() ?? "",
                m.GetProperty("dueAt").GetDateTimeOffset().UtcDateTime, m.GetProperty("detectedAt").GetDateTimeOffset().UtcDateTime, receivedAt);
            if (!_breaches.TryAdd((breach.TicketId, breach.Target), breach)) Interlocked.Increment(ref _duplicates);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or FormatException or InvalidOperationException)
        {
            // not an envelope of ours
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

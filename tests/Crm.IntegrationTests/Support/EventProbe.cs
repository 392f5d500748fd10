using System.Collections.Concurrent;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Crm.IntegrationTests.Support;

public sealed record ReceivedEvent(Guid MessageId, JsonElement Message);

/// <summary>
/// A plain RabbitMQ consumer, independent of MassTransit, that sees what other services would see: a durable
/// queue bound to the exchange MassTransit publishes a message type to (e.g. "Crm.Contracts:OrderPaid").
/// The queue survives a broker restart, and the client recovers the connection by itself.
/// </summary>
public sealed class EventProbe : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _channel;
    private readonly ConcurrentQueue<ReceivedEvent> _received = new();

    private EventProbe(IConnection connection, IChannel channel)
    {
        _connection = connection;
        _channel = channel;
    }

    public IReadOnlyList<ReceivedEvent> Received => _received.ToArray();

    public static async Task<EventProbe> StartAsync(Uri amqp, string exchange)
    {
        var factory = new ConnectionFactory
        {
            Uri = amqp, AutomaticRecoveryEnabled = true, TopologyRecoveryEnabled = true,
            NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
        };
        var connection = await factory.CreateConnectionAsync();
        var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: true, autoDelete: false);
        var queue = $"test-probe-{exchange.Replace(':', '-')}-{Guid.NewGuid():N}";
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await channel.QueueBindAsync(queue, exchange, routingKey: "");

        var probe = new EventProbe(connection, channel);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            using var envelope = JsonDocument.Parse(delivery.Body);
            var root = envelope.RootElement;
            probe._received.Enqueue(new ReceivedEvent(root.GetProperty("messageId").GetGuid(), root.GetProperty("message").Clone()));
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        return probe;
    }

    /// <summary>MassTransit writes decimals as JSON strings ("10000.50"), which keeps them exact.</summary>
    public static decimal Decimal(JsonElement message, string property)
    {
        var value = message.GetProperty(property);
        return value.ValueKind == JsonValueKind.String
            ? decimal.Parse(value.GetString()!, System.Globalization.CultureInfo.InvariantCulture)
            : value.GetDecimal();
    }

    public IReadOnlyList<ReceivedEvent> For(string property, string value) =>
        Received.Where(e => e.Message.TryGetProperty(property, out var p) && p.ToString() == value).ToList();

    /// <summary>Waits until <paramref name="condition"/> holds; fails the test with what arrived if it never does.</summary>
    public async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds} s waiting for {what}; received {_received.Count} events.");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _channel.CloseAsync();
            await _connection.CloseAsync();
        }
        catch (Exception) { /* broker may be gone at the end of a failing test */ }
    }
}

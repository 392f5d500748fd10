using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Crm.Messaging.Parking;

/// <summary>
/// Sends parked messages that are due back to the queue of the consumer that parked them, with their original
/// MessageId (so the inbox still recognises one that was applied meanwhile) and headers, plus
/// <see cref="ParkedMessages.ReplayHeader"/>. The consumer deletes the parked row when it applies the message, or
/// records another failed attempt (pushing the next one further out) when it fails again.
/// </summary>
public sealed class ParkedMessageSweeper(
    ParkedMessages parked,
    ParkingSignal signal,
    IBus bus,
    IOptions<ParkingOptions> options,
    ILogger<ParkedMessageSweeper> logger) : BackgroundService
{
    private readonly ParkingOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var sent = await SweepAsync(stoppingToken);
                failures = 0;
                if (sent == _options.BatchSize) continue;
                await signal.WaitAsync(_options.SweepInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                var delay = TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, Math.Min(failures, 5))));
                logger.LogWarning("Parked-message sweep failed ({Error}); next try in {Delay}", ex.Message, delay);
                await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, CancellationToken.None);
            }
        }
    }

    /// <summary>One sweep: re-sends every parked message that is due. Returns how many were re-sent.</summary>
    internal async Task<int> SweepAsync(CancellationToken ct)
    {
        var due = await parked.ClaimDueAsync(ct);
        var sent = 0;
        foreach (var message in due)
        {
            var type = Type.GetType(message.MessageType);
            object? body = null;
            string? problem = null;
            try
            {
                body = type is null ? null : JsonSerializer.Deserialize(message.Payload, type, Outbox.Json);
                if (body is null) problem = $"Cannot replay: type {message.MessageType} is unknown to this build.";
            }
            catch (JsonException ex)
            {
                problem = "Cannot replay: the payload cannot be read: " + ex.Message;
            }
            if (problem is not null)
            {
                logger.LogError("Parked message {MessageId} for {Consumer}: {Problem}", message.MessageId, message.Consumer, problem);
                await parked.MarkFailedAsync(message.Id, problem, ct);
                continue;
            }

            var headers = ParkedMessages.ReadHeaders(message.Headers);
            var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{message.Queue}"));
            await endpoint.Send(body!, type!, context =>
            {
                context.MessageId = message.MessageId;
                foreach (var (key, value) in headers)
                    if (value is not null) context.Headers.Set(key, value);
                context.Headers.Set(ParkedMessages.ReplayHeader, message.Attempts.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }, ct);
            sent++;
        }
        if (sent > 0) logger.LogInformation("Re-sent {Count} parked messages to their consumers", sent);
        return due.Count;
    }
}

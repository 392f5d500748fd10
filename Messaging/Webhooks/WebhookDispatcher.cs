using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Crm.Messaging.Webhooks;

/// <summary>
/// POSTs change events to webhook endpoints: each endpoint on its own task with its own cursor, so a slow or dead
/// receiver delays only itself. Per endpoint strictly in order: the event at the head of the line is retried with
/// growing delays and nothing after it is sent meanwhile; an endpoint failing without a success for
/// <see cref="WebhookOptions.DisableAfter"/> is disabled with the reason. An instance takes an endpoint by a lease,
/// so several instances of a service never send the same event twice at once.
/// </summary>
public sealed class WebhookDispatcher(WebhookStore store, IHttpClientFactory http, IOptions<WebhookOptions> options, TimeProvider clock,
    WebhookAddressPolicy addresses, ILogger<WebhookDispatcher> logger) : BackgroundService
{
    public const string HttpClientName = "crm-webhooks";
    private const int Batch = 100;
    private readonly WebhookOptions _options = options.Value;
    private readonly Guid _instance = Guid.NewGuid();
    private readonly ConcurrentDictionary<Guid, Task> _running = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            if (await store.ReencryptSecretsAsync(stoppingToken) is > 0 and var moved)
                logger.LogInformation("Webhooks: {Count} endpoint secrets encrypted under the current key", moved);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning("Webhooks: encrypting stored secrets under the current key failed ({Error}); they are read as they are", ex.Message);
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                foreach (var id in await store.DueAsync(stoppingToken))
                {
                    if (_running.Count >= _options.MaxConcurrentEndpoints) break;
                    if (_running.ContainsKey(id)) continue;
                    _running[id] = Task.Run(async () =>
                    {
                        try { await DeliverAsync(id, stoppingToken); }
                        finally { _running.TryRemove(id, out _); }
                    }, CancellationToken.None);
                }
                await Task.Delay(_options.PollInterval, clock, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogWarning("Webhooks: looking for due endpoints failed ({Error}); next try in 5 s", ex.Message);
                try { await Task.Delay(TimeSpan.FromSeconds(5), clock, stoppingToken); } catch (OperationCanceledException) { break; }
            }
        }
        await Task.WhenAll(_running.Values);
    }

    private async Task DeliverAsync(Guid id, CancellationToken ct)
    {
        EndpointRow? endpoint = null;
        try
        {
            endpoint = await store.ClaimAsync(id, _instance, _options.Lease, ct);
            if (endpoint is null) return; // another instance has it, or it is no longer due
            var (tx, seq) = (endpoint.CursorTxValue, endpoint.CursorId);
            while (!ct.IsCancellationRequested)
            {
                var (events, horizon) = await store.NextEventsAsync(tx, seq, endpoint.EventTypes, endpoint.Systems, Batch, ct);
                foreach (var e in events)
                {
                    if (!await SendAsync(endpoint, e, ct)) return;
                    (tx, seq) = (e.TxValue, e.Seq);
                }
                if (events.Count == Batch) continue;
                // Everything wanted up to the horizon went out: pass the unwanted rest too, so pruning is not held back.
                if (horizon is { } h && (h.Tx, h.Seq).CompareTo((tx, seq)) > 0)
                    await store.SkipToAsync(endpoint, _instance, _options.Lease, h.Tx, h.Seq, ct);
                return;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (Exception ex)
        {
            logger.LogWarning("Webhooks: delivering to endpoint {Endpoint} stopped ({Error}); it is picked up again at the next poll", id, ex.Message);
        }
        finally
        {
            if (endpoint is not null)
                try { await store.ReleaseAsync(id, _instance); }
                catch (Exception ex) { logger.LogWarning("Webhooks: releasing endpoint {Endpoint} failed ({Error}); its lease runs out", id, ex.Message); }
        }
    }

    /// <summary>One attempt; true when delivered and the cursor moved (false: failed, or the endpoint changed meanwhile).</summary>
    private async Task<bool> SendAsync(EndpointRow endpoint, ChangeEventRow e, CancellationToken ct)
    {
        var body = Body(e);
        var timestamp = clock.GetUtcNow().ToUnixTimeSeconds();
        int status = 0;
        string? error;
        try
        {
            // Registered before the rules tightened (https, a literal address): refused like any failed attempt, with the reason.
            var refused = Uri.TryCreate(endpoint.Url, UriKind.Absolute, out var target) ? addresses.UrlProblem(target) : "is not an absolute URL.";
            if (refused is not null) throw new HttpRequestException("refused: the url " + refused);
            using var request = new HttpRequestMessage(HttpMethod.Post, endpoint.Url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.Add(WebhookSignature.IdHeader, e.MessageId.ToString());
            request.Headers.Add(WebhookSignature.EventTypeHeader, e.EventType);
            request.Headers.Add(WebhookSignature.TimestampHeader, timestamp.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(store.SecretOf(endpoint), timestamp, body));
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.RequestTimeout);
            using var response = await http.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                (endpoint.Failures, endpoint.FailingSince) = (0, null);
                return await store.DeliveredAsync(endpoint, _instance, _options.Lease, e, status, ct);
            }
            error = $"HTTP {status} {response.ReasonPhrase}";
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            error = $"no answer within {_options.RequestTimeout.TotalSeconds:0.#} s";
        }
        catch (HttpRequestException ex)
        {
            error = ex.Message;
        }

        var now = clock.GetUtcNow().UtcDateTime;
        var failingSince = endpoint.FailingSince ?? now;
        string? disable = null;
        DateTime? next = null;
        if (now - failingSince >= _options.DisableAfter)
            disable = $"Disabled automatically: failing since {failingSince:yyyy-MM-dd HH:mm:ss}Z without a success ({endpoint.Failures + 1} attempts); last error: {Cut(error)}";
        else
            next = now + _options.RetryDelay(endpoint.Failures + 1);
        await store.FailedAsync(endpoint, _instance, e, status, Cut(error), next, disable, ct);
        if (disable is not null) logger.LogWarning("Webhooks: endpoint {Endpoint} disabled after failing since {Since}", endpoint.Id, failingSince);
        return false;
    }

    /// <summary>The JSON body: the event as the change feed gives it (payload verbatim under "data").</summary>
    public static byte[] Body(ChangeEventRow e)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", e.MessageId);
            json.WriteString("type", e.EventType);
            json.WriteString("occurredAt", DateTime.SpecifyKind(e.OccurredAt, DateTimeKind.Utc));
            json.WriteString("token", e.Token);
            json.WritePropertyName("data");
            json.WriteRawValue(e.Payload, skipInputValidation: true);
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static string Cut(string text) => text.Length <= 500 ? text : text[..500] + "…";
}

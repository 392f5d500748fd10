using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Crm.Messaging.ChangeFeed;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Crm.Webhooks.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;

namespace Crm.Messaging.Webhooks;

/// <summary>crm.webhooks.v1.Webhooks: endpoints, their delivery log and replays (see webhooks.proto). Admin sees every endpoint, a partner its own.</summary>
public sealed partial class WebhooksService(WebhookStore store, PartnerChangeScope scope, WebhookAddressPolicy addresses) : Crm.Webhooks.V1.Webhooks.WebhooksBase
{
    [Allow(Roles.Partner)]
    public override async Task<CreateEndpointResponse> CreateEndpoint(CreateEndpointRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var url = Url(request.Url, v);
        var types = EventTypes(request.EventTypes, v);
        var secret = request.Secret.Trim();
        if (secret.Length > 0 && (secret.Length < 16 || !secret.All(c => c is > ' ' and <= '~')))
            v.Add("secret", "must be 16-200 printable ASCII characters without spaces (or empty, to have one generated).");
        v.ThrowIfInvalid();
        // A partner's endpoint gets only the events about its own customers (FAILED_PRECONDITION where this service cannot tell).
        var systems = scope.SystemsOf(context);
        if (secret.Length == 0) secret = "whsec_" + Base64UrlNoPadding(RandomNumberGenerator.GetBytes(32));
        var requestId = request.RequestId.Trim() is { Length: > 0 } key ? key : null;
        var row = await store.CreateAsync(context.Caller().Subject, requestId, url, types, request.Description.Trim(), systems, secret,
            context.CancellationToken);
        // Shown here only (and to a repeat of the same request_id, which may have lost the first answer); stored encrypted.
        return new CreateEndpointResponse { Endpoint = ToWire(row), Secret = store.SecretOf(row) };
    }

    [Allow(Roles.Partner)]
    public override async Task<ListEndpointsResponse> ListEndpoints(ListEndpointsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var size = PageToken.PageSize(request.PageSize, v);
        var owner = Owner(context);
        var after = PageToken.Decode(request.PageToken, "endpoints|" + owner, v) is { } last && Guid.TryParse(last, out var id) ? id : Guid.Empty;
        v.ThrowIfInvalid();
        var rows = await store.ListAsync(owner, after, size + 1, context.CancellationToken);
        var response = new ListEndpointsResponse();
        response.Endpoints.AddRange(rows.Take(size).Select(ToWire));
        if (rows.Count > size) response.NextPageToken = PageToken.Encode(rows[size - 1].Id.ToString(), "endpoints|" + owner);
        return response;
    }

    [Allow(Roles.Partner)]
    public override async Task<Endpoint> UpdateEndpoint(UpdateEndpointRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.Id, "id", v);
        var mask = request.UpdateMask.Select(p => p.Trim()).ToHashSet();
        foreach (var path in mask.Where(p => p is not ("url" or "event_types" or "description")))
            v.Add("update_mask", $"'{Echo.Cut(path)}' is not one of url, event_types, description.");
        var all = mask.Count == 0;
        var url = all || mask.Contains("url") ? Url(request.Url, v) : null;
        var types = all || mask.Contains("event_types") ? EventTypes(request.EventTypes, v) : null;
        var description = all || mask.Contains("description") ? request.Description.Trim() : null;
        if (request.ExpectedVersion < 0) v.Add("expected_version", "must not be negative.");
        v.ThrowIfInvalid();
        // A partner updating its endpoint records its token's current systems (how an endpoint from before scoping gets them).
        var systems = context.Caller().IsPartnerOnly ? scope.SystemsOf(context) : null;
        return ToWire(await store.UpdateAsync(id, Owner(context), request.ExpectedVersion, url, types, description, systems, context.CancellationToken));
    }

    [Allow(Roles.Partner)]
    public override async Task<Endpoint> EnableEndpoint(EnableEndpointRequest request, ServerCallContext context) =>
        ToWire(await store.EnableAsync(Ids.Parse(request.Id, "id"), Owner(context), context.CancellationToken));

    [Allow(Roles.Partner)]
    public override async Task<Endpoint> DisableEndpoint(DisableEndpointRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.Id, "id");
        var reason = request.Reason.Trim() is { Length: > 0 } given ? given : $"Disabled by {context.Caller().Subject}.";
        return ToWire(await store.DisableAsync(id, Owner(context), reason, context.CancellationToken));
    }

    [Allow(Roles.Partner)]
    public override async Task<DeleteEndpointResponse> DeleteEndpoint(DeleteEndpointRequest request, ServerCallContext context)
    {
        await store.DeleteAsync(Ids.Parse(request.Id, "id"), Owner(context), context.CancellationToken);
        return new DeleteEndpointResponse();
    }

    [Allow(Roles.Partner)]
    public override async Task<ListDeliveriesResponse> ListDeliveries(ListDeliveriesRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.EndpointId, "endpoint_id", v);
        var size = PageToken.PageSize(request.PageSize, v);
        var status = request.Status switch
        {
            DeliveryStatus.Unspecified => null,
            DeliveryStatus.Pending => "pending",
            DeliveryStatus.Delivered => "delivered",
            DeliveryStatus.Failed => "failed",
            _ => throw new ValidationException("status", "is not a known DeliveryStatus."),
        };
        var filters = $"deliveries|{id}|{status}";
        var before = PageToken.Decode(request.PageToken, filters, v) is { } last && long.TryParse(last, out var n) ? n : long.MaxValue;
        v.ThrowIfInvalid();
        await store.GetAsync(id, Owner(context), context.CancellationToken); // NOT_FOUND for someone else's endpoint
        var rows = await store.ListDeliveriesAsync(id, status, before, size + 1, context.CancellationToken);
        var response = new ListDeliveriesResponse();
        response.Deliveries.AddRange(rows.Take(size).Select(ToWire));
        if (rows.Count > size) response.NextPageToken = PageToken.Encode(rows[size - 1].Id.ToString(CultureInfo.InvariantCulture), filters);
        return response;
    }

    [Allow(Roles.Partner)]
    public override async Task<ReplayDeliveriesResponse> ReplayDeliveries(ReplayDeliveriesRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.EndpointId, "endpoint_id", v);
        var token = request.FromToken.Trim();
        (ulong Tx, long Seq)? from = null;
        if (token.Length > 0)
        {
            var parts = token.Split('-');
            if (parts.Length == 2 && ulong.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var tx)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
                from = (tx, seq);
            else v.Add("from_token", "is not a change-feed token (\"<tx>-<id>\").");
        }
        v.ThrowIfInvalid();
        var row = from is { } f
            ? await store.RewindAsync(id, Owner(context), f.Tx, f.Seq, context.CancellationToken)
            : await store.EnableAsync(id, Owner(context), context.CancellationToken);
        return new ReplayDeliveriesResponse { Endpoint = ToWire(row) };
    }

    /// <summary>Admin: every endpoint (null); anyone else: the endpoints its subject created.</summary>
    private static string? Owner(ServerCallContext context)
    {
        var caller = context.Caller();
        return caller.Roles.Contains(Roles.Admin) ? null : caller.Subject;
    }

    /// <summary>A host name is not resolved here: what it resolves to can change, so each delivery checks where it connects.</summary>
    private string Url(string value, Validator v)
    {
        var text = value.Trim();
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
            v.Add("url", "must be an absolute http:// or https:// URL.");
        else if (uri.UserInfo.Length > 0) v.Add("url", "must not carry a user name or password (the signature authenticates the sender).");
        else if (addresses.UrlProblem(uri) is { } problem) v.Add("url", problem);
        return text;
    }

    private static string[] EventTypes(IEnumerable<string> values, Validator v)
    {
        var types = values.Select(t => t.Trim()).Distinct().ToArray();
        foreach (var t in types.Where(t => !EventTypeName().IsMatch(t)))
            v.Add("event_types", $"'{Echo.Cut(t)}' is not an event type name (e.g. OrderPaid).");
        return types;
    }

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,99}$")]
    private static partial Regex EventTypeName();

    private static string Base64UrlNoPadding(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static Timestamp? Time(DateTime? value) => value is { } t ? Timestamp.FromDateTime(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : null;

    private static Endpoint ToWire(EndpointRow r)
    {
        var e = new Endpoint
        {
            Id = r.Id.ToString(), Url = r.Url, Description = r.Description, Enabled = r.Enabled, DisabledReason = r.DisabledReason ?? "",
            DisabledAt = Time(r.DisabledAt), Position = r.Position, Failures = r.Failures, FailingSince = Time(r.FailingSince),
            NextAttemptAt = Time(r.NextAttemptAt), Owner = r.Owner, Version = r.Version, CreatedAt = Time(r.CreatedAt),
        };
        e.EventTypes.AddRange(r.EventTypes);
        return e;
    }

    private static Delivery ToWire(DeliveryRow r) => new()
    {
        Id = r.Id, EndpointId = r.EndpointId.ToString(), EventId = r.MessageId.ToString(), EventType = r.EventType,
        Token = $"{r.EventTx}-{r.EventSeq}",
        Status = r.Status switch { "delivered" => DeliveryStatus.Delivered, "failed" => DeliveryStatus.Failed, _ => DeliveryStatus.Pending },
        Attempts = r.Attempts, LastStatusCode = r.LastStatusCode ?? 0, LastError = r.LastError ?? "",
        FirstAttemptAt = Time(r.FirstAttemptAt), LastAttemptAt = Time(r.LastAttemptAt), NextAttemptAt = Time(r.NextAttemptAt),
        DeliveredAt = Time(r.DeliveredAt),
    };
}

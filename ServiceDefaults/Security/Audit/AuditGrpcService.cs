using Crm.Audit.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Npgsql;

namespace Crm.ServiceDefaults.Security.Audit;

/// <summary>crm.audit.v1.AuditLog over this service's audit_events, newest first.</summary>
public sealed class AuditGrpcService(NpgsqlDataSource dataSource) : AuditLog.AuditLogBase
{
    [Allow(Roles.Admin)]
    public override async Task<ListAuditEventsResponse> ListAuditEvents(ListAuditEventsRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        var target = Blank(request.TargetId);
        var actor = Blank(request.Actor);
        var outcome = Blank(request.Outcome)?.ToUpperInvariant();
        if (outcome is not null and not "OK" and not DeniedAttempts.Outcome and not Audit.Replayed) v.Add("outcome", "must be OK, DENIED or REPLAYED");
        DateTime? since = request.Since?.ToDateTime(), until = request.Until?.ToDateTime();
        var filters = $"target={target}|actor={actor}|outcome={outcome}|since={request.Since}|until={request.Until}";
        var before = PageToken.Decode(request.PageToken, filters, v) is { } key && long.TryParse(key, out var id) ? id : long.MaxValue;
        v.ThrowIfInvalid();

        await using var connection = await dataSource.OpenConnectionAsync(context.CancellationToken);
        var rows = (await connection.QueryAsync<Row>(new CommandDefinition("""
            SELECT id, at, subject, role, client_id, rpc, target_id, idempotency_key, outcome FROM audit_events
            WHERE id < @before
              AND (@target::text IS NULL OR target_id = @target)
              AND (@actor::text IS NULL OR subject = @actor)
              AND (@outcome::text IS NULL OR outcome = @outcome)
              AND (@since::timestamptz IS NULL OR at >= @since)
              AND (@until::timestamptz IS NULL OR at < @until)
            ORDER BY id DESC LIMIT @limit
            """, new { before, target, actor, outcome, since, until, limit = pageSize + 1 }, cancellationToken: context.CancellationToken))).ToList();
        var response = new ListAuditEventsResponse();
        response.Events.AddRange(rows.Take(pageSize).Select(r => new AuditEvent
        {
            Id = r.Id, At = Timestamp.FromDateTime(DateTime.SpecifyKind(r.At, DateTimeKind.Utc)), Subject = r.Subject, Role = r.Role,
            ClientId = r.ClientId ?? "", Rpc = r.Rpc, TargetId = r.TargetId ?? "", IdempotencyKey = r.IdempotencyKey ?? "", Outcome = r.Outcome,
        }));
        if (rows.Count > pageSize) response.NextPageToken = PageToken.Encode(rows[pageSize - 1].Id.ToString(), filters);
        return response;
    }

    private static string? Blank(string value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private sealed class Row
    {
        public long Id { get; init; }
        public DateTime At { get; init; }
        public string Subject { get; init; } = "";
        public string Role { get; init; } = "";
        public string? ClientId { get; init; }
        public string Rpc { get; init; } = "";
        public string? TargetId { get; init; }
        public string? IdempotencyKey { get; init; }
        public string Outcome { get; init; } = "";
    }
}

using System.Globalization;
using Crm.ServiceDefaults.Errors;
using AuditLog = Crm.ServiceDefaults.Security.Audit.Audit;
using Dapper;
using Crm.Messaging.ChangeFeed;
using Npgsql;

namespace Crm.Messaging.Webhooks;

/// <summary>
/// The webhook tables (migration 0005): endpoints with their cursor and failure state, and the delivery log.
/// An operator's change (disable, replay, update, delete) bumps <c>version</c>; the dispatcher writes its progress
/// only while the version it read still holds and it still holds the lease, so it never undoes an operator's replay.
/// </summary>
public sealed class WebhookStore(NpgsqlDataSource dataSource, TimeProvider clock, WebhookSecrets secrets, PartnerChangeScope scope)
{
    private const string EndpointColumns = """
        id, owner, url, event_types, description, systems, secret, secret_key_id, enabled, disabled_reason, disabled_at,
        cursor_tx::text AS cursor_tx, cursor_id, failures, failing_since, next_attempt_at, version, created_at
        """;

    // ---- operators (WebhooksService) ----

    /// <summary>
    /// Creates an endpoint positioned after every event committed so far, its secret encrypted; a repeated request_id
    /// returns the first. <paramref name="systems"/>: a partner's (it gets only its customers' events), null for staff.
    /// </summary>
    public async Task<EndpointRow> CreateAsync(string owner, string? requestId, string url, string[] eventTypes, string description,
        string[]? systems, string secret, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (requestId is not null && await connection.QuerySingleOrDefaultAsync<EndpointRow>(new CommandDefinition(
                $"SELECT {EndpointColumns} FROM webhook_endpoints WHERE owner = @owner AND request_id = @requestId",
                new { owner, requestId }, tx, cancellationToken: ct)) is { } existing)
        {
            AuditLog.MarkReplayed();
            await AuditLog.RecordAsync(tx, existing.Id.ToString(), ct);
            await tx.CommitAsync(ct);
            return existing;
        }
        var id = Guid.CreateVersion7();
        var (secretKeyId, storedSecret) = secrets.Protect(id, secret);
        // The position: the last event no running transaction can still add to; later commits are all after it.
        var row = await connection.QuerySingleAsync<EndpointRow>(new CommandDefinition($"""
            WITH {ChangeHorizon.Ctes},
                 last AS (SELECT c.tx, c.id FROM change_events c, horizon WHERE c.tx < horizon.below ORDER BY c.tx DESC, c.id DESC LIMIT 1)
            INSERT INTO webhook_endpoints (id, owner, request_id, url, event_types, description, systems, secret, secret_key_id,
                                           cursor_tx, cursor_id, created_at, updated_at)
            SELECT @id, @owner, @requestId, @url, @eventTypes, @description, @systems::text[], @storedSecret, @secretKeyId,
                   coalesce((SELECT tx FROM last), '0'::xid8), coalesce((SELECT id FROM last), 0), @now, @now
            RETURNING {EndpointColumns}
            """, new { id, owner, requestId, url, eventTypes, description, systems, storedSecret, secretKeyId, now = clock.GetUtcNow().UtcDateTime },
            tx, cancellationToken: ct));
        await AuditLog.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return row;
    }

    public async Task<EndpointRow> GetAsync(Guid id, string? owner, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<EndpointRow>(new CommandDefinition(
                   $"SELECT {EndpointColumns} FROM webhook_endpoints WHERE id = @id AND (@owner::text IS NULL OR owner = @owner)",
                   new { id, owner }, cancellationToken: ct))
               ?? throw NotFound(id);
    }

    public async Task<List<EndpointRow>> ListAsync(string? owner, Guid after, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<EndpointRow>(new CommandDefinition($"""
            SELECT {EndpointColumns} FROM webhook_endpoints
            WHERE id > @after AND (@owner::text IS NULL OR owner = @owner) ORDER BY id LIMIT @limit
            """, new { owner, after, limit }, cancellationToken: ct))).ToList();
    }

    /// <summary><paramref name="systems"/>: the updating partner's, which replace the endpoint's; null (staff) keeps them.</summary>
    public Task<EndpointRow> UpdateAsync(Guid id, string? owner, long expectedVersion, string? url, string[]? eventTypes, string? description,
        string[]? systems, CancellationToken ct) =>
        ChangeAsync(id, owner, expectedVersion, """
            url = coalesce(@url, url), event_types = coalesce(@eventTypes, event_types), description = coalesce(@description, description),
            systems = coalesce(@systems::text[], systems)
            """, new { url, eventTypes, description, systems }, null, ct);

    /// <summary>Enables the endpoint and makes its head event due now (a failed delivery becomes pending again).</summary>
    public Task<EndpointRow> EnableAsync(Guid id, string? owner, CancellationToken ct) =>
        ChangeAsync(id, owner, 0, """
            enabled = true, disabled_reason = NULL, disabled_at = NULL, failures = 0, failing_since = NULL, next_attempt_at = NULL
            """, null, "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = NULL WHERE endpoint_id = @id AND status = 'failed'", ct);

    public Task<EndpointRow> DisableAsync(Guid id, string? owner, string reason, CancellationToken ct) =>
        ChangeAsync(id, owner, 0, "enabled = false, disabled_reason = @reason, disabled_at = @now, next_attempt_at = NULL",
            new { reason }, null, ct);

    /// <summary>Moves the cursor back to <paramref name="tx"/>-<paramref name="seq"/> and enables: every event after it goes out again.</summary>
    public Task<EndpointRow> RewindAsync(Guid id, string? owner, ulong tx, long seq, CancellationToken ct) =>
        ChangeAsync(id, owner, 0, """
            enabled = true, disabled_reason = NULL, disabled_at = NULL, failures = 0, failing_since = NULL, next_attempt_at = NULL,
            cursor_tx = @tx::xid8, cursor_id = @seq
            """, new { tx = tx.ToString(CultureInfo.InvariantCulture), seq },
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = NULL WHERE endpoint_id = @id AND status = 'failed'", ct);

    public async Task DeleteAsync(Guid id, string? owner, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var deleted = await connection.ExecuteAsync(new CommandDefinition(
            "DELETE FROM webhook_endpoints WHERE id = @id AND (@owner::text IS NULL OR owner = @owner)", new { id, owner }, tx, cancellationToken: ct));
        if (deleted == 0) throw NotFound(id);
        await AuditLog.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
    }

    private async Task<EndpointRow> ChangeAsync(Guid id, string? owner, long expectedVersion, string set, object? values, string? alsoSql,
        CancellationToken ct)
    {
        var parameters = new DynamicParameters(values);
        parameters.AddDynamicParams(new { id, owner, expectedVersion, now = clock.GetUtcNow().UtcDateTime });
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var current = await connection.QuerySingleOrDefaultAsync<long?>(new CommandDefinition(
            "SELECT version FROM webhook_endpoints WHERE id = @id AND (@owner::text IS NULL OR owner = @owner) FOR UPDATE",
            parameters, tx, cancellationToken: ct)) ?? throw NotFound(id);
        if (expectedVersion != 0 && expectedVersion != current)
            throw new ConcurrencyConflictException("webhook endpoint", id.ToString(), expectedVersion, current);
        var row = await connection.QuerySingleAsync<EndpointRow>(new CommandDefinition($"""
            UPDATE webhook_endpoints SET {set}, version = version + 1, updated_at = @now WHERE id = @id RETURNING {EndpointColumns}
            """, parameters, tx, cancellationToken: ct));
        if (alsoSql is not null) await connection.ExecuteAsync(new CommandDefinition(alsoSql, parameters, tx, cancellationToken: ct));
        await AuditLog.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return row;
    }

    public async Task<List<DeliveryRow>> ListDeliveriesAsync(Guid endpointId, string? status, long before, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<DeliveryRow>(new CommandDefinition("""
            SELECT id, endpoint_id, event_tx::text AS event_tx, event_seq, message_id, event_type, status, attempts, last_status_code,
                   last_error, first_attempt_at, last_attempt_at, next_attempt_at, delivered_at
            FROM webhook_deliveries
            WHERE endpoint_id = @endpointId AND id < @before AND (@status::text IS NULL OR status = @status)
            ORDER BY id DESC LIMIT @limit
            """, new { endpointId, status, before, limit }, cancellationToken: ct))).ToList();
    }

    /// <summary>The signing secret of <paramref name="endpoint"/> in clear.</summary>
    public string SecretOf(EndpointRow endpoint) => secrets.Reveal(endpoint.Id, endpoint.SecretKeyId, endpoint.Secret);

    /// <summary>
    /// Moves every secret not under the current key (still in clear from before migration 0006, or under a retired key)
    /// to the current key; returns how many. Nothing to do without a key. Each row in its own statement, guarded by the
    /// value read, so a concurrent instance or operator change is never overwritten.
    /// </summary>
    public async Task<int> ReencryptSecretsAsync(CancellationToken ct)
    {
        if (secrets.CurrentKeyId is not { } current) return 0;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = (await connection.QueryAsync<EndpointRow>(new CommandDefinition(
            $"SELECT {EndpointColumns} FROM webhook_endpoints WHERE secret_key_id IS DISTINCT FROM @current", new { current }, cancellationToken: ct))).ToList();
        var moved = 0;
        foreach (var row in rows)
        {
            var (keyId, stored) = secrets.Protect(row.Id, SecretOf(row));
            moved += await connection.ExecuteAsync(new CommandDefinition("""
                UPDATE webhook_endpoints SET secret = @stored, secret_key_id = @keyId
                WHERE id = @id AND secret = @old AND secret_key_id IS NOT DISTINCT FROM @oldKeyId
                """, new { id = row.Id, stored, keyId, old = row.Secret, oldKeyId = row.SecretKeyId }, cancellationToken: ct));
        }
        return moved;
    }

    private static NotFoundException NotFound(Guid id) => new("webhook endpoint", id.ToString());

    // ---- the dispatcher ----

    /// <summary>
    /// Enabled endpoints with events after their cursor (below the horizon: readable now) whose head event is due and that no
    /// instance holds. Read-only, so an idle service writes nothing: an endpoint is only claimed when there is something to
    /// send, not while the only new event waits behind an open transaction.
    /// </summary>
    public async Task<List<Guid>> DueAsync(CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<Guid>(new CommandDefinition($"""
            WITH {ChangeHorizon.Ctes}
            SELECT e.id FROM webhook_endpoints e, horizon
            WHERE e.enabled AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= @now) AND (e.lease_until IS NULL OR e.lease_until < @now)
              AND EXISTS (SELECT 1 FROM change_events c WHERE (c.tx, c.id) > (e.cursor_tx, e.cursor_id) AND c.tx < horizon.below)
            """, new { now = clock.GetUtcNow().UtcDateTime }, cancellationToken: ct))).ToList();
    }

    /// <summary>Takes the endpoint for <paramref name="lease"/> if it is still enabled, due and free; null otherwise.</summary>
    public async Task<EndpointRow?> ClaimAsync(Guid id, Guid instance, TimeSpan lease, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<EndpointRow>(new CommandDefinition($"""
            UPDATE webhook_endpoints SET lease_owner = @instance, lease_until = @until
            WHERE id = @id AND enabled AND (next_attempt_at IS NULL OR next_attempt_at <= @now)
              AND (lease_until IS NULL OR lease_until < @now OR lease_owner = @instance)
            RETURNING {EndpointColumns}
            """, new { id, instance, now, until = now + lease }, cancellationToken: ct));
    }

    public async Task ReleaseAsync(Guid id, Guid instance)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await connection.ExecuteAsync("UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL WHERE id = @id AND lease_owner = @instance",
            new { id, instance });
    }

    /// <summary>
    /// The next events after the cursor that the endpoint wants (in (tx, id) order, only below the oldest running
    /// transaction that could still add one, <see cref="ChangeHorizon"/>, as the change feed reads), and the last event below that horizon of any type, read in the same
    /// snapshot: once the wanted ones are through, the cursor may move to it.
    /// </summary>
    /// <param name="systems">A partner endpoint's systems: only events about customers linked to them; null: every event.</param>
    public async Task<(List<ChangeEventRow> Events, (ulong Tx, long Seq)? Horizon)> NextEventsAsync(ulong tx, long seq, string[] types, string[]? systems,
        int batch, CancellationToken ct)
    {
        var visible = systems is null ? "true" : scope.LinkedCondition("c");
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = (await connection.QueryAsync<ChangeEventRow>(new CommandDefinition($"""
            WITH {ChangeHorizon.Ctes}
            (SELECT c.tx::text AS tx, c.id AS seq, c.event_type, c.message_id, c.payload::text AS payload, c.occurred_at, false AS is_horizon
             FROM change_events c, horizon
             WHERE (c.tx, c.id) > (@tx::xid8, @seq) AND c.tx < horizon.below AND (cardinality(@types) = 0 OR c.event_type = ANY(@types))
               AND {visible}
             ORDER BY c.tx, c.id LIMIT @batch)
            UNION ALL
            (SELECT c.tx::text, c.id, '', NULL, NULL, NULL, true
             FROM change_events c, horizon WHERE (c.tx, c.id) > (@tx::xid8, @seq) AND c.tx < horizon.below
             ORDER BY c.tx DESC, c.id DESC LIMIT 1)
            """, new { tx = tx.ToString(CultureInfo.InvariantCulture), seq, types, systems = systems ?? [], batch }, cancellationToken: ct))).ToList();
        var horizon = rows.FirstOrDefault(r => r.IsHorizon);
        return (rows.Where(r => !r.IsHorizon).OrderBy(r => r.TxValue).ThenBy(r => r.Seq).ToList(),
            horizon is null ? null : (horizon.TxValue, horizon.Seq));
    }

    /// <summary>Logs the delivery and moves the cursor past it; false when the endpoint changed or was taken meanwhile (stop).</summary>
    public async Task<bool> DeliveredAsync(EndpointRow endpoint, Guid instance, TimeSpan lease, ChangeEventRow e, int statusCode, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await LogAsync(connection, tx, endpoint.Id, e, "delivered", statusCode, null, null, now, ct);
        var moved = await MoveCursorAsync(connection, tx, endpoint, instance, now + lease, e.TxValue, e.Seq, ct);
        await tx.CommitAsync(ct);
        return moved;
    }

    /// <summary>Moves the cursor past events the endpoint does not want.</summary>
    public async Task<bool> SkipToAsync(EndpointRow endpoint, Guid instance, TimeSpan lease, ulong tx, long seq, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await MoveCursorAsync(connection, null, endpoint, instance, clock.GetUtcNow().UtcDateTime + lease, tx, seq, ct);
    }

    /// <summary>Logs a failed attempt and schedules the next, or disables the endpoint when <paramref name="disableReason"/> is given.</summary>
    public async Task FailedAsync(EndpointRow endpoint, Guid instance, ChangeEventRow e, int statusCode, string error, DateTime? nextAttempt,
        string? disableReason, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await LogAsync(connection, tx, endpoint.Id, e, disableReason is null ? "pending" : "failed", statusCode, error, nextAttempt, now, ct);
        await connection.ExecuteAsync(new CommandDefinition("""
            UPDATE webhook_endpoints
            SET failures = failures + 1, failing_since = coalesce(failing_since, @now), next_attempt_at = @nextAttempt,
                enabled = @disable IS NULL, disabled_reason = @disable, disabled_at = CASE WHEN @disable IS NULL THEN NULL ELSE @now END,
                version = version + CASE WHEN @disable IS NULL THEN 0 ELSE 1 END
            WHERE id = @id AND version = @version AND lease_owner = @instance
            """, new { id = endpoint.Id, endpoint.Version, instance, now, nextAttempt, disable = disableReason }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }

    private static async Task<bool> MoveCursorAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, EndpointRow endpoint, Guid instance,
        DateTime leaseUntil, ulong cursorTx, long cursorSeq, CancellationToken ct) =>
        await connection.ExecuteAsync(new CommandDefinition("""
            UPDATE webhook_endpoints
            SET cursor_tx = @cursorTx::xid8, cursor_id = @cursorSeq, failures = 0, failing_since = NULL, next_attempt_at = NULL, lease_until = @leaseUntil
            WHERE id = @id AND version = @version AND lease_owner = @instance
            """, new { id = endpoint.Id, endpoint.Version, instance, leaseUntil, cursorTx = cursorTx.ToString(CultureInfo.InvariantCulture), cursorSeq },
            tx, cancellationToken: ct)) == 1;

    private static Task LogAsync(NpgsqlConnection connection, NpgsqlTransaction tx, Guid endpointId, ChangeEventRow e, string status,
        int statusCode, string? error, DateTime? nextAttempt, DateTime now, CancellationToken ct) =>
        connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO webhook_deliveries (endpoint_id, event_tx, event_seq, message_id, event_type, status, attempts, last_status_code,
                                            last_error, first_attempt_at, last_attempt_at, next_attempt_at, delivered_at)
            VALUES (@endpointId, @tx::xid8, @seq, @messageId, @eventType, @status, 1, @statusCode, @error, @now, @now, @nextAttempt,
                    CASE WHEN @status = 'delivered' THEN @now END)
            ON CONFLICT (endpoint_id, event_tx, event_seq) DO UPDATE
            SET status = excluded.status, attempts = webhook_deliveries.attempts + 1, last_status_code = excluded.last_status_code,
                last_error = coalesce(excluded.last_error, webhook_deliveries.last_error), last_attempt_at = excluded.last_attempt_at,
                next_attempt_at = excluded.next_attempt_at, delivered_at = coalesce(excluded.delivered_at, webhook_deliveries.delivered_at)
            """, new
        {
            endpointId, tx = e.Tx, seq = e.Seq, messageId = e.MessageId, eventType = e.EventType, status,
            statusCode = statusCode == 0 ? (int?)null : statusCode, error, now, nextAttempt,
        }, tx, cancellationToken: ct));
}

public sealed class EndpointRow
{
    public Guid Id { get; init; }
    public string Owner { get; init; } = "";
    public string Url { get; init; } = "";
    public string[] EventTypes { get; init; } = [];
    public string Description { get; init; } = "";
    /// <summary>A partner's systems (only its customers' events); null: a staff endpoint.</summary>
    public string[]? Systems { get; init; }
    /// <summary>As stored: encrypted under <see cref="SecretKeyId"/> (see <see cref="WebhookSecrets"/>).</summary>
    public string Secret { get; init; } = "";
    public string? SecretKeyId { get; init; }
    public bool Enabled { get; init; }
    public string? DisabledReason { get; init; }
    public DateTime? DisabledAt { get; init; }
    public string CursorTx { get; init; } = "0";
    public long CursorId { get; init; }
    /// <summary>Kept current by the dispatcher while it holds the endpoint.</summary>
    public int Failures { get; set; }
    public DateTime? FailingSince { get; set; }
    public DateTime? NextAttemptAt { get; init; }
    public long Version { get; init; }
    public DateTime CreatedAt { get; init; }

    public ulong CursorTxValue => ulong.Parse(CursorTx, CultureInfo.InvariantCulture);
    public string Position => $"{CursorTx}-{CursorId}";
}

public sealed class ChangeEventRow
{
    public string Tx { get; init; } = "";
    public long Seq { get; init; }
    public string EventType { get; init; } = "";
    public Guid MessageId { get; init; }
    public string Payload { get; init; } = "";
    public DateTime OccurredAt { get; init; }
    public bool IsHorizon { get; init; }

    public ulong TxValue => ulong.Parse(Tx, CultureInfo.InvariantCulture);
    public string Token => $"{Tx}-{Seq}";
}

public sealed class DeliveryRow
{
    public long Id { get; init; }
    public Guid EndpointId { get; init; }
    public string EventTx { get; init; } = "";
    public long EventSeq { get; init; }
    public Guid MessageId { get; init; }
    public string EventType { get; init; } = "";
    public string Status { get; init; } = "";
    public int Attempts { get; init; }
    public int? LastStatusCode { get; init; }
    public string? LastError { get; init; }
    public DateTime FirstAttemptAt { get; init; }
    public DateTime LastAttemptAt { get; init; }
    public DateTime? NextAttemptAt { get; init; }
    public DateTime? DeliveredAt { get; init; }
}

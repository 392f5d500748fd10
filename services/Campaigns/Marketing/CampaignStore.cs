using Crm.Campaigns.V1;
using Crm.ServiceDefaults.Data;
using Crm.Contracts;
using Crm.Messaging;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;
using AuditLog = Crm.ServiceDefaults.Security.Audit.Audit;

namespace Crm.Campaigns.Marketing;

public sealed class CampaignRow
{
    public Guid CampaignId { get; init; }
    public string Name { get; init; } = "";
    public short Kind { get; init; }
    public string State { get; init; } = "draft";
    public Guid? SegmentId { get; init; }
    public short Channel { get; init; }
    public string Template { get; init; } = "";
    public short ScheduleKind { get; init; }
    public DateTime? StartAt { get; init; }
    public string Cron { get; init; } = "";
    public long Version { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
    /// <summary>The loyalty coupon reward given with each message; null for none.</summary>
    public string? RewardId { get; init; }
    public int ControlSharePercent { get; init; }
    public int AttributionWindowDays { get; init; } = 14;
    /// <summary>Since its last move to running (scheduler queries only; null elsewhere).</summary>
    public DateTime? RunningSince { get; init; }
}

public sealed class DeliveryRow
{
    public Guid CustomerId { get; init; }
    public string Occurrence { get; init; } = "";
    public string Status { get; init; } = "";
    public short? Channel { get; init; }
    public string? Message { get; init; }
    public DateTime At { get; init; }
    public DateTime? NotBefore { get; init; }
}

/// <summary>Campaigns and their delivery log in campaignsdb.</summary>
public sealed class CampaignStore(NpgsqlDataSource db, TimeProvider clock, Outbox outbox)
{
    private const string Columns = "campaign_id, name, kind, state, segment_id, channel, template, schedule_kind, start_at, cron, version, created_at, updated_at" +
        ", reward_id, control_share_percent, attribution_window_days";

    public async Task<CampaignRow> CreateAsync(CampaignRow c, string? idempotencyKey, CancellationToken ct)
    {
        if (idempotencyKey is not null && await FindByKeyAsync(idempotencyKey, ct) is { } earlier)
        {
            AuditLog.MarkReplayed();
            return earlier;
        }
        var now = clock.UtcNowForDb();
        var id = Guid.CreateVersion7();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var inserted = await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO campaigns (campaign_id, name, kind, state, segment_id, channel, template, schedule_kind, start_at, cron, idempotency_key, created_at, updated_at)
            VALUES (@id, @Name, @Kind, 'draft', @SegmentId, @Channel, @Template, @ScheduleKind, @StartAt, @Cron, @idempotencyKey, @now, @now)
            ON CONFLICT (idempotency_key) DO NOTHING
            """, new { id, c.Name, c.Kind, c.SegmentId, c.Channel, c.Template, c.ScheduleKind, c.StartAt, c.Cron, idempotencyKey, now }, tx, cancellationToken: ct));
        if (inserted == 1)
            await connection.ExecuteAsync(new CommandDefinition(
                "UPDATE campaigns SET reward_id = @RewardId, control_share_percent = @ControlSharePercent, attribution_window_days = @AttributionWindowDays WHERE campaign_id = @id",
                new { id, c.RewardId, c.ControlSharePercent, c.AttributionWindowDays }, tx, cancellationToken: ct));
        if (inserted == 0)
        {
            await tx.RollbackAsync(ct);
            return (await FindByKeyAsync(idempotencyKey!, ct))!; // a concurrent retry won
        }
        await AuditLog.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (await GetAsync(id, ct))!;
    }

    private async Task<CampaignRow?> FindByKeyAsync(string key, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<CampaignRow>(new CommandDefinition(
            $"SELECT {Columns} FROM campaigns WHERE idempotency_key = @key", new { key }, cancellationToken: ct));
    }

    public async Task<CampaignRow?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<CampaignRow>(new CommandDefinition(
            $"SELECT {Columns} FROM campaigns WHERE campaign_id = @id", new { id }, cancellationToken: ct));
    }

    public async Task<CampaignRow> RequireAsync(Guid id, CancellationToken ct) =>
        await GetAsync(id, ct) ?? throw new NotFoundException("campaign", id.ToString());

    /// <summary>Newest first (ids are time-ordered UUIDv7).</summary>
    public async Task<IReadOnlyList<CampaignRow>> ListAsync(Guid? before, int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<CampaignRow>(new CommandDefinition($"""
            SELECT {Columns} FROM campaigns WHERE @before::uuid IS NULL OR campaign_id < @before ORDER BY campaign_id DESC LIMIT @limit
            """, new { before, limit }, cancellationToken: ct))).ToList();
    }

    public async Task<IReadOnlyList<CampaignRow>> RunningAsync(CampaignKind kind, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<CampaignRow>(new CommandDefinition(
            $"SELECT {Columns} FROM campaigns WHERE state = 'running' AND kind = @kind", new { kind = (short)kind }, cancellationToken: ct))).ToList();
    }

    /// <summary>The running campaigns of a kind, read on the caller's transaction.</summary>
    public static async Task<IReadOnlyList<CampaignRow>> RunningAsync(NpgsqlTransaction tx, CampaignKind kind, CancellationToken ct) =>
        (await tx.Connection!.QueryAsync<CampaignRow>(new CommandDefinition(
            $"SELECT {Columns} FROM campaigns WHERE state = 'running' AND kind = @kind", new { kind = (short)kind }, tx, cancellationToken: ct))).ToList();

    public async Task<CampaignRow> ChangeStateAsync(Guid id, long version, CampaignState to, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var current = await connection.QuerySingleOrDefaultAsync<CampaignRow>(new CommandDefinition(
            $"SELECT {Columns} FROM campaigns WHERE campaign_id = @id FOR UPDATE", new { id }, tx, cancellationToken: ct))
            ?? throw new NotFoundException("campaign", id.ToString());
        if (current.Version != version) throw new ConcurrencyConflictException("campaign", id.ToString(), version, current.Version);
        var from = CampaignStates.Parse(current.State);
        if (!CampaignStates.CanMove(from, to))
            throw new PreconditionFailedException("CAMPAIGN_STATE", $"campaign/{id}",
                $"A {CampaignStates.Key(from)} campaign cannot become {CampaignStates.Key(to)}.");
        var now = clock.UtcNowForDb();
        await connection.ExecuteAsync(new CommandDefinition(
            "UPDATE campaigns SET state = @state, version = version + 1, updated_at = @now WHERE campaign_id = @id",
            new { id, state = CampaignStates.Key(to), now }, tx, cancellationToken: ct));
        if (to == CampaignState.Running) await StartRunningAsync(tx, current, from, now, ct);
        await AuditLog.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        if (to == CampaignState.Running) outbox.Wake();
        return (await GetAsync(id, ct))!;
    }

    /// <summary>
    /// Running from now on: the scheduler runs no due time before <c>running_since</c> (a resumed campaign does not catch up
    /// its pause). The first start (from scheduled) is the launch: CampaignLaunched in the same transaction.
    /// </summary>
    private async Task StartRunningAsync(NpgsqlTransaction tx, CampaignRow c, CampaignState from, DateTime now, CancellationToken ct)
    {
        await tx.Connection!.ExecuteAsync(new CommandDefinition("UPDATE campaigns SET running_since = @now WHERE campaign_id = @CampaignId",
            new { c.CampaignId, now }, tx, cancellationToken: ct));
        if (from != CampaignState.Scheduled) return;
        await outbox.AddAsync(tx, new CampaignLaunched(c.CampaignId, c.Name, EventName((CampaignKind)c.Kind), EventName((CampaignChannel)c.Channel),
            EventName((ScheduleKind)c.ScheduleKind), c.SegmentId, new DateTimeOffset(now, TimeSpan.Zero)), ct);
    }

    /// <summary>An enum value as events name it: TierWelcome → "tier_welcome".</summary>
    public static string EventName<T>(T value) where T : struct, Enum =>
        string.Concat(value.ToString().Select((ch, i) => char.IsUpper(ch) && i > 0 ? "_" + char.ToLowerInvariant(ch) : char.ToLowerInvariant(ch).ToString()));

    public async Task<IReadOnlyList<DeliveryRow>> DeliveriesAsync(Guid campaignId, (Guid Customer, string Occurrence)? after, int limit, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<DeliveryRow>(new CommandDefinition("""
            SELECT d.customer_id, d.occurrence, d.status, m.channel, m.message, d.at, d.not_before
            FROM campaign_deliveries d
            LEFT JOIN message_log m ON m.campaign_id = d.campaign_id AND m.customer_id = d.customer_id AND m.occurrence = d.occurrence
            WHERE d.campaign_id = @campaignId AND (@hasAfter = false OR (d.customer_id, d.occurrence) > (@afterCustomer, @afterOccurrence))
            ORDER BY d.customer_id, d.occurrence LIMIT @limit
            """, new { campaignId, hasAfter = after is not null, afterCustomer = after?.Customer ?? Guid.Empty, afterOccurrence = after?.Occurrence ?? "", limit },
            cancellationToken: ct))).ToList();
    }
}

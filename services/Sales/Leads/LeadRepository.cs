using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Npgsql;

namespace Crm.Sales.Leads;

public static class LeadStatuses
{
    public const string New = "new", Contacted = "contacted", Qualified = "qualified", Disqualified = "disqualified", Converted = "converted";
    public static readonly string[] Open = [New, Contacted, Qualified];
}

public sealed class LeadRow
{
    public Guid Id { get; init; }
    public long Seq { get; init; }
    public string Name { get; init; } = "";
    public string? Phone { get; init; }
    public string? Email { get; init; }
    public string? SourceChannel { get; init; }
    public string? Interest { get; init; }
    public string? Notes { get; init; }
    public string Status { get; init; } = "";
    public string? DisqualifyReason { get; init; }
    public string OwnerId { get; init; } = "";
    public string? OwnerTeam { get; init; }
    public Guid? CustomerId { get; init; }
    public bool CustomerCreated { get; init; }
    public Guid? OpportunityId { get; init; }
    public string? ConversionKey { get; init; }
    public long Version { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
}

/// <summary>A validated lead, contact details normalised.</summary>
public sealed record NewLead(string Name, string? Phone, string? Email, string? SourceChannel, string? Interest, string? Notes);

public sealed record LeadFilter(string? Status, string? OwnerId);

/// <summary>Leads; each write audited in its transaction.</summary>
public sealed class LeadRepository(NpgsqlDataSource dataSource, TimeProvider clock)
{
    internal const string Columns = """
        id, seq, name, phone, email, source_channel, interest, notes, status, disqualify_reason, owner_id, owner_team,
        customer_id, customer_created, opportunity_id, conversion_key, version, created_at, updated_at
        """;

    /// <returns>The lead, and false when request_id had created it before (nothing new written).</returns>
    /// <exception cref="AlreadyExistsException">An open lead has the same phone or e-mail.</exception>
    public async Task<(LeadRow Lead, bool Created)> CreateAsync(NewLead lead, string ownerId, string? ownerTeam, string? requestId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (requestId is not null && await FindAsync(connection, tx, "request_id = @requestId", new { requestId }, ct) is { } earlier)
            return (earlier, false);
        // Two imports of the same person at once: serialise on the contact values, then look for an open duplicate.
        foreach (var key in new[] { lead.Phone, lead.Email }.Where(k => k is not null).Order(StringComparer.Ordinal))
            await connection.ExecuteAsync(new CommandDefinition("SELECT pg_advisory_xact_lock(hashtext('lead:' || @key))", new { key }, tx, cancellationToken: ct));
        var duplicate = await FindAsync(connection, tx,
            "status = ANY(@open) AND ((@phone::text IS NOT NULL AND phone = @phone) OR (@email::text IS NOT NULL AND email = @email)) ORDER BY seq LIMIT 1",
            new { open = LeadStatuses.Open, phone = lead.Phone, email = lead.Email }, ct);
        if (duplicate is not null)
            throw new AlreadyExistsException("lead", duplicate.Id.ToString(),
                $"An open lead ({duplicate.Id}, {duplicate.Status}) already has this {(lead.Phone is not null && duplicate.Phone == lead.Phone ? "phone" : "e-mail")}.");

        var now = clock.UtcNowForDb();
        var id = Guid.CreateVersion7();
        var row = await connection.QuerySingleAsync<LeadRow>(new CommandDefinition($"""
            INSERT INTO leads (id, name, phone, email, source_channel, interest, notes, status, owner_id, owner_team, request_id, created_at, updated_at)
            VALUES (@id, @Name, @Phone, @Email, @SourceChannel, @Interest, @Notes, 'new', @ownerId, @ownerTeam, @requestId, @now, @now)
            RETURNING {Columns}
            """, new { id, lead.Name, lead.Phone, lead.Email, lead.SourceChannel, lead.Interest, lead.Notes, ownerId, ownerTeam, requestId, now },
            tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return (row, true);
    }

    public async Task<LeadRow?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await FindAsync(connection, null, "id = @id", new { id }, ct);
    }

    public async Task<IReadOnlyList<LeadRow>> ListAsync(Scope scope, LeadFilter filter, long? beforeSeq, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<LeadRow>(new CommandDefinition($"""
            SELECT {Columns} FROM leads
            WHERE {scope.Sql()} AND (@status::text IS NULL OR status = @status) AND (@ownerId::text IS NULL OR owner_id = @ownerId)
              AND (@before::bigint IS NULL OR seq < @before)
            ORDER BY seq DESC LIMIT @limit
            """, new { scopeSubject = scope.Subject, scopeTeam = scope.Team, status = filter.Status, ownerId = filter.OwnerId, before = beforeSeq, limit },
            cancellationToken: ct));
        return rows.ToList();
    }

    /// <summary>Locks the lead, checks the caller may touch it, lets <paramref name="change"/> check it, applies the returned SET clause, audits.</summary>
    public async Task<LeadRow> UpdateAsync(Guid id, long expectedVersion, Action<LeadRow> authorize, Func<LeadRow, (string Set, object Args)?> change, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var lead = await FindAsync(connection, tx, "id = @id FOR UPDATE", new { id }, ct) ?? throw new NotFoundException("lead", id.ToString());
        authorize(lead); // before the version check: someone else's lead says nothing about its version
        if (expectedVersion > 0 && lead.Version != expectedVersion)
            throw new ConcurrencyConflictException("lead", id.ToString(), expectedVersion, lead.Version);
        if (change(lead) is not { } update) return lead;
        var args = new DynamicParameters(update.Args);
        args.Add("id", id);
        args.Add("now", clock.UtcNowForDb());
        var row = await connection.QuerySingleAsync<LeadRow>(new CommandDefinition(
            $"UPDATE leads SET {update.Set}, version = version + 1, updated_at = @now WHERE id = @id RETURNING {Columns}", args, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, id.ToString(), ct);
        await tx.CommitAsync(ct);
        return row;
    }

    internal static async Task<LeadRow?> FindAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string where, object args, CancellationToken ct) =>
        await connection.QuerySingleOrDefaultAsync<LeadRow>(new CommandDefinition($"SELECT {Columns} FROM leads WHERE {where}", args, tx, cancellationToken: ct));
}

using Crm.ServiceDefaults.Data;
using Crm.Contracts;
using Crm.ServiceDefaults.Errors;
using Crm.Messaging;
using Dapper;
using Npgsql;

namespace Crm.Customer.Customers;

public sealed record CustomerSearch(string? Name, string? Phone, string? Email, string? Tag, string? Region);

/// <summary>Customer rows and the events their changes publish, written in one transaction each.</summary>
public sealed class CustomerRepository(NpgsqlDataSource dataSource, Outbox outbox, TimeProvider clock)
{
    private const string Columns = """
        id, seq, name, gender, birthday, phone, email, region, city, address, education, occupation,
        preferences, tags, source_channel, marketing_consent, version, created_at, updated_at,
        ARRAY(SELECT e.system || '/' || e.external_id FROM customer_external_ids e WHERE e.customer_id = customers.id ORDER BY e.system) AS external_ids
        """;

    /// <returns>The customer, and false when <paramref name="requestId"/> had already created it.</returns>
    /// <param name="externalId">A partner system's id for the new customer, recorded with it. Already taken: the
    /// PostgresException of constraint customer_external_ids_pkey (the caller reads that customer instead).</param>
    public async Task<(CustomerRecord Customer, bool Created)> CreateAsync(Profile profile, string? requestId, CancellationToken ct,
        ExternalId? externalId = null)
    {
        if (requestId is not null && await FindByRequestIdAsync(requestId, ct) is { } earlier)
            return (earlier, false);

        var now = clock.UtcNowForDb();
        var customer = new CustomerRecord { Id = Guid.CreateVersion7(), Profile = profile, Version = 1, CreatedAt = now, UpdatedAt = now };
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        try
        {
            var seq = await connection.ExecuteScalarAsync<long>(new CommandDefinition($"""
                INSERT INTO customers (id, name, gender, birthday, phone, email, region, city, address, education, occupation,
                                       preferences, tags, source_channel, marketing_consent, create_request_id, version, created_at, updated_at)
                VALUES (@Id, @Name, @Gender, @Birthday, @Phone, @Email, @Region, @City, @Address, @Education, @Occupation,
                        @Preferences, @Tags, @SourceChannel, @MarketingConsent, @RequestId, 1, @Now, @Now)
                RETURNING seq
                """, Parameters(customer.Id, profile, new { RequestId = requestId, Now = now }), transaction, cancellationToken: ct));
            customer = customer with { Seq = seq };
            if (externalId is not null)
            {
                await connection.ExecuteAsync(new CommandDefinition("""
                    INSERT INTO customer_external_ids (system, external_id, customer_id, created_at) VALUES (@System, @Id, @CustomerId, @Now)
                    """, new { externalId.System, externalId.Id, CustomerId = customer.Id, Now = now }, transaction, cancellationToken: ct));
                customer = customer with { ExternalIds = [externalId] };
            }
            await outbox.AddAsync(transaction, new CustomerRegistered(Snapshot(customer), now), ct);
            await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(transaction, customer.Id.ToString(), ct);
            await transaction.CommitAsync(ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            await transaction.RollbackAsync(CancellationToken.None);
            if (ex.ConstraintName == "customers_create_request_id_key" && await FindByRequestIdAsync(requestId!, ct) is { } raced)
                return (raced, false);
            throw await DuplicateContactAsync(ex, profile, ct);
        }
        outbox.Wake();
        return (customer, true);
    }

    /// <summary>The customer a partner system's id belongs to, if any.</summary>
    public async Task<Guid?> FindByExternalIdAsync(ExternalId externalId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<Guid?>(new CommandDefinition(
            "SELECT customer_id FROM customer_external_ids WHERE system = @System AND external_id = @Id",
            new { externalId.System, externalId.Id }, cancellationToken: ct));
    }

    /// <summary>The customers many partner ids belong to (one query); ids nobody has are left out.</summary>
    public async Task<Dictionary<ExternalId, Guid>> FindByExternalIdsAsync(IReadOnlyCollection<ExternalId> externalIds, CancellationToken ct)
    {
        if (externalIds.Count == 0) return [];
        var systems = new string[externalIds.Count];
        var ids = new string[externalIds.Count];
        var n = 0;
        foreach (var e in externalIds) (systems[n], ids[n++]) = (e.System, e.Id);
        // A plain reader: the bulk import resolves a batch's refs here, and Dapper's per-row mapping into tuples was its cost.
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand("""
            SELECT e.system, e.external_id, e.customer_id
            FROM unnest($1::text[], $2::text[]) AS r(system, external_id)
            JOIN customer_external_ids e ON e.system = r.system AND e.external_id = r.external_id
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = systems });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = ids });
        var found = new Dictionary<ExternalId, Guid>(externalIds.Count);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) found[new ExternalId(reader.GetString(0), reader.GetString(1))] = reader.GetGuid(2);
        return found;
    }

    public async Task<CustomerRecord?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<CustomerRow>(
            new CommandDefinition($"SELECT {Columns} FROM customers WHERE id = @id", new { id }, cancellationToken: ct));
        return row?.ToRecord();
    }

    /// <summary>
    /// Applies <paramref name="change"/> if <paramref name="expectedVersion"/> is still current (ABORTED if not).
    /// A change that alters nothing keeps the version and publishes nothing.
    /// </summary>
    public async Task<CustomerRecord> UpdateAsync(Guid id, long expectedVersion, Func<Profile, Profile> change, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var current = (await connection.QuerySingleOrDefaultAsync<CustomerRow>(new CommandDefinition(
            $"SELECT {Columns} FROM customers WHERE id = @id FOR UPDATE", new { id }, transaction, cancellationToken: ct)))?.ToRecord()
            ?? throw new NotFoundException("customer", id.ToString());
        if (current.Version != expectedVersion)
            throw new ConcurrencyConflictException("customer", id.ToString(), expectedVersion, current.Version);

        var profile = change(current.Profile);
        var changed = ChangedFields(current.Profile, profile);
        if (changed.Count == 0) return current;

        var now = clock.UtcNowForDb();
        var updated = current with { Profile = profile, Version = current.Version + 1, UpdatedAt = now };
        try
        {
            await connection.ExecuteAsync(new CommandDefinition("""
                UPDATE customers SET name = @Name, gender = @Gender, birthday = @Birthday, phone = @Phone, email = @Email,
                    region = @Region, city = @City, address = @Address, education = @Education, occupation = @Occupation,
                    preferences = @Preferences, tags = @Tags, source_channel = @SourceChannel, marketing_consent = @MarketingConsent,
                    version = @Version, updated_at = @Now
                WHERE id = @Id
                """, Parameters(id, profile, new { updated.Version, Now = now }), transaction, cancellationToken: ct));
            await outbox.AddAsync(transaction, new CustomerUpdated(Snapshot(updated), changed, now), ct);
            await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(transaction, id.ToString(), ct);
            await transaction.CommitAsync(ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            await transaction.RollbackAsync(CancellationToken.None);
            throw await DuplicateContactAsync(ex, profile, ct);
        }
        outbox.Wake();
        return updated;
    }

    /// <summary>Customers matching every given filter, in registration order, after <paramref name="afterSeq"/>.</summary>
    public async Task<IReadOnlyList<CustomerRecord>> SearchAsync(CustomerSearch search, long afterSeq, int limit, CancellationToken ct)
    {
        var where = new List<string> { "seq > @afterSeq" };
        if (search.Name is not null) where.Add("name ILIKE '%' || @name || '%' ESCAPE '\\'");
        if (search.Phone is not null) where.Add("phone = @phone");
        if (search.Email is not null) where.Add("email = @email");
        if (search.Tag is not null) where.Add("tags @> ARRAY[@tag]");
        if (search.Region is not null) where.Add("region = @region");
        var sql = $"SELECT {Columns} FROM customers WHERE {string.Join(" AND ", where)} ORDER BY seq LIMIT @limit";

        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<CustomerRow>(new CommandDefinition(sql, new
        {
            afterSeq, limit,
            name = search.Name is null ? null : EscapeLike(search.Name),
            phone = search.Phone, email = search.Email, tag = search.Tag, region = search.Region,
        }, cancellationToken: ct));
        return rows.Select(r => r.ToRecord()).ToList();
    }

    private async Task<CustomerRecord?> FindByRequestIdAsync(string requestId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<CustomerRow>(new CommandDefinition(
            $"SELECT {Columns} FROM customers WHERE create_request_id = @requestId", new { requestId }, cancellationToken: ct));
        return row?.ToRecord();
    }

    private async Task<Exception> DuplicateContactAsync(PostgresException ex, Profile profile, CancellationToken ct)
    {
        var (column, value) = ex.ConstraintName switch
        {
            "customers_phone_key" => ("phone", profile.Phone),
            "customers_email_key" => ("email", profile.Email!),
            _ => ("", ""),
        };
        if (column.Length == 0) return ex;
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var owner = await connection.ExecuteScalarAsync<Guid?>(new CommandDefinition(
            $"SELECT id FROM customers WHERE {column} = @value", new { value }, cancellationToken: ct));
        return new AlreadyExistsException("customer", owner?.ToString() ?? "",
            $"The {column} {value} is already registered to customer {owner}.");
    }

    private static DynamicParameters Parameters(Guid id, Profile p, object extra)
    {
        var parameters = new DynamicParameters(extra);
        parameters.AddDynamicParams(new
        {
            Id = id, p.Name, p.Gender, Birthday = p.Birthday?.ToDateTime(TimeOnly.MinValue), p.Phone, p.Email, p.Region, p.City,
            p.Address, p.Education, p.Occupation, p.Preferences, p.Tags, p.SourceChannel, p.MarketingConsent,
        });
        return parameters;
    }

    internal static IReadOnlyList<string> ChangedFields(Profile before, Profile after)
    {
        var changed = new List<string>();
        void Check(string field, bool same) { if (!same) changed.Add(field); }
        Check("name", before.Name == after.Name);
        Check("gender", before.Gender == after.Gender);
        Check("birthday", before.Birthday == after.Birthday);
        Check("phone", before.Phone == after.Phone);
        Check("email", before.Email == after.Email);
        Check("region", before.Region == after.Region);
        Check("city", before.City == after.City);
        Check("address", before.Address == after.Address);
        Check("education", before.Education == after.Education);
        Check("occupation", before.Occupation == after.Occupation);
        Check("preferences", before.Preferences.SequenceEqual(after.Preferences));
        Check("tags", before.Tags.SequenceEqual(after.Tags));
        Check("source_channel", before.SourceChannel == after.SourceChannel);
        Check("marketing_consent", before.MarketingConsent == after.MarketingConsent);
        return changed;
    }

    internal static CustomerSnapshot Snapshot(CustomerRecord c) => new(
        c.Id, c.Profile.Name, c.Profile.Phone, c.Profile.Email, c.Profile.Birthday, c.Profile.Region, c.Profile.City,
        c.Profile.Tags, c.Profile.SourceChannel, c.Profile.MarketingConsent, c.Version);

    private static string EscapeLike(string value) =>
        value.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");

    private sealed class CustomerRow
    {
        public Guid Id { get; init; }
        public long Seq { get; init; }
        public string Name { get; init; } = "";
        public short Gender { get; init; }
        public DateOnly? Birthday { get; init; }
        public string Phone { get; init; } = "";
        public string? Email { get; init; }
        public string? Region { get; init; }
        public string? City { get; init; }
        public string? Address { get; init; }
        public string? Education { get; init; }
        public string? Occupation { get; init; }
        public string[] Preferences { get; init; } = [];
        public string[] Tags { get; init; } = [];
        public string? SourceChannel { get; init; }
        public bool MarketingConsent { get; init; }
        public long Version { get; init; }
        public DateTime CreatedAt { get; init; }
        public DateTime UpdatedAt { get; init; }
        public string[] ExternalIds { get; init; } = [];

        public CustomerRecord ToRecord() => new()
        {
            Id = Id, Seq = Seq, Version = Version, CreatedAt = CreatedAt, UpdatedAt = UpdatedAt,
            ExternalIds = ExternalIds.Select(ExternalId.FromColumn).ToList(),
            Profile = new Profile
            {
                Name = Name, Gender = Gender, Birthday = Birthday, Phone = Phone,
                Email = Email, Region = Region, City = City, Address = Address, Education = Education, Occupation = Occupation,
                Preferences = Preferences, Tags = Tags, SourceChannel = SourceChannel, MarketingConsent = MarketingConsent,
            },
        };
    }
}

using Crm.ServiceDefaults.Copy;
using Crm.ServiceDefaults.Data;
using System.Text.Json;
using Crm.Contracts;
using Crm.ServiceDefaults.Errors;
using Crm.Messaging;
using Dapper;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Customer.Orders;

public sealed record OrderRecord(
    Guid Id, Guid CustomerId, string ExternalOrderId, string? StoreId, string Channel, IReadOnlyList<OrderLineItem> Lines,
    decimal AmountPaid, decimal AmountRefunded, string? PaymentMethod, DateTime PaidAt, DateTime RecordedAt);

/// <summary>One order of <see cref="OrderRepository.RecordManyAsync"/>: its id and whether it was created, or why it was rejected.</summary>
public readonly record struct Recorded(Guid Id, bool Created, Exception? Error);

public sealed record RefundRecord(string RefundId, Guid OrderId, decimal Amount, string? Reason, DateTime RefundedAt);

/// <summary>Orders and refunds, each written with its event in one transaction.</summary>
public sealed class OrderRepository(NpgsqlDataSource dataSource, Outbox outbox, TimeProvider clock)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private const string Columns = """
        id, customer_id, external_order_id, store_id, channel, lines::text AS lines, amount_paid, amount_refunded,
        payment_method, paid_at, recorded_at
        """;

    /// <returns>The order, and false when this external order id had been recorded before (nothing new is written).</returns>
    public async Task<(OrderRecord Order, bool Created)> RecordAsync(NewOrder order, CancellationToken ct)
    {
        var now = clock.UtcNowForDb();
        var id = Guid.CreateVersion7();
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        bool inserted;
        try
        {
            // The audit row and the OrderPaid outbox row go in the same round trip as the order: when the order was
            // recorded before (no row inserted) the transaction is rolled back below, and both rows with it.
            await using var batch = new NpgsqlBatch(connection, transaction);
            var insert = new NpgsqlBatchCommand("""
                INSERT INTO orders (id, customer_id, external_order_id, store_id, channel, lines, amount_paid, payment_method, paid_at, recorded_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (external_order_id) DO NOTHING
                """);
            insert.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
            insert.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = order.CustomerId });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = order.ExternalOrderId });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)order.StoreId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = order.Channel });
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = JsonSerializer.Serialize(order.Lines, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
            insert.Parameters.Add(new NpgsqlParameter<decimal> { TypedValue = order.AmountPaid });
            insert.Parameters.Add(new NpgsqlParameter { Value = (object?)order.PaymentMethod ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = order.PaidAt });
            insert.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now });
            batch.BatchCommands.Add(insert);
            if (Crm.ServiceDefaults.Security.Audit.Audit.BatchCommand(id.ToString()) is { } audit) batch.BatchCommands.Add(audit);
            batch.BatchCommands.Add(outbox.BatchCommand(new OrderPaid(id, order.CustomerId, order.ExternalOrderId, order.StoreId, order.Channel,
                order.Lines, order.AmountPaid, new DateTimeOffset(order.PaidAt, TimeSpan.Zero))));
            await batch.ExecuteNonQueryAsync(ct);
            inserted = insert.RecordsAffected == 1;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            throw new NotFoundException("customer", order.CustomerId.ToString());
        }

        if (!inserted)
        {
            await transaction.RollbackAsync(ct);
            var existing = (await FindByExternalIdAsync(order.ExternalOrderId, ct))!;
            if (existing.CustomerId != order.CustomerId || existing.AmountPaid != order.AmountPaid)
                throw new AlreadyExistsException("order", existing.Id.ToString(),
                    $"External order id '{order.ExternalOrderId}' was already recorded as order {existing.Id} " +
                    $"(customer {existing.CustomerId}, paid {existing.AmountPaid:0.00}) with different content.");
            return (existing, false);
        }

        await transaction.CommitAsync(ct);
        outbox.Wake();
        return (new OrderRecord(id, order.CustomerId, order.ExternalOrderId, order.StoreId, order.Channel, order.Lines,
            order.AmountPaid, 0m, order.PaymentMethod, order.PaidAt, now), true);
    }

    /// <summary>
    /// Records many orders (distinct external order ids) in one transaction with bulk statements: the bulk
    /// import's path. Each order ends as <see cref="RecordAsync"/> would have left it: created with its OrderPaid
    /// event, unchanged when its external id was recorded before with the same customer and amount,
    /// ALREADY_EXISTS when with other content, NOT_FOUND when its customer does not exist. Rows are inserted in
    /// external id order, so two batches sharing ids wait for each other instead of deadlocking.
    /// The common case (every order new, every customer there) is written with binary COPY (no speculative insertion,
    /// no RETURNING); when COPY meets a known external id or a missing customer the transaction is rolled back and the
    /// batch goes through the INSERT ... ON CONFLICT that sorts each order out.
    /// </summary>
    /// <param name="audit">Called in the transaction before the commit with (index, order id) of each created order.</param>
    /// <returns>Per order, in the given order: its id and whether it was created, or why it was rejected.</returns>
    public async Task<Recorded[]> RecordManyAsync(IReadOnlyList<NewOrder> orders,
        Func<NpgsqlTransaction, IReadOnlyList<(int Index, Guid Id)>, Task> audit, CancellationToken ct)
    {
        var results = new Recorded[orders.Count];
        if (orders.Count == 0) return results;
        var now = clock.UtcNowForDb();
        var byExternalId = Enumerable.Range(0, orders.Count).OrderBy(i => orders[i].ExternalOrderId, StringComparer.Ordinal).ToArray();
        var n = byExternalId.Length;
        var ids = new Guid[n];
        var customers = new Guid[n];
        var externalIds = new string[n];
        var stores = new string?[n];
        var channels = new string[n];
        var lines = new string[n];
        var amounts = new decimal[n];
        var methods = new string?[n];
        var paidAt = new DateTime[n];
        for (var k = 0; k < n; k++)
        {
            var o = orders[byExternalId[k]];
            ids[k] = Guid.CreateVersion7();
            (customers[k], externalIds[k], stores[k], channels[k]) = (o.CustomerId, o.ExternalOrderId, o.StoreId, o.Channel);
            (lines[k], amounts[k], methods[k], paidAt[k]) = (JsonSerializer.Serialize(o.Lines, Json), o.AmountPaid, o.PaymentMethod, o.PaidAt);
        }

        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using (var copying = await connection.BeginTransactionAsync(ct))
        {
            if (await TryCopyAsync(copying, ids, customers, externalIds, stores, channels, lines, amounts, methods, paidAt, now, ct))
            {
                var all = Enumerable.Range(0, n).Select(k => (byExternalId[k], ids[k])).ToList();
                return await FinishAsync(copying, orders, results, all, audit, ct);
            }
            await copying.RollbackAsync(ct);
        }

        await using var transaction = await connection.BeginTransactionAsync(ct);
        var inserted = new HashSet<Guid>();
        await using (var insert = new NpgsqlCommand("""
            INSERT INTO orders (id, customer_id, external_order_id, store_id, channel, lines, amount_paid, payment_method, paid_at, recorded_at)
            SELECT u.*, $10 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::numeric[], $8::text[],
                                        $9::timestamptz[]) AS u(id, customer_id, external_order_id, store_id, channel, lines, amount_paid, payment_method, paid_at)
            WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = u.customer_id)
            ON CONFLICT (external_order_id) DO NOTHING
            RETURNING id
            """, connection, transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = ids });
            insert.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = customers });
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = externalIds });
            insert.Parameters.Add(new NpgsqlParameter { Value = stores, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = channels });
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lines, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb });
            insert.Parameters.Add(new NpgsqlParameter<decimal[]> { TypedValue = amounts });
            insert.Parameters.Add(new NpgsqlParameter { Value = methods, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            insert.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = paidAt, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
            insert.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now });
            await using var reader = await insert.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) inserted.Add(reader.GetGuid(0));
        }

        // What was not inserted: recorded before (same content: unchanged), or its customer does not exist.
        var created = new List<(int Index, Guid Id)>(inserted.Count);
        var missing = new List<int>();
        for (var k = 0; k < n; k++)
        {
            if (inserted.Contains(ids[k])) created.Add((byExternalId[k], ids[k]));
            else missing.Add(k);
        }
        if (missing.Count > 0)
        {
            var existing = (await connection.QueryAsync<(string ExternalOrderId, Guid Id, Guid CustomerId, decimal AmountPaid)>(new CommandDefinition(
                    "SELECT external_order_id, id, customer_id, amount_paid FROM orders WHERE external_order_id = ANY(@ids)",
                    new { ids = missing.Select(k => externalIds[k]).ToArray() }, transaction, cancellationToken: ct)))
                .ToDictionary(e => e.ExternalOrderId, StringComparer.Ordinal);
            foreach (var k in missing)
            {
                var order = orders[byExternalId[k]];
                results[byExternalId[k]] = !existing.TryGetValue(order.ExternalOrderId, out var e)
                    ? new Recorded(Guid.Empty, false, new NotFoundException("customer", order.CustomerId.ToString()))
                    : e.CustomerId != order.CustomerId || e.AmountPaid != order.AmountPaid
                        ? new Recorded(e.Id, false, new AlreadyExistsException("order", e.Id.ToString(),
                            $"External order id '{Echo.Cut(order.ExternalOrderId)}' was already recorded as order {e.Id} " +
                            $"(customer {e.CustomerId}, paid {e.AmountPaid:0.00}) with different content."))
                        : new Recorded(e.Id, false, null);
            }
        }

        return await FinishAsync(transaction, orders, results, created, audit, ct);
    }

    /// <summary>The created orders' OrderPaid events (in the order the partner sent the orders) and audit rows, and the commit.</summary>
    private async Task<Recorded[]> FinishAsync(NpgsqlTransaction transaction, IReadOnlyList<NewOrder> orders, Recorded[] results,
        List<(int Index, Guid Id)> created, Func<NpgsqlTransaction, IReadOnlyList<(int Index, Guid Id)>, Task> audit, CancellationToken ct)
    {
        created.Sort((a, b) => a.Index.CompareTo(b.Index));
        foreach (var (index, id) in created) results[index] = new Recorded(id, true, null);
        if (created.Count > 0)
        {
            await outbox.CopyRangeAsync(transaction, created.Select(c =>
            {
                var o = orders[c.Index];
                return new OrderPaid(c.Id, o.CustomerId, o.ExternalOrderId, o.StoreId, o.Channel, o.Lines, o.AmountPaid,
                    new DateTimeOffset(o.PaidAt, TimeSpan.Zero));
            }).ToList(), e => e.CustomerId, ct);
            await audit(transaction, created);
        }
        await transaction.CommitAsync(ct);
        if (created.Count > 0) outbox.Wake();
        return results;
    }

    /// <summary>
    /// COPY of the batch into orders; false (the transaction then aborted) when an external id is already recorded,
    /// by an earlier or a concurrent import, or a customer does not exist.
    /// </summary>
    private static async Task<bool> TryCopyAsync(NpgsqlTransaction transaction, Guid[] ids, Guid[] customers, string[] externalIds,
        string?[] stores, string[] channels, string[] lines, decimal[] amounts, string?[] methods, DateTime[] paidAt, DateTime now, CancellationToken ct)
    {
        try
        {
            await BinaryCopyRows.CopyAsync(transaction.Connection!, """
                COPY orders (id, customer_id, external_order_id, store_id, channel, lines, amount_paid, payment_method, paid_at, recorded_at)
                FROM STDIN (FORMAT BINARY)
                """, ids.Length, (rows, k) =>
            {
                rows.StartRow(10);
                rows.Uuid(ids[k]);
                rows.Uuid(customers[k]);
                rows.Text(externalIds[k]);
                rows.TextOrNull(stores[k]);
                rows.Text(channels[k]);
                rows.Jsonb(lines[k]);
                rows.Numeric(amounts[k]);
                rows.TextOrNull(methods[k]);
                rows.TimestampTz(paidAt[k]);
                rows.TimestampTz(now);
            }, ct);
            return true;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.ForeignKeyViolation)
        {
            return false;
        }
    }

    /// <summary>
    /// Refunds part or all (when no amount is given) of what is still refundable. The order row is locked for
    /// the check, so concurrent refunds can never add up to more than was paid.
    /// </summary>
    /// <returns>The refund, the order after it, and false when <see cref="NewRefund.RefundId"/> had already been recorded.</returns>
    public async Task<(RefundRecord Refund, OrderRecord Order, bool Created)> RefundAsync(NewRefund refund, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var order = await QueryOrderAsync(connection, transaction, "id = @id FOR UPDATE", new { id = refund.OrderId }, ct)
            ?? throw new NotFoundException("order", refund.OrderId.ToString());

        var earlier = await connection.QuerySingleOrDefaultAsync<RefundRecord>(new CommandDefinition(
            "SELECT refund_id, order_id, amount, reason, refunded_at FROM refunds WHERE refund_id = @RefundId",
            new { refund.RefundId }, transaction, cancellationToken: ct));
        if (earlier is not null)
        {
            if (earlier.OrderId != refund.OrderId)
                throw new AlreadyExistsException("refund", earlier.RefundId,
                    $"Refund id '{earlier.RefundId}' was already used for order {earlier.OrderId}.");
            return (earlier, order, false); // a retry: nothing new
        }

        var refundable = order.AmountPaid - order.AmountRefunded;
        if (refundable == 0)
            throw new PreconditionFailedException("ORDER_FULLY_REFUNDED", $"orders/{order.Id}",
                $"Order {order.Id} was already refunded in full ({order.AmountPaid:0.00}).");
        var amount = refund.Amount ?? refundable;
        if (amount > refundable)
            throw new PreconditionFailedException("REFUND_EXCEEDS_PAID", $"orders/{order.Id}",
                $"A refund of {amount:0.00} exceeds the {refundable:0.00} still refundable on order {order.Id} " +
                $"(paid {order.AmountPaid:0.00}, refunded {order.AmountRefunded:0.00}).");
        if (refund.RefundedAt < order.PaidAt)
            throw new ValidationException("refunded_at", "cannot be before the order was paid.");

        var recorded = new RefundRecord(refund.RefundId, order.Id, amount, refund.Reason, refund.RefundedAt);
        try
        {
            await connection.ExecuteAsync(new CommandDefinition("""
                INSERT INTO refunds (refund_id, order_id, amount, reason, refunded_at, recorded_at)
                VALUES (@RefundId, @OrderId, @Amount, @Reason, @RefundedAt, @Now);
                UPDATE orders SET amount_refunded = amount_refunded + @Amount WHERE id = @OrderId;
                """, new { recorded.RefundId, recorded.OrderId, recorded.Amount, recorded.Reason, recorded.RefundedAt, Now = clock.UtcNowForDb() },
                transaction, cancellationToken: ct));
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation && ex.ConstraintName == "refunds_pkey")
        {
            // The same refund id on another order at the same moment (each order's lock does not cover the other).
            await transaction.RollbackAsync(CancellationToken.None);
            throw new AlreadyExistsException("refund", refund.RefundId,
                $"Refund id '{Echo.Cut(refund.RefundId)}' was used at the same moment for another order.");
        }
        order = order with { AmountRefunded = order.AmountRefunded + amount };
        await outbox.AddAsync(transaction, new OrderRefunded(recorded.RefundId, order.Id, order.CustomerId, order.ExternalOrderId,
            amount, order.AmountRefunded, order.AmountPaid, new DateTimeOffset(recorded.RefundedAt, TimeSpan.Zero)), ct);
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(transaction, order.Id.ToString(), ct);
        await transaction.CommitAsync(ct);
        outbox.Wake();
        return (recorded, order, true);
    }

    public async Task<OrderRecord?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await QueryOrderAsync(connection, null, "id = @id", new { id }, ct);
    }

    /// <summary>A customer's orders, newest payment first, after the (paid_at, id) keyset.</summary>
    public async Task<IReadOnlyList<OrderRecord>> ListAsync(Guid customerId, (DateTime PaidAt, Guid Id)? after, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<OrderRow>(new CommandDefinition($"""
            SELECT {Columns} FROM orders
            WHERE customer_id = @customerId AND (@afterPaidAt::timestamptz IS NULL OR (paid_at, id) < (@afterPaidAt, @afterId))
            ORDER BY paid_at DESC, id DESC LIMIT @limit
            """, new { customerId, afterPaidAt = after?.PaidAt, afterId = after?.Id ?? Guid.Empty, limit }, cancellationToken: ct));
        return rows.Select(r => r.ToRecord()).ToList();
    }

    /// <summary>Every order after <paramref name="afterId"/> in id order (the export's keyset).</summary>
    public async Task<IReadOnlyList<OrderRecord>> ExportAsync(Guid? afterId, int limit, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<OrderRow>(new CommandDefinition($"""
            SELECT {Columns} FROM orders WHERE @afterId::uuid IS NULL OR id > @afterId ORDER BY id LIMIT @limit
            """, new { afterId, limit }, cancellationToken: ct));
        return rows.Select(r => r.ToRecord()).ToList();
    }

    public async Task<OrderRecord?> FindByExternalIdAsync(string externalOrderId, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await QueryOrderAsync(connection, null, "external_order_id = @externalOrderId", new { externalOrderId }, ct);
    }

    private static async Task<OrderRecord?> QueryOrderAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string where, object args, CancellationToken ct)
    {
        var row = await connection.QuerySingleOrDefaultAsync<OrderRow>(new CommandDefinition(
            $"SELECT {Columns} FROM orders WHERE {where}", args, transaction, cancellationToken: ct));
        return row?.ToRecord();
    }

    private sealed class OrderRow
    {
        public Guid Id { get; init; }
        public Guid CustomerId { get; init; }
        public string ExternalOrderId { get; init; } = "";
        public string? StoreId { get; init; }
        public string Channel { get; init; } = "";
        public string Lines { get; init; } = "[]";
        public decimal AmountPaid { get; init; }
        public decimal AmountRefunded { get; init; }
        public string? PaymentMethod { get; init; }
        public DateTime PaidAt { get; init; }
        public DateTime RecordedAt { get; init; }

        public OrderRecord ToRecord() => new(Id, CustomerId, ExternalOrderId, StoreId, Channel,
            JsonSerializer.Deserialize<List<OrderLineItem>>(Lines, Json)!, AmountPaid, AmountRefunded, PaymentMethod, PaidAt, RecordedAt);
    }
}

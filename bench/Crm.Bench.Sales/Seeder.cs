using Crm.Sales;
using Crm.Sales.Opportunities;
using Npgsql;
using NpgsqlTypes;

namespace Crm.Bench.Sales;

public sealed record SeedHistoryRow(Guid OpportunityId, string? From, string To, string? Reason, string ChangedBy, DateTime ChangedAt);

public sealed class SeedOpportunity
{
    public required Guid Id { get; init; }
    public required string Title { get; init; }
    public required Guid CustomerId { get; init; }
    public required string ProductInterest { get; init; }
    public required decimal Amount { get; init; }
    public required DateOnly ExpectedClose { get; init; }
    public required string OwnerId { get; init; }
    public required string OwnerTeam { get; init; }
    public required DateTime CreatedAt { get; init; }
    public required List<SeedHistoryRow> History { get; init; }
    public required string? FurthestStage { get; init; }
    public string Stage => History[^1].To;
    public DateTime UpdatedAt => History[^1].ChangedAt;
    public bool Closed => Stage is Pipeline.Won or Pipeline.Lost;
}

/// <summary>
/// Generates opportunities with two years of stage history the way the service writes them (an 'opened' entry by
/// the owner, moves forward with the odd step back, won/lost with a reason; version = 1 + moves; closed_at,
/// won_at and close_reason from the closing move) and loads them with binary COPY after the service's migrations,
/// in creation order so seq and the history ids grow with time as they do in service-written data;
/// furthest_stage as the service keeps it (<see cref="Pipeline.Furthest"/>).
/// </summary>
public static class Seeder
{
    private static readonly string[] Products = ["定制钻戒", "铂金对戒", "翡翠手镯", "珍珠项链", "彩宝吊坠", "黄金婚嫁套装"];
    private static readonly string[] WonReasons = ["客户确认设计并付定金", "design approved, deposit paid", "婚期临近，当场成交"];
    private static readonly string[] LostReasons = ["预算不足", "选择了竞品", "设计未达成一致", "联系不上客户"];

    public static List<SeedOpportunity> Generate(Options o, Pipeline pipeline, DateTime now)
    {
        var open = pipeline.Open.Select(s => s.Code).ToArray();
        var random = new Random(8);
        var customers = Enumerable.Range(0, Math.Max(1, o.Opportunities * 3 / 5)).Select(_ => RandomGuid(random)).ToArray();
        var list = new List<SeedOpportunity>(o.Opportunities);
        for (var i = 0; i < o.Opportunities; i++)
        {
            var created = Micro(now.AddDays(-1 - random.NextDouble() * (o.HistoryDays - 1)));
            var owner = i % o.Owners;
            var ownerId = Owner(owner);
            var age = (now - created).TotalDays;
            // Older deals are mostly closed (won 40 %, lost 60 %); about one in ten stays open as stale pipeline.
            var closed = random.NextDouble() < Math.Min(0.9, age / 120);
            var won = closed && random.NextDouble() < 0.4;
            var furthest = won ? 1 + random.Next(open.Length - 1) : random.Next(open.Length);

            var path = new List<string> { open[0] };
            for (var at = 0; at < furthest;)
            {
                if (at > 0 && random.NextDouble() < 0.05) path.Add(open[at - 1]); // a step back, then on again
                at = Math.Min(furthest, at + (random.NextDouble() < 0.15 ? 2 : 1));
                path.Add(open[at]);
            }
            if (closed) path.Add(won ? Pipeline.Won : Pipeline.Lost);

            var end = closed ? created.AddDays(7 + random.NextDouble() * 113) : created.AddDays(random.NextDouble() * Math.Min(age, 90));
            if (end > now.AddMinutes(-1)) end = now.AddMinutes(-1 - random.NextDouble() * 60);
            var times = Enumerable.Range(1, path.Count - 1).Select(_ => random.NextDouble()).Order()
                .Select(f => Micro(created + (end - created) * f)).ToList();
            if (closed) times[^1] = Micro(end);

            var id = Guid.CreateVersion7(new DateTimeOffset(created));
            var history = new List<SeedHistoryRow>(path.Count) { new(id, null, path[0], "opened", ownerId, created) };
            for (var k = 1; k < path.Count; k++)
            {
                var reason = path[k] == Pipeline.Won ? WonReasons[random.Next(WonReasons.Length)]
                    : path[k] == Pipeline.Lost ? LostReasons[random.Next(LostReasons.Length)] : null;
                history.Add(new SeedHistoryRow(id, path[k - 1], path[k], reason, ownerId, times[k - 1]));
            }
            var product = Products[random.Next(Products.Length)];
            list.Add(new SeedOpportunity
            {
                Id = id,
                Title = $"{product} #{i}",
                CustomerId = customers[random.Next(customers.Length)],
                ProductInterest = product,
                // 5,000 to 500,000 yuan, log-uniform, to the fen.
                Amount = Math.Round((decimal)(5_000 * Math.Pow(100, random.NextDouble())), 2),
                ExpectedClose = DateOnly.FromDateTime(closed ? end.AddDays(random.Next(-20, 21)) : created.AddDays(30 + random.Next(180))),
                OwnerId = ownerId,
                OwnerTeam = $"team-{owner % o.Teams:D2}",
                FurthestStage = path.Aggregate((string?)null, (f, code) => pipeline.Furthest(f, pipeline.Get(code))),
                CreatedAt = created,
                History = history,
            });
        }
        list.Sort((a, b) => a.CreatedAt.CompareTo(b.CreatedAt));
        return list;
    }

    public static string Owner(int index) => $"rep-{index:D3}";

    public static async Task LoadAsync(string connectionString, IReadOnlyList<SeedOpportunity> opportunities, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using (var writer = await connection.BeginBinaryImportAsync("""
            COPY opportunities (id, title, customer_id, product_interest, amount, expected_close_date, stage, furthest_stage, owner_id, owner_team,
                                close_reason, closed_at, won_at, version, created_at, updated_at) FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            foreach (var o in opportunities)
            {
                var last = o.History[^1];
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(o.Id, NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(o.Title, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.CustomerId, NpgsqlDbType.Uuid, ct);
                await writer.WriteAsync(o.ProductInterest, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.Amount, NpgsqlDbType.Numeric, ct);
                await writer.WriteAsync(o.ExpectedClose, NpgsqlDbType.Date, ct);
                await writer.WriteAsync(o.Stage, NpgsqlDbType.Text, ct);
                await WriteNullable(writer, o.FurthestStage, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.OwnerId, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(o.OwnerTeam, NpgsqlDbType.Text, ct);
                await WriteNullable(writer, o.Closed ? last.Reason : null, NpgsqlDbType.Text, ct);
                await WriteNullable(writer, o.Closed ? last.ChangedAt : (DateTime?)null, NpgsqlDbType.TimestampTz, ct);
                await WriteNullable(writer, o.Stage == Pipeline.Won ? last.ChangedAt : (DateTime?)null, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync((long)o.History.Count, NpgsqlDbType.Bigint, ct);
                await writer.WriteAsync(o.CreatedAt, NpgsqlDbType.TimestampTz, ct);
                await writer.WriteAsync(o.UpdatedAt, NpgsqlDbType.TimestampTz, ct);
            }
            await writer.CompleteAsync(ct);
        }

        var history = opportunities.SelectMany(o => o.History.Select((h, k) => (h, k))).OrderBy(x => x.h.ChangedAt).ThenBy(x => x.k).Select(x => x.h);
        await using (var writer = await connection.BeginBinaryImportAsync("""
            COPY stage_history (opportunity_id, from_stage, to_stage, reason, changed_by, changed_at) FROM STDIN (FORMAT BINARY)
            """, ct))
        {
            foreach (var h in history)
            {
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(h.OpportunityId, NpgsqlDbType.Uuid, ct);
                await WriteNullable(writer, h.From, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(h.To, NpgsqlDbType.Text, ct);
                await WriteNullable(writer, h.Reason, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(h.ChangedBy, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(h.ChangedAt, NpgsqlDbType.TimestampTz, ct);
            }
            await writer.CompleteAsync(ct);
        }
        // COPY bypassed the service, which keeps the report summary with every write: build it from what was loaded.
        await PipelineCounts.RebuildAsync(connection, ct);
        // What autovacuum would have done by the time anyone reads reports over two years of data.
        foreach (var table in (string[])["opportunities", "stage_history", "pipeline_counts"])
        {
            await using var vacuum = new NpgsqlCommand($"VACUUM ANALYZE {table}", connection);
            await vacuum.ExecuteNonQueryAsync(ct);
        }
    }

    private static async Task WriteNullable(NpgsqlBinaryImporter writer, string? value, NpgsqlDbType type, CancellationToken ct)
    {
        if (value is null) await writer.WriteNullAsync(ct);
        else await writer.WriteAsync(value, type, ct);
    }

    private static async Task WriteNullable(NpgsqlBinaryImporter writer, DateTime? value, NpgsqlDbType type, CancellationToken ct)
    {
        if (value is null) await writer.WriteNullAsync(ct);
        else await writer.WriteAsync(value.Value, type, ct);
    }

    private static DateTime Micro(DateTime t) => new(t.Ticks - t.Ticks % 10, DateTimeKind.Utc);

    private static Guid RandomGuid(Random random)
    {
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        bytes[7] = (byte)(bytes[7] & 0x0F | 0x40); // version 4
        bytes[8] = (byte)(bytes[8] & 0x3F | 0x80);
        return new Guid(bytes);
    }
}

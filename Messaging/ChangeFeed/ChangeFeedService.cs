using System.Globalization;
using Crm.Changes.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Security;
using Dapper;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Messaging.ChangeFeed;

/// <summary>
/// crm.changes.v1.ChangeFeed over this service's change_events (written with the outbox rows by Outbox, see migrations
/// 0003 and 0008). Reads in (tx, id) order below the oldest running transaction that could still add a row
/// (<see cref="ChangeHorizon"/>), so a resumed stream never misses or repeats an event. When it has caught up it waits for the
/// next commit (<see cref="ChangeNotifications"/>), or <see cref="ChangeFeedOptions.IdlePoll"/> at most. While a running
/// transaction holds the horizon back it reads again after <see cref="ChangeFeedOptions.HeldPoll"/> at most: that
/// transaction may end without writing an event, and then nothing wakes the reader. A partner gets only the events about its own customers
/// (<see cref="PartnerChangeScope"/>); rows it may not see, or did not ask for by type, are passed over, and the reader
/// remembers how far it has passed so it does not read them again at the next wake-up.
/// </summary>
public sealed class ChangeFeedService(NpgsqlDataSource dataSource, ChangeNotifications notifications, PartnerChangeScope scope,
    IOptions<ChangeFeedOptions> options) : Crm.Changes.V1.ChangeFeed.ChangeFeedBase
{
    private const int Batch = 500;
    private readonly TimeSpan _idlePoll = options.Value.IdlePoll;
    private readonly TimeSpan _heldPoll = TimeSpan.FromTicks(Math.Min(options.Value.IdlePoll.Ticks, options.Value.HeldPoll.Ticks));

    [Allow(Roles.Partner, Roles.System)]
    public override async Task WatchChanges(WatchChangesRequest request, IServerStreamWriter<ChangeEvent> responseStream, ServerCallContext context)
    {
        var v = new Validator();
        var (tx, id) = ParseToken(request.FromToken, v);
        var types = request.EventTypes.Select(t => t.Trim()).Where(t => t.Length > 0).Distinct().ToArray();
        v.ThrowIfInvalid();
        var systems = scope.SystemsOf(context);
        var visible = systems is null ? "true" : scope.LinkedCondition("c");

        var ct = context.CancellationToken;
        while (!ct.IsCancellationRequested)
        {
            var committed = notifications.NextAsync();
            List<Row> rows;
            await using (var connection = await dataSource.OpenConnectionAsync(ct))
            {
                rows = (await connection.QueryAsync<Row>(new CommandDefinition($"""
                    WITH {ChangeHorizon.Ctes}
                    (SELECT c.tx::text AS tx, c.id, c.event_type, c.message_id, c.payload::text AS payload, c.occurred_at, 'event' AS kind
                     FROM change_events c, horizon
                     WHERE (c.tx, c.id) > (@tx::xid8, @id) AND c.tx < horizon.below
                       AND (cardinality(@types) = 0 OR c.event_type = ANY(@types)) AND {visible}
                     ORDER BY c.tx, c.id -- not the text alias "tx": "1000" sorts before "999"
                     LIMIT @batch)
                    UNION ALL -- the last event below the horizon, of any type and customer: how far this read has passed
                    (SELECT c.tx::text, c.id, '', NULL, NULL, NULL, 'passed'
                     FROM change_events c, horizon WHERE (c.tx, c.id) > (@tx::xid8, @id) AND c.tx < horizon.below
                     ORDER BY c.tx DESC, c.id DESC LIMIT 1)
                    UNION ALL -- a running transaction holds the horizon back
                    (SELECT '0', 0, '', NULL, NULL, NULL, 'held' FROM horizon WHERE horizon.held)
                    """, new { tx = tx.ToString(CultureInfo.InvariantCulture), id, types, systems = systems ?? [], batch = Batch }, cancellationToken: ct))).ToList();
            }
            var passed = rows.FirstOrDefault(r => r.Kind == "passed");
            var held = rows.Any(r => r.Kind == "held");
            rows = rows.Where(r => r.Kind == "event").OrderBy(r => ulong.Parse(r.Tx, CultureInfo.InvariantCulture)).ThenBy(r => r.Id).ToList();
            foreach (var row in rows)
            {
                await responseStream.WriteAsync(new ChangeEvent
                {
                    Token = $"{row.Tx}-{row.Id}", EventType = row.EventType, MessageId = row.MessageId.ToString(), Json = row.Payload!,
                    OccurredAt = Timestamp.FromDateTime(DateTime.SpecifyKind(row.OccurredAt!.Value, DateTimeKind.Utc)),
                }, ct);
                (tx, id) = (ulong.Parse(row.Tx, CultureInfo.InvariantCulture), row.Id);
            }
            if (rows.Count < Batch)
            {
                // Everything wanted up to the horizon went out: what is left below it is not for this reader.
                if (passed is not null) (tx, id) = (ulong.Parse(passed.Tx, CultureInfo.InvariantCulture), passed.Id);
                try { await committed.WaitAsync(held ? _heldPoll : _idlePoll, ct); }
                catch (TimeoutException) { /* poll */ }
                catch (OperationCanceledException) { break; } // the client went away: a normal end
            }
        }
    }

    /// <summary>"&lt;tx&gt;-&lt;id&gt;" as handed out with each event; empty: before everything.</summary>
    private static (ulong Tx, long Id) ParseToken(string token, Validator v)
    {
        if (string.IsNullOrWhiteSpace(token)) return (0, 0);
        var parts = token.Trim().Split('-');
        if (parts.Length == 2 && ulong.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var tx)
            && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
            return (tx, id);
        v.Add("from_token", "is not a token this feed handed out.");
        return (0, 0);
    }

    private sealed class Row
    {
        public string Tx { get; init; } = "";
        public long Id { get; init; }
        public string EventType { get; init; } = "";
        public Guid? MessageId { get; init; }
        public string? Payload { get; init; } = "";
        public DateTime? OccurredAt { get; init; }
        public string Kind { get; init; } = "";
    }
}

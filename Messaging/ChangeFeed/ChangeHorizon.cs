namespace Crm.Messaging.ChangeFeed;

/// <summary>
/// How far change_events can be read in (tx, id) order without a row appearing later behind the reader: below the
/// oldest running transaction that could still add one. Shared by the change feed and the webhook dispatcher, which
/// must agree. Transactions that cannot add a row are left out: those in other databases (xids are cluster-wide) and
/// the outbox relay's (it only deletes published outbox rows, and holds its transaction while the broker confirms a batch, which
/// would otherwise hold every event behind it for that long), and the change announcer's (a NOTIFY takes an xid at commit). Their xids come from pg_stat_activity; one not seen there
/// simply counts, which is only slower. Plain pg_snapshot_xmin would be safe too, but waits for all of those.
/// </summary>
internal static class ChangeHorizon
{
    /// <summary>
    /// Common table expressions (after WITH) ending in <c>horizon(below, held)</c>: read rows with <c>c.tx &lt; horizon.below</c>.
    /// <c>held</c>: a running transaction holds the horizon back (it is below the snapshot's xmax); it may end without
    /// writing anything, so a reader waiting for a commit should also poll.
    /// </summary>
    public const string Ctes = """
        snapshot AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
        cannot_write AS (
            SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
            WHERE backend_xid IS NOT NULL AND (datname <> current_database() OR application_name LIKE '%outbox-relay' OR application_name LIKE '%change-announcer')),
        horizon AS MATERIALIZED (
            SELECT below, below < (SELECT pg_snapshot_xmax(s) FROM snapshot) AS held FROM (SELECT coalesce(
                (SELECT x FROM snapshot, pg_snapshot_xip(snapshot.s) AS x
                 WHERE (x::text::numeric % 4294967296)::bigint NOT IN (SELECT xid FROM cannot_write) ORDER BY x LIMIT 1),
                (SELECT pg_snapshot_xmax(s) FROM snapshot)) AS below) b)
        """;
}

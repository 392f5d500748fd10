using Crm.ServiceDefaults.Data;
using Dapper;
using Npgsql;

namespace Crm.Tickets.Domain;

public sealed class AtRiskRow
{
    public Guid TicketId { get; set; }
    public string Target { get; set; } = "";
    public DateTime DueAt { get; set; }
    public int Priority { get; set; }
    public string? Queue { get; set; }
    public string? Assignee { get; set; }
}

public sealed class SummaryRow
{
    public Guid Id { get; set; }
    public Guid CustomerId { get; set; }
    public int Type { get; set; }
    public int State { get; set; }
    public int Priority { get; set; }
    public string Subject { get; set; } = "";
    public DateTime OpenedAt { get; set; }
    public int? SurveyScore { get; set; }
    public string SlaOutcome { get; set; } = "";
    public string[] Tags { get; set; } = [];
}

public sealed record SearchFilter(string? Query, Guid? CustomerId, string? Tag, int State);

public sealed record AgentReportData(
    int ReviewCount, double[] Qualities, int Handled, int Resolved, int Surveys, double Csat, int SlaMet, int SlaBreached);

public sealed record ServiceReportData(
    int Opened, IReadOnlyList<(string Key, int Count)> ByType, IReadOnlyList<(string Key, int Count)> ByChannel,
    IReadOnlyList<(string Key, int Count)> ByPriority, double MedianFirstResponseMinutes, double MedianResolutionMinutes,
    double SlaCompliance, double Csat, int Surveys, IReadOnlyList<(string Key, int Count)> TopComplaintTags);

/// <summary>Reads: at-risk list, history, search, reviews and reports.</summary>
public sealed class TicketQueries(NpgsqlDataSource db, TimeProvider clock)
{
    private const string Summary = """
        t.id, t.customer_id, t.type, t.state, t.priority, t.subject, t.opened_at, t.survey_score, t.tags,
        CASE WHEN t.fr_breached_at IS NOT NULL OR t.res_breached_at IS NOT NULL THEN 'breached'
             WHEN t.fr_met_at IS NOT NULL AND t.res_met_at IS NOT NULL THEN 'met'
             WHEN t.paused_since IS NOT NULL AND t.state BETWEEN 1 AND 4 THEN 'paused'
             ELSE 'pending' END AS sla_outcome
        """;

    public async Task<IReadOnlyList<AtRiskRow>> AtRiskAsync(int withinMinutes, string? queue, (DateTime Due, Guid Id, string Target)? after, int limit, CancellationToken ct)
    {
        var until = clock.UtcNowForDb().AddMinutes(withinMinutes);
        await using var connection = await db.OpenConnectionAsync(ct);
        // Running targets only live in sla_targets; its key (due_at, ticket_id, target) is also the page order.
        return (await connection.QueryAsync<AtRiskRow>(new CommandDefinition("""
            SELECT s.ticket_id, CASE s.target WHEN 1 THEN 'first_response' ELSE 'resolution' END AS target, s.due_at, t.priority, t.queue, t.assignee
            FROM sla_targets s JOIN tickets t ON t.id = s.ticket_id
            WHERE s.due_at <= @until AND (@queue = '' OR t.queue = @queue)
              AND (NOT @paged OR (s.due_at, s.ticket_id, s.target) > (@afterDue, @afterId, @afterTarget))
            ORDER BY s.due_at, s.ticket_id, s.target LIMIT @limit
            """, new
            {
                until, queue = queue ?? "", paged = after is not null, afterDue = after?.Due ?? DateTime.MinValue, afterId = after?.Id ?? Guid.Empty,
                afterTarget = after is { } a ? RunningTargets.Number(a.Target) : (short)0, limit,
            }, cancellationToken: ct))).ToList();
    }

    public async Task<IReadOnlyList<SummaryRow>> HistoryAsync(Guid customerId, (DateTime At, Guid Id)? before, int limit, CancellationToken ct) =>
        await SearchAsync(new SearchFilter(null, customerId, null, 0), before, limit, ct);

    public async Task<IReadOnlyList<SummaryRow>> SearchAsync(SearchFilter f, (DateTime At, Guid Id)? before, int limit, CancellationToken ct)
    {
        var where = new List<string>();
        if (f.Query is not null)
        {
            // Trigrams serve keywords of three or more Latin characters; bigrams any keyword of two or more (Chinese words).
            var bigrams = f.Query.Length >= 2 && !f.Query.All(char.IsAscii);
            where.Add(bigrams
                ? """
                  t.id IN (SELECT ticket_id FROM ticket_search WHERE text_bigrams(search_text) @> text_bigrams(@query) AND search_text ILIKE @pattern
                           UNION SELECT ticket_id FROM comments WHERE text_bigrams(body) @> text_bigrams(@query) AND body ILIKE @pattern)
                  """
                : """
                  t.id IN (SELECT ticket_id FROM ticket_search WHERE search_text ILIKE @pattern
                           UNION SELECT ticket_id FROM comments WHERE body ILIKE @pattern)
                  """);
        }
        if (f.CustomerId is not null) where.Add("t.customer_id = @customerId");
        if (f.Tag is not null) where.Add("t.tags @> ARRAY[@tag]::text[]");
        if (f.State != 0) where.Add("t.state = @state");
        if (before is not null) where.Add("(t.opened_at, t.id) < (@beforeAt, @beforeId)");
        var sql = $"SELECT {Summary} FROM tickets t {(where.Count > 0 ? "WHERE " + string.Join(" AND ", where) : "")} " +
                  "ORDER BY t.opened_at DESC, t.id DESC LIMIT @limit";
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<SummaryRow>(new CommandDefinition(sql, new
        {
            query = f.Query, pattern = f.Query is null ? null : "%" + EscapeLike(f.Query) + "%", customerId = f.CustomerId ?? Guid.Empty, tag = f.Tag ?? "",
            state = f.State, beforeAt = before?.At ?? DateTime.MaxValue, beforeId = before?.Id ?? Guid.Empty, limit,
        }, cancellationToken: ct))).ToList();
    }

    private static string EscapeLike(string value) => value.Replace(@"\", @"\\").Replace("%", @"\%").Replace("_", @"\_");

    public async Task ReviewAsync(string agentId, string period, DateOnly periodStart, string reviewer, int[] s, string comment, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO agent_reviews (agent_id, period, period_start, reviewer, confidence, warmth, attentiveness, patience, sincerity, care, comment, reviewed_at)
            VALUES (@agentId, @period, @periodStart::date, @reviewer, @c0, @c1, @c2, @c3, @c4, @c5, @comment, @now)
            ON CONFLICT (agent_id, period, reviewer) DO UPDATE SET confidence = excluded.confidence, warmth = excluded.warmth,
                attentiveness = excluded.attentiveness, patience = excluded.patience, sincerity = excluded.sincerity, care = excluded.care,
                comment = excluded.comment, reviewed_at = excluded.reviewed_at
            """, new
            {
                agentId, period, periodStart = periodStart.ToDateTime(TimeOnly.MinValue), reviewer, c0 = s[0], c1 = s[1], c2 = s[2], c3 = s[3], c4 = s[4], c5 = s[5], comment,
                now = clock.UtcNowForDb(),
            }, tx, cancellationToken: ct));
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, agentId, ct);
        await tx.CommitAsync(ct);
    }

    public async Task<AgentReportData> AgentReportAsync(string agentId, DateTime from, DateTime to, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var r = await connection.QuerySingleAsync<(long N, double? C0, double? C1, double? C2, double? C3, double? C4, double? C5)>(new CommandDefinition("""
            SELECT count(*), avg(confidence)::float8, avg(warmth)::float8, avg(attentiveness)::float8, avg(patience)::float8,
                   avg(sincerity)::float8, avg(care)::float8
            FROM agent_reviews WHERE agent_id = @agentId AND period_start < @to AND period_start + interval '1 month' > @from
            """, new { agentId, from, to }, cancellationToken: ct));
        var t = await connection.QuerySingleAsync<(long Handled, long Resolved, long Surveys, double? Csat, long Met, long Breached)>(new CommandDefinition("""
            SELECT count(*), count(*) FILTER (WHERE state IN (5, 6)), count(survey_score), avg(survey_score)::float8,
                   count(fr_met_at) + count(res_met_at), count(fr_breached_at) + count(res_breached_at)
            FROM tickets WHERE assignee = @agentId AND opened_at >= @from AND opened_at < @to
            """, new { agentId, from, to }, cancellationToken: ct));
        return new AgentReportData((int)r.N, [r.C0 ?? 0, r.C1 ?? 0, r.C2 ?? 0, r.C3 ?? 0, r.C4 ?? 0, r.C5 ?? 0],
            (int)t.Handled, (int)t.Resolved, (int)t.Surveys, t.Csat ?? 0, (int)t.Met, (int)t.Breached);
    }

    public async Task<ServiceReportData> ServiceReportAsync(DateTime from, DateTime to, int topTags, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var p = new { from, to, topTags };
        async Task<List<(int Key, int Count)>> By(string column) => (await connection.QueryAsync<(int, int)>(new CommandDefinition(
            $"SELECT {column}, count(*)::int FROM tickets WHERE opened_at >= @from AND opened_at < @to GROUP BY 1 ORDER BY 1", p, cancellationToken: ct))).ToList();
        var byType = await By("type");
        var byChannel = await By("channel");
        var byPriority = await By("priority");
        var s = await connection.QuerySingleAsync<(double? Fr, double? Res, long Met, long Breached, double? Csat, long Surveys)>(new CommandDefinition("""
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - opened_at) / 60)
                       FILTER (WHERE first_response_at IS NOT NULL),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - opened_at) / 60)
                       FILTER (WHERE resolved_at IS NOT NULL),
                   count(fr_met_at) + count(res_met_at), count(fr_breached_at) + count(res_breached_at),
                   avg(survey_score)::float8, count(survey_score)
            FROM tickets WHERE opened_at >= @from AND opened_at < @to
            """, p, cancellationToken: ct));
        var tags = (await connection.QueryAsync<(string, int)>(new CommandDefinition("""
            SELECT tag, count(*)::int FROM tickets, unnest(tags) AS tag
            WHERE type = 2 AND opened_at >= @from AND opened_at < @to GROUP BY tag ORDER BY count(*) DESC, tag LIMIT @topTags
            """, p, cancellationToken: ct))).ToList();
        return new ServiceReportData(byType.Sum(x => x.Count),
            Named(byType, TicketStore.TypeNames),
            Named(byChannel, TicketStore.ChannelNames),
            Named(byPriority, Sla.SlaPolicies.PriorityNames),
            s.Fr ?? 0, s.Res ?? 0, Percent(s.Met, s.Breached), s.Csat ?? 0, (int)s.Surveys, tags);
    }

    /// <summary>Largest count first, then by name.</summary>
    private static List<(string, int)> Named(List<(int Key, int Count)> counts, string[] names) =>
        counts.Select(x => (Name: names[x.Key], x.Count)).OrderByDescending(x => x.Count).ThenBy(x => x.Name, StringComparer.Ordinal).ToList();

    public static double Percent(long met, long breached) => met + breached == 0 ? 0 : Math.Round(100.0 * met / (met + breached), 2);
}

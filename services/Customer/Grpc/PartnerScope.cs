using Crm.Messaging.ChangeFeed;
using Crm.ServiceDefaults.Security;
using Dapper;
using Grpc.Core;
using Npgsql;

namespace Crm.Customer.Grpc;

/// <summary>
/// Keeps a partner to its own data: the customers that carry an external id of one of the systems its token speaks
/// for (claim <c>systems</c>), and their orders. Anyone else's customer — or one that does not exist — is the same
/// PERMISSION_DENIED, so a partner learns nothing about customers outside its systems. Staff and system callers pass.
/// </summary>
public sealed class PartnerScope(NpgsqlDataSource dataSource)
{
    private const string CustomerLinked =
        "SELECT EXISTS (SELECT 1 FROM customer_external_ids WHERE customer_id = @id AND system = ANY(@systems))";

    private const string OrderLinked = """
        SELECT EXISTS (SELECT 1 FROM orders o JOIN customer_external_ids e ON e.customer_id = o.customer_id
                       WHERE o.id = @id AND e.system = ANY(@systems))
        """;

    /// <summary>The same rule for the change feed and webhooks: a partner sees the events of customers linked to its systems.</summary>
    public static readonly PartnerChangeScope ChangeScope = new("customer_external_ids");

    public Task RequireLinkedAsync(ServerCallContext context, Guid customerId) => RequireAsync(context, CustomerLinked, customerId);

    public Task RequireOrderLinkedAsync(ServerCallContext context, Guid orderId) => RequireAsync(context, OrderLinked, orderId);

    /// <summary>Of <paramref name="customerIds"/>, those a partner caller may not reach (none for anyone else): one query for a batch.</summary>
    public async Task<IReadOnlySet<Guid>> OutsideAsync(ServerCallContext context, IEnumerable<Guid> customerIds)
    {
        var caller = context.Caller();
        if (!caller.IsPartnerOnly) return new HashSet<Guid>();
        var ids = customerIds.Distinct().ToArray();
        var systems = caller.Systems?.ToArray() ?? [];
        if (ids.Length == 0 || systems.Length == 0) return ids.ToHashSet();
        await using var connection = await dataSource.OpenConnectionAsync(context.CancellationToken);
        var linked = await connection.QueryAsync<Guid>(new CommandDefinition(
            "SELECT DISTINCT customer_id FROM customer_external_ids WHERE customer_id = ANY(@ids) AND system = ANY(@systems)",
            new { ids, systems }, cancellationToken: context.CancellationToken));
        return ids.Except(linked).ToHashSet();
    }

    public static RpcException Denied() => new(new Status(StatusCode.PermissionDenied,
        "A partner may only reach customers that carry an external id of its own systems, and their orders."));

    private async Task RequireAsync(ServerCallContext context, string sql, Guid id)
    {
        var caller = context.Caller();
        if (!caller.IsPartnerOnly) return;
        var systems = caller.Systems?.ToArray() ?? [];
        await using var connection = await dataSource.OpenConnectionAsync(context.CancellationToken);
        var linked = systems.Length > 0 && await connection.ExecuteScalarAsync<bool>(
            new CommandDefinition(sql, new { id, systems }, cancellationToken: context.CancellationToken));
        if (!linked) throw Denied();
    }
}

using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Messaging.ChangeFeed;

/// <summary>
/// Which change events a partner may see. A partner reaches only the customers that carry an external id of one of
/// its systems (the token's <c>systems</c> claim), so its change feed and its webhook endpoints get only the events about
/// those customers (change_events.customer_id, migration 0006); staff and system callers see every event.
/// A service knows those links only if it keeps them: the customer service registers its table of external ids
/// (<see cref="LinkTable"/>). A service without one (<see cref="None"/>) cannot tell which events are a partner's, so
/// its feed and webhooks are not open to partners (FAILED_PRECONDITION, pointing them to the customer service).
/// </summary>
/// <param name="LinkTable">A table of (customer_id uuid, system text) rows in this service's database; null: none.</param>
public sealed record PartnerChangeScope(string? LinkTable)
{
    public static readonly PartnerChangeScope None = new((string?)null);

    /// <summary>
    /// The systems whose customers' events the caller may see, or null for every event (anyone but a partner-only
    /// caller). Throws FAILED_PRECONDITION for a partner in a service that keeps no links, and PERMISSION_DENIED for a
    /// partner token that names no system.
    /// </summary>
    public string[]? SystemsOf(ServerCallContext context)
    {
        var caller = context.Caller();
        if (!caller.IsPartnerOnly) return null;
        if (LinkTable is null)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                "This service does not know which customers are a partner's, so its changes are not open to partners: " +
                "watch (or subscribe a webhook to) the customer service, which sends each partner the events of its own customers."));
        if (caller.Systems is not { Count: > 0 } systems)
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                "This partner token names no source system (claim 'systems'), so no customer's changes are its own."));
        return systems.Order(StringComparer.Ordinal).ToArray();
    }

    /// <summary>
    /// SQL condition on the change event aliased <paramref name="alias"/>: its customer is linked to one of
    /// <c>@systems</c> (a text[] parameter). Without a link table: false (a partner's endpoint gets nothing here).
    /// </summary>
    public string LinkedCondition(string alias) => LinkTable is null
        ? "false"
        : $"EXISTS (SELECT 1 FROM {LinkTable} scope_link WHERE scope_link.customer_id = {alias}.customer_id AND scope_link.system = ANY(@systems))";
}

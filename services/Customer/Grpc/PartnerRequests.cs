using Crm.Customer.Customers;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Errors;

namespace Crm.Customer.Grpc;

/// <summary>
/// What the single calls and the streaming imports share for partner requests: upserting a customer by its
/// external id, and turning a partner's ids (customer_ref, external_order_id) into the suite's ids.
/// </summary>
public sealed class PartnerRequests(CustomerRepository customers, Orders.OrderRepository orders, CustomerUpserts upserts, TimeProvider clock)
{
    public async Task<(CustomerRecord Customer, Customers.UpsertOutcome Outcome)> UpsertAsync(UpsertCustomerRequest request, CancellationToken ct)
    {
        var v = new Validator();
        var externalId = ExternalId.Parse(request.Ref, "ref", v);
        v.Require(request.ExpectedVersion >= 0, "expected_version", "must not be negative (0: no check).");
        IReadOnlySet<string>? fields = null;
        if (request.UpdateMask is { Paths.Count: > 0 } mask)
        {
            fields = mask.Paths.ToHashSet(StringComparer.Ordinal);
            foreach (var unknown in fields.Where(p => !ProfileRules.Fields.Contains(p)))
                v.Add("update_mask", $"'{Echo.Cut(unknown)}' is not a profile field.");
        }
        // The values are checked before anything is read; the update repeats it on the locked row.
        var profile = request.Profile ?? new CustomerProfile();
        if (fields is null) ProfileRules.ForCreate(profile, v, clock);
        else ProfileRules.Merge(new Profile { Name = "", Phone = "" }, profile, fields, v, clock);
        v.ThrowIfInvalid();
        return await upserts.UpsertAsync(externalId!, profile, fields, request.Mode, request.ExpectedVersion, ct);
    }

    /// <summary>The request with customer_ref replaced by the customer's id (unchanged without a ref).</summary>
    public async Task<RecordOrderRequest> ResolveAsync(RecordOrderRequest request, CancellationToken ct)
    {
        if (request.CustomerRef is null) return request;
        var v = new Validator();
        v.Require(request.CustomerId.Length == 0, "customer_id", "give customer_id or customer_ref, not both.");
        var externalId = ExternalId.Parse(request.CustomerRef, "customer_ref", v);
        v.ThrowIfInvalid();
        var customerId = await customers.FindByExternalIdAsync(externalId!, ct) ?? throw new NotFoundException("customer", externalId!.ToString());
        var resolved = request.Clone();
        resolved.CustomerId = customerId.ToString();
        resolved.CustomerRef = null;
        return resolved;
    }

    /// <summary>
    /// The customers that many requests name by customer_ref, with one lookup: per request the customer's id (null for a
    /// request without a ref: its customer_id stands), or the error <see cref="ResolveAsync(RecordOrderRequest, CancellationToken)"/>
    /// would have failed with. The requests are not copied (the bulk import resolves a million of them).
    /// </summary>
    public async Task<(Guid? CustomerId, Exception? Error)[]> ResolveCustomersAsync(IReadOnlyList<RecordOrderRequest> requests, CancellationToken ct)
    {
        var results = new (Guid? CustomerId, Exception? Error)[requests.Count];
        var refs = new ExternalId?[requests.Count];
        for (var i = 0; i < requests.Count; i++)
        {
            var request = requests[i];
            if (request.CustomerRef is null) continue;
            var v = new Validator();
            v.Require(request.CustomerId.Length == 0, "customer_id", "give customer_id or customer_ref, not both.");
            refs[i] = ExternalId.Parse(request.CustomerRef, "customer_ref", v);
            try { v.ThrowIfInvalid(); }
            catch (ValidationException e) { (results[i], refs[i]) = ((null, e), null); }
        }
        var found = await customers.FindByExternalIdsAsync(refs.OfType<ExternalId>().ToHashSet(), ct);
        for (var i = 0; i < requests.Count; i++)
        {
            if (refs[i] is not { } externalId) continue;
            results[i] = found.TryGetValue(externalId, out var customerId)
                ? (customerId, null)
                : (null, new NotFoundException("customer", externalId.ToString()));
        }
        return results;
    }

    /// <summary>The request with external_order_id replaced by the order's id (unchanged without one).</summary>
    public async Task<RefundOrderRequest> ResolveAsync(RefundOrderRequest request, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.ExternalOrderId)) return request;
        var v = new Validator();
        v.Require(request.OrderId.Length == 0, "order_id", "give order_id or external_order_id, not both.");
        v.ThrowIfInvalid();
        var order = await orders.FindByExternalIdAsync(request.ExternalOrderId.Trim(), ct)
            ?? throw new NotFoundException("order", Echo.Cut(request.ExternalOrderId.Trim()));
        var resolved = request.Clone();
        resolved.OrderId = order.Id.ToString();
        resolved.ExternalOrderId = "";
        return resolved;
    }
}

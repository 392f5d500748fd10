using Crm.Contracts;
using Crm.Customer.Customers;
using Crm.Customer.Orders;
using Crm.Customer.V1;
using Crm.ServiceDefaults.Errors;
using Crm.ServiceDefaults.Paging;
using Crm.ServiceDefaults.Security;
using Grpc.Core;

namespace Crm.Customer.Grpc;

/// <summary>crm.customer.v1.CustomerService: validates, calls the repositories, maps to the wire.</summary>
public sealed class CustomerGrpcService(
    CustomerRepository customers, PartnerRequests partner, PartnerScope scope, OrderRepository orders, TimeProvider clock,
    ILogger<CustomerGrpcService> logger)
    : CustomerService.CustomerServiceBase
{
    // Partners push customers by their own ids (UpsertCustomer): one created here would be outside their reach.
    [Allow(Roles.Sales, Roles.Service, Roles.Store, Roles.System)]
    public override async Task<V1.Customer> CreateCustomer(CreateCustomerRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var profile = ProfileRules.ForCreate(request.Profile, v, clock);
        v.Require(request.RequestId.Length <= 100, "request_id", "must be at most 100 characters.");
        v.ThrowIfInvalid();

        var requestId = string.IsNullOrWhiteSpace(request.RequestId) ? null : request.RequestId.Trim();
        var (customer, created) = await customers.CreateAsync(profile, requestId, context.CancellationToken);
        if (created) logger.LogInformation("Registered customer {CustomerId} from {SourceChannel}", customer.Id, profile.SourceChannel);
        return Wire.ToProto(customer);
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.Partner, Roles.Member, Roles.System)]
    public override async Task<V1.Customer> GetCustomer(GetCustomerRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.Id, "id");
        context.RequireSelf(id);
        await scope.RequireLinkedAsync(context, id);
        var customer = await customers.GetAsync(id, context.CancellationToken)
            ?? throw new NotFoundException("customer", id.ToString());
        return Wire.ToProto(customer);
    }

    [Allow(Roles.Sales, Roles.Service, Roles.Partner)]
    public override async Task<V1.Customer> UpdateCustomer(UpdateCustomerRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var id = Ids.Parse(request.Id, "id", v);
        v.Require(request.Version > 0, "version", "is required: send the version you read.");
        var paths = request.UpdateMask?.Paths.ToHashSet(StringComparer.Ordinal) ?? [];
        v.Require(paths.Count > 0, "update_mask", "is required: name the profile fields to change, e.g. \"city\".");
        foreach (var unknown in paths.Where(p => !ProfileRules.Fields.Contains(p)))
            v.Add("update_mask", $"'{Echo.Cut(unknown)}' is not a profile field.");
        var input = request.Profile ?? new CustomerProfile();
        // Validate the new values before touching the database; the merge below repeats it on the locked row.
        ProfileRules.Merge(new Profile { Name = "", Phone = "" }, input, paths, v, clock);
        v.ThrowIfInvalid();
        await scope.RequireLinkedAsync(context, id);

        var updated = await customers.UpdateAsync(id, request.Version, current =>
        {
            var merged = new Validator();
            var profile = ProfileRules.Merge(current, input, paths, merged, clock);
            merged.ThrowIfInvalid();
            return profile;
        }, context.CancellationToken);
        return Wire.ToProto(updated);
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.System)]
    public override async Task<SearchCustomersResponse> SearchCustomers(SearchCustomersRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var pageSize = PageToken.PageSize(request.PageSize, v);
        string? phone = null, email = null;
        if (!string.IsNullOrWhiteSpace(request.Phone) && !PhoneNumber.TryNormalize(request.Phone, out phone!))
            v.Add("phone", PhoneNumber.Rule + ".");
        if (!string.IsNullOrWhiteSpace(request.Email) && !EmailAddress.TryNormalize(request.Email, out email!))
            v.Add("email", "is not a valid email address.");
        var search = new CustomerSearch(Blank(request.Name), phone, email, Blank(request.Tag), Blank(request.Region));
        var filters = search.ToString();
        var after = PageToken.Decode(request.PageToken, filters, v) is { } key && long.TryParse(key, out var seq) ? seq : 0;
        v.ThrowIfInvalid();

        var page = await customers.SearchAsync(search, after, pageSize + 1, context.CancellationToken);
        var response = new SearchCustomersResponse();
        response.Customers.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Seq.ToString(), filters);
        return response;
    }

    [Allow(Roles.Partner, Roles.System)]
    public override async Task<UpsertCustomerResponse> UpsertCustomer(UpsertCustomerRequest request, ServerCallContext context)
    {
        if (request.Ref is { } target) context.RequireSystem(SourceSystem.Normalize(target.System));
        var (customer, outcome) = await partner.UpsertAsync(request, context.CancellationToken);
        if (outcome != Customers.UpsertOutcome.Unchanged)
            logger.LogInformation("Upsert of {System}/{ExternalId}: customer {CustomerId} {Outcome}",
                SourceSystem.Normalize(request.Ref.System), request.Ref.Id.Trim(), customer.Id, outcome);
        return new UpsertCustomerResponse { Customer = Wire.ToProto(customer), Outcome = Wire.ToProto(outcome) };
    }

    [Allow(Roles.Store, Roles.Partner, Roles.System)]
    public override async Task<Order> RecordOrder(RecordOrderRequest request, ServerCallContext context)
    {
        if (request.CustomerRef is { } customerRef) context.RequireSystem(SourceSystem.Normalize(customerRef.System));
        request = await partner.ResolveAsync(request, context.CancellationToken); // a partner may name the customer by its own id
        var order = OrderRules.Validate(request, clock);
        await scope.RequireLinkedAsync(context, order.CustomerId);
        var (recorded, created) = await orders.RecordAsync(order, context.CancellationToken);
        if (created)
            logger.LogInformation("Recorded order {OrderId} ({ExternalOrderId}) for customer {CustomerId}: paid {AmountPaid}",
                recorded.Id, recorded.ExternalOrderId, recorded.CustomerId, recorded.AmountPaid);
        else
            logger.LogInformation("Order {ExternalOrderId} was already recorded as {OrderId}; returned it unchanged",
                recorded.ExternalOrderId, recorded.Id);
        return Wire.ToProto(recorded);
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.Partner, Roles.System, Roles.Member)]
    public override async Task<Order> GetOrder(GetOrderRequest request, ServerCallContext context)
    {
        var id = Ids.Parse(request.Id, "id");
        var order = await orders.GetAsync(id, context.CancellationToken) ?? throw new NotFoundException("order", id.ToString());
        context.RequireSelf(order.CustomerId); // a member reads its own orders only
        await scope.RequireLinkedAsync(context, order.CustomerId);
        return Wire.ToProto(order);
    }

    [Allow(Roles.Marketing, Roles.Sales, Roles.Service, Roles.Store, Roles.Partner, Roles.System, Roles.Member)]
    public override async Task<ListOrdersResponse> ListOrders(ListOrdersRequest request, ServerCallContext context)
    {
        var v = new Validator();
        var customerId = Ids.Parse(request.CustomerId, "customer_id", v);
        if (v.IsValid) context.RequireSelf(customerId);
        if (v.IsValid) await scope.RequireLinkedAsync(context, customerId);
        var pageSize = PageToken.PageSize(request.PageSize, v);
        (DateTime, Guid)? after = null;
        if (PageToken.Decode(request.PageToken, customerId.ToString(), v) is { } key)
        {
            var parts = key.Split('/');
            if (parts.Length == 2 && long.TryParse(parts[0], out var ticks) && ticks is >= 0 and <= 3155378975999999999
                && Guid.TryParse(parts[1], out var lastId))
                after = (new DateTime(ticks, DateTimeKind.Utc), lastId);
            else
                v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();
        if (after is null && await customers.GetAsync(customerId, context.CancellationToken) is null)
            throw new NotFoundException("customer", customerId.ToString());

        var page = await orders.ListAsync(customerId, after, pageSize + 1, context.CancellationToken);
        var response = new ListOrdersResponse();
        response.Orders.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize)
        {
            var last = page[pageSize - 1];
            response.NextPageToken = PageToken.Encode($"{last.PaidAt.Ticks}/{last.Id}", customerId.ToString());
        }
        return response;
    }

    [Allow(Roles.Service, Roles.Store, Roles.Partner)]
    public override async Task<Refund> RefundOrder(RefundOrderRequest request, ServerCallContext context)
    {
        request = await partner.ResolveAsync(request, context.CancellationToken); // or the order by its external_order_id
        var refund = OrderRules.Validate(request, clock);
        await scope.RequireOrderLinkedAsync(context, refund.OrderId);
        var (recorded, order, _) = await orders.RefundAsync(refund, context.CancellationToken);
        logger.LogInformation("Refund {RefundId} of {Amount} on order {OrderId}; refunded {Refunded} of {Paid}",
            recorded.RefundId, recorded.Amount, order.Id, order.AmountRefunded, order.AmountPaid);
        return Wire.ToProto(recorded, order);
    }

    [Allow(Roles.System)]
    public override async Task<ExportOrdersResponse> ExportOrders(ExportOrdersRequest request, ServerCallContext context)
    {
        var v = new Validator();
        v.Require(request.PageSize is >= 0 and <= 1000, "page_size", "must be between 1 and 1000 (0 means 500).");
        var pageSize = request.PageSize == 0 ? 500 : request.PageSize;
        Guid? after = null;
        if (PageToken.Decode(request.PageToken, "export", v) is { } key)
        {
            if (Guid.TryParse(key, out var id)) after = id;
            else v.Add("page_token", "is not a page token returned by this service.");
        }
        v.ThrowIfInvalid();

        var page = await orders.ExportAsync(after, pageSize + 1, context.CancellationToken);
        var response = new ExportOrdersResponse();
        response.Orders.AddRange(page.Take(pageSize).Select(Wire.ToProto));
        if (page.Count > pageSize) response.NextPageToken = PageToken.Encode(page[pageSize - 1].Id.ToString(), "export");
        return response;
    }

    private static string? Blank(string value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}

using Crm.Contracts;
using Crm.Customer.V1;
using Crm.Messaging;
using Crm.Sales.Opportunities;
using Crm.ServiceDefaults.Data;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Crm.Sales.Leads;

public sealed record ConversionInput(Guid LeadId, string Key, string? Title, decimal Amount, DateOnly ExpectedCloseDate, string? ProductInterest);

public sealed record ConversionResult(LeadRow Lead, OpportunityRow Opportunity, Guid CustomerId, bool CustomerCreated);

/// <summary>
/// Converts a qualified lead. First the customer: the customer service is asked (with a deadline) for a customer
/// with the lead's phone (then e-mail); if none, it creates one with request id "sales-lead:&lt;key&gt;", so a retry
/// after a lost answer gets the same customer. Only then, in one transaction: the opportunity, the lead marked
/// converted with the key, LeadConverted in the outbox, the audit row. If the customer service does not answer,
/// nothing is written here and the caller gets UNAVAILABLE; the same key works on retry.
/// </summary>
public sealed class LeadConversion(
    NpgsqlDataSource dataSource, CustomerService.CustomerServiceClient customers, Outbox outbox, Pipeline pipeline,
    IOptions<SalesOptions> options, TimeProvider clock, ILogger<LeadConversion> logger)
{
    public async Task<ConversionResult> ConvertAsync(ConversionInput input, Action<LeadRow> authorize, string changedBy, CancellationToken ct)
    {
        var lead = await LoadAsync(input.LeadId, ct);
        authorize(lead);
        if (await PreviousAsync(lead, input.Key, ct) is { } previous) return previous;
        if (lead.Status != LeadStatuses.Qualified)
            throw new PreconditionFailedException("LEAD_NOT_QUALIFIED", $"leads/{lead.Id}", $"Lead {lead.Id} is {lead.Status}; only a qualified lead is converted.");
        if (lead.Phone is null)
            throw new PreconditionFailedException("LEAD_WITHOUT_PHONE", $"leads/{lead.Id}",
                $"Lead {lead.Id} has no phone; the customer service registers customers by phone. Add one first.");

        var (customerId, created) = await FindOrCreateCustomerAsync(lead, input.Key, ct);

        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var locked = await LeadRepository.FindAsync(connection, tx, "id = @id FOR UPDATE", new { id = lead.Id }, ct)
            ?? throw new NotFoundException("lead", lead.Id.ToString());
        if (locked.Status != LeadStatuses.Qualified)
        {
            await tx.RollbackAsync(ct);
            // A concurrent call with the same key got there first: answer as it did.
            if (await PreviousAsync(locked, input.Key, ct) is { } raced) return raced;
            throw new PreconditionFailedException("LEAD_NOT_QUALIFIED", $"leads/{lead.Id}", $"Lead {lead.Id} is {locked.Status}; only a qualified lead is converted.");
        }
        var now = clock.UtcNowForDb();
        var opportunity = await OpportunityRepository.InsertAsync(connection, tx, new NewOpportunity(
            customerId, lead.Id, input.Title ?? DefaultTitle(lead),
            input.ProductInterest ?? lead.Interest, input.Amount, input.ExpectedCloseDate, pipeline.First.Code,
            locked.OwnerId, locked.OwnerTeam, RequestId: null), pipeline.First.Code, changedBy, now, ct);
        var converted = await connection.QuerySingleAsync<LeadRow>(new CommandDefinition($"""
            UPDATE leads SET status = 'converted', customer_id = @customerId, customer_created = @created, opportunity_id = @opportunityId, conversion_key = @key,
                version = version + 1, updated_at = @now
            WHERE id = @id RETURNING {LeadRepository.Columns}
            """, new { id = lead.Id, customerId, created, opportunityId = opportunity.Id, key = input.Key, now }, tx, cancellationToken: ct));
        await outbox.AddAsync(tx, new LeadConverted(lead.Id, customerId, created, opportunity.Id, locked.OwnerId, locked.OwnerTeam,
            new DateTimeOffset(now, TimeSpan.Zero)), ct);
        await Crm.ServiceDefaults.Security.Audit.Audit.RecordAsync(tx, lead.Id.ToString(), ct);
        await tx.CommitAsync(ct);
        outbox.Wake();
        logger.LogInformation("Converted lead {LeadId} into opportunity {OpportunityId} for customer {CustomerId} (created: {Created})",
            lead.Id, opportunity.Id, customerId, created);
        return new ConversionResult(converted, opportunity, customerId, created);
    }

    private static string DefaultTitle(LeadRow lead)
    {
        var title = $"{lead.Name}: {lead.Interest ?? "new deal"}";
        return title.Length <= 200 ? title : title[..200];
    }

    private async Task<LeadRow> LoadAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        return await LeadRepository.FindAsync(connection, null, "id = @id", new { id }, ct) ?? throw new NotFoundException("lead", id.ToString());
    }

    /// <summary>The first answer again for a retry with the same key; a converted lead with another key is a precondition failure.</summary>
    private async Task<ConversionResult?> PreviousAsync(LeadRow lead, string key, CancellationToken ct)
    {
        if (lead.Status != LeadStatuses.Converted) return null;
        if (lead.ConversionKey != key)
            throw new PreconditionFailedException("LEAD_CONVERTED", $"leads/{lead.Id}",
                $"Lead {lead.Id} was already converted (opportunity {lead.OpportunityId}) with another idempotency key.");
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        var opportunity = await OpportunityRepository.FindAsync(connection, null, "id = @id", new { id = lead.OpportunityId }, ct)
            ?? throw new NotFoundException("opportunity", lead.OpportunityId.ToString()!);
        return new ConversionResult(lead, opportunity, lead.CustomerId!.Value, lead.CustomerCreated);
    }

    private async Task<(Guid CustomerId, bool Created)> FindOrCreateCustomerAsync(LeadRow lead, string key, CancellationToken ct)
    {
        try
        {
            var request = new CreateCustomerRequest
            {
                RequestId = "sales-lead:" + key,
                Profile = new CustomerProfile { Name = lead.Name, Phone = lead.Phone!, Email = lead.Email ?? "", SourceChannel = lead.SourceChannel ?? "sales" },
            };
            var found = await SearchAsync(new SearchCustomersRequest { Phone = lead.Phone!, PageSize = 1 }, ct);
            if (found is null && lead.Email is not null) found = await SearchAsync(new SearchCustomersRequest { Email = lead.Email, PageSize = 1 }, ct);
            if (found is { } existing)
            {
                // Found: either it was there before, or an earlier attempt with this key created it and its answer was lost
                // (the customer service checks the request id before the phone, so asking again tells which).
                try
                {
                    var again = await customers.CreateCustomerAsync(request, deadline: Deadline(), cancellationToken: ct);
                    return (existing, Guid.Parse(again.Id) == existing);
                }
                catch (RpcException ex) when (ex.StatusCode is StatusCode.AlreadyExists or StatusCode.InvalidArgument)
                {
                    return (existing, false);
                }
            }
            // The request id makes a retry after a lost answer return the customer created by the first attempt.
            var customer = await customers.CreateCustomerAsync(request, deadline: Deadline(), cancellationToken: ct);
            return (Guid.Parse(customer.Id), true);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled && !ct.IsCancellationRequested)
        {
            logger.LogWarning("Customer service did not answer converting lead {LeadId}: {Status}", lead.Id, ex.StatusCode);
            throw new RpcException(new Status(StatusCode.Unavailable,
                "The customer service did not answer in time; nothing was converted. Retry with the same idempotency key."));
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.InvalidArgument or StatusCode.AlreadyExists)
        {
            throw new PreconditionFailedException("CUSTOMER_REFUSED", $"leads/{lead.Id}",
                $"The customer service refused the lead's details ({ex.StatusCode}): {Echo.Cut(ex.Status.Detail, 200)}");
        }
    }

    private async Task<Guid?> SearchAsync(SearchCustomersRequest request, CancellationToken ct)
    {
        var found = await customers.SearchCustomersAsync(request, deadline: Deadline(), cancellationToken: ct);
        return found.Customers.Count > 0 ? Guid.Parse(found.Customers[0].Id) : null;
    }

    private DateTime Deadline() => DateTime.UtcNow + options.Value.CustomerCallTimeout;
}

using Crm.ServiceDefaults.Errors;
using Npgsql;
using Proto = Crm.Customer.V1;

namespace Crm.Customer.Customers;

public enum UpsertOutcome { Created, Updated, Unchanged }

/// <summary>
/// UpsertCustomer: the customer a partner system knows by its own id is created or updated as the mode allows.
/// Two pushes of a new id at the same moment create one customer (the loser reads the winner's and updates
/// it); without an expected version, a concurrent edit is retried on the fresh row.
/// </summary>
public sealed class CustomerUpserts(CustomerRepository customers, TimeProvider clock)
{
    private const int Attempts = 4;

    /// <param name="fields">Profile fields to replace on update; every field when null.</param>
    public async Task<(CustomerRecord Customer, UpsertOutcome Outcome)> UpsertAsync(
        ExternalId externalId, Proto.CustomerProfile input, IReadOnlySet<string>? fields, Proto.UpsertMode mode, long expectedVersion,
        CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var id = await customers.FindByExternalIdAsync(externalId, ct);
            if (id is null)
            {
                if (mode == Proto.UpsertMode.UpdateOnly) throw new NotFoundException("customer", externalId.ToString());
                if (expectedVersion > 0) throw new NotFoundException("customer", externalId.ToString());
                var v = new Validator();
                var profile = ProfileRules.ForCreate(input, v, clock);
                v.ThrowIfInvalid();
                try
                {
                    var (created, _) = await customers.CreateAsync(profile, null, ct, externalId);
                    return (created, UpsertOutcome.Created);
                }
                catch (PostgresException e) when (e.ConstraintName == "customer_external_ids_pkey" && attempt < Attempts)
                {
                    continue; // created by a concurrent push of the same id: update that one
                }
                catch (AlreadyExistsException) when (attempt < Attempts)
                {
                    // The same race seen first on the phone (or e-mail) the concurrent push registered: update that
                    // customer. A phone that belongs to a customer without this id stays ALREADY_EXISTS.
                    if (await customers.FindByExternalIdAsync(externalId, ct) is null) throw;
                    continue;
                }
            }
            if (mode == Proto.UpsertMode.CreateOnly)
                throw new AlreadyExistsException("customer", id.Value.ToString(), $"{externalId} is already customer {id}.");

            var current = await customers.GetAsync(id.Value, ct) ?? throw new NotFoundException("customer", externalId.ToString());
            if (expectedVersion > 0 && expectedVersion != current.Version)
                throw new ConcurrencyConflictException("customer", id.Value.ToString(), expectedVersion, current.Version);
            try
            {
                var updated = await customers.UpdateAsync(id.Value, current.Version, existing =>
                {
                    var v = new Validator();
                    var merged = ProfileRules.Merge(existing, input, fields ?? ProfileRules.Fields, v, clock);
                    v.ThrowIfInvalid();
                    return merged;
                }, ct);
                return (updated, updated.Version == current.Version ? UpsertOutcome.Unchanged : UpsertOutcome.Updated);
            }
            catch (ConcurrencyConflictException) when (expectedVersion == 0 && attempt < Attempts)
            {
                // Changed between our read and our write: merge onto the fresh row.
            }
        }
    }
}

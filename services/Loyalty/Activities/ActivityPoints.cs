using Crm.Loyalty.Accounts;
using Crm.Loyalty.V1;
using EntryKind = Crm.Loyalty.Accounts.EntryKind;
using Crm.ServiceDefaults.Errors;
using Microsoft.Extensions.Options;

namespace Crm.Loyalty.Activities;

/// <summary>
/// Points for taking part: birthday registration and profile completion once per member; a survey, vote or game
/// once per activity id. Activity points count toward growth value, like purchase points.
/// </summary>
public sealed class ActivityPoints(AccountTransactions accounts, Ledger ledger, IOptions<LoyaltyOptions> options)
{
    private readonly ActivityOptions _points = options.Value.Activities;

    public Task<LedgerEntryRecord> RegisterAsync(Guid customerId, ActivityType type, string? activityId, CancellationToken ct)
    {
        var (points, once) = type switch
        {
            ActivityType.BirthdayRegistration => (_points.BirthdayRegistration, true),
            ActivityType.ProfileCompletion => (_points.ProfileCompletion, true),
            ActivityType.Survey => (_points.Survey, false),
            ActivityType.Vote => (_points.Vote, false),
            ActivityType.Game => (_points.Game, false),
            _ => throw new ValidationException("type", "must be a known activity type."),
        };
        var name = type.ToString().ToLowerInvariant();
        var reference = once ? name : $"{name}:{activityId}";
        var key = $"activity:{customerId}:{reference}";

        return accounts.RunAsync(customerId, async (tx, account) =>
        {
            if (await Ledger.FindEntryAsync(tx, key, ct) is not null)
                throw new AlreadyExistsException("activity", $"{customerId}/{reference}",
                    once ? $"Customer {customerId} has already been rewarded for {name}."
                         : $"Customer {customerId} has already taken part in {name} '{activityId}'.");
            var (entry, _) = await ledger.EarnAsync(tx, account,
                new Change(EntryKind.Earn, "activity", reference, points, points, key, $"Points for {reference}"), ct);
            return entry;
        }, ct);
    }
}

using Crm.Loyalty.Accounts;
using Crm.ServiceDefaults.Errors;
using Dapper;
using Microsoft.Extensions.Options;

namespace Crm.Loyalty.Activities;

public sealed record CheckInResult(LedgerEntryRecord Entry, int Streak, long BonusPoints);

/// <summary>
/// Daily check-in: DailyPoints each day, plus StreakBonusPoints on every StreakBonusDays-th day in a row
/// (defaults +5 a day, +50 more on the 7th). A missed day restarts the streak at 1. One check-in per calendar
/// day in the brand's time zone.
/// </summary>
public sealed class CheckIns(AccountTransactions accounts, Ledger ledger, BrandCalendar calendar, IOptions<LoyaltyOptions> options)
{
    private readonly CheckInOptions _rules = options.Value.CheckIn;

    public static (int Streak, long Points, long Bonus) Score(DateOnly today, DateOnly? lastCheckIn, int lastStreak, CheckInOptions rules)
    {
        var streak = lastCheckIn == today.AddDays(-1) ? lastStreak + 1 : 1;
        var bonus = rules.StreakBonusDays > 0 && streak % rules.StreakBonusDays == 0 ? rules.StreakBonusPoints : 0;
        return (streak, rules.DailyPoints + bonus, bonus);
    }

    public Task<CheckInResult> CheckInAsync(Guid customerId, CancellationToken ct) =>
        accounts.RunAsync(customerId, async (tx, account) =>
        {
            var today = calendar.Today();
            if (account.LastCheckIn == today)
                throw new AlreadyExistsException("check-in", $"{customerId}/{today:yyyy-MM-dd}",
                    $"Customer {customerId} has already checked in today ({today:yyyy-MM-dd}); come back tomorrow.");

            var (streak, points, bonus) = Score(today, account.LastCheckIn, account.CheckInStreak, _rules);
            await tx.Connection!.ExecuteAsync(new CommandDefinition(
                "UPDATE accounts SET check_in_streak = @streak, last_check_in = @today WHERE customer_id = @customerId",
                new { streak, today = today.ToDateTime(TimeOnly.MinValue), customerId }, tx, cancellationToken: ct));
            var (entry, _) = await ledger.EarnAsync(tx, account, new Change(EntryKind.Earn, "activity", $"check-in {today:yyyy-MM-dd}",
                points, points, $"check-in:{customerId}:{today:yyyy-MM-dd}",
                bonus > 0 ? $"Check-in, day {streak} in a row (+{bonus} streak bonus)" : $"Check-in, day {streak} in a row"), ct);
            return new CheckInResult(entry, streak, bonus);
        }, ct);
}

using Crm.Loyalty.Accounts;
using Crm.Loyalty.V1;
using Google.Protobuf.WellKnownTypes;

namespace Crm.Loyalty.Grpc;

/// <summary>Domain records to protobuf messages.</summary>
internal static partial class Wire
{
    public static Account ToProto(AccountRecord a, TierTable tiers)
    {
        var tier = tiers.For(a.GrowthValue);
        var next = tiers.Next(a.GrowthValue);
        return new Account
        {
            CustomerId = a.CustomerId.ToString(), Balance = a.Balance, GrowthValue = a.GrowthValue,
            Tier = ToProto(tier), NextTier = next is null ? null : ToProto(next),
            GrowthToNextTier = next is null ? 0 : next.MinGrowthValue - a.GrowthValue,
            CheckInStreak = a.CheckInStreak, OpenedAt = Utc(a.OpenedAt),
        };
    }

    public static Tier ToProto(TierOptions t)
    {
        var benefits = new Benefits { DiscountPercent = t.DiscountPercent, Description = t.Description };
        benefits.FreeServices.AddRange(t.FreeServices);
        return new Tier { Code = t.Code, Name = t.Name, MinGrowthValue = t.MinGrowthValue, Benefits = benefits };
    }

    public static LedgerEntry ToProto(LedgerEntryRecord e) => new()
    {
        Id = e.Id, CustomerId = e.CustomerId.ToString(), Kind = (V1.EntryKind)(int)e.Kind, Source = e.Source,
        SourceRef = e.SourceRef, Points = e.Points, GrowthValue = e.GrowthValue, BalanceAfter = e.BalanceAfter,
        Note = e.Note ?? "", CreatedAt = Utc(e.CreatedAt),
    };

    public static Timestamp Utc(DateTime value) => Timestamp.FromDateTime(DateTime.SpecifyKind(value, DateTimeKind.Utc));
}

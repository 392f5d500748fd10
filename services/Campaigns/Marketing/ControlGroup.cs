using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Crm.Campaigns.Marketing;

/// <summary>
/// Who a campaign holds out: a stable hash of (campaign, customer) mapped to 0-9999 and compared with the share — the
/// same customers on every run and occurrence, independent across campaigns, with no state to keep.
/// </summary>
public static class ControlGroup
{
    public static bool IsHeldOut(Guid campaignId, Guid customerId, int sharePercent)
    {
        if (sharePercent <= 0) return false;
        Span<byte> input = stackalloc byte[32];
        campaignId.TryWriteBytes(input[..16], bigEndian: true, out _);
        customerId.TryWriteBytes(input[16..], bigEndian: true, out _);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        return BinaryPrimitives.ReadUInt64BigEndian(hash) % 10_000 < (ulong)sharePercent * 100;
    }
}

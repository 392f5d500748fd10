using System.Security.Cryptography;

namespace Crm.Loyalty.Rewards;

/// <summary>
/// Coupon codes: 12 characters from an alphabet without look-alikes (no 0/O, 1/I), drawn with a cryptographic
/// generator, so codes cannot be guessed: 32^12 ≈ 1.2e18 possible codes.
/// </summary>
public static class CouponCodes
{
    public const string Alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    public const int Length = 12;

    public static string New() => RandomNumberGenerator.GetString(Alphabet, Length);

    /// <summary>Codes are printed and typed: accept lower case and surrounding spaces.</summary>
    public static string Normalize(string code) => code.Trim().ToUpperInvariant();
}

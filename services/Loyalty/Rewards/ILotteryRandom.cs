using System.Security.Cryptography;

namespace Crm.Loyalty.Rewards;

/// <summary>The lottery's source of chance; tests replace it to make draws deterministic.</summary>
public interface ILotteryRandom
{
    /// <summary>A uniform double in [0, 1).</summary>
    double NextDouble();
}

/// <summary>Cryptographic chance, so a member cannot predict the next draw: 53 random bits scaled to [0, 1).</summary>
public sealed class SecureLotteryRandom : ILotteryRandom
{
    public double NextDouble()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return (BitConverter.ToUInt64(bytes) >> 11) * (1.0 / (1UL << 53));
    }
}

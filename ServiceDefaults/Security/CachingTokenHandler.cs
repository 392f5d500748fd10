using Microsoft.Extensions.Caching.Memory;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// JWT validation with a cache of tokens already found valid. A client reuses one token for many calls, and
/// verifying its signature (ECDSA/RSA) plus parsing costs a few hundred microseconds of CPU on every call
/// otherwise — more than a GetCustomer. The cache is keyed by the exact token string (the bytes that were
/// verified), holds a result until the token expires or for at most <see cref="MaxAge"/> (so a removed
/// signing key stops being honoured within that time), and keeps at most 10,000 tokens. Invalid tokens are
/// never cached. Each request gets its own copy of the identity.
/// </summary>
public sealed class CachingTokenHandler(TimeProvider clock) : JsonWebTokenHandler
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromMinutes(5);
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 10_000, Clock = null });

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        var now = clock.GetUtcNow();
        if (_cache.TryGetValue(token, out Entry? hit) && hit!.Until > now) return hit.Copy();
        var result = await base.ValidateTokenAsync(token, validationParameters);
        if (result.IsValid && result.SecurityToken is { } validated && validated.ValidTo > now.UtcDateTime)
        {
            var until = new DateTimeOffset(DateTime.SpecifyKind(validated.ValidTo, DateTimeKind.Utc));
            if (until > now + MaxAge) until = now + MaxAge;
            _cache.Set(token, new Entry(result, until), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpiration = until });
        }
        return result;
    }

    private sealed record Entry(TokenValidationResult Result, DateTimeOffset Until)
    {
        public TokenValidationResult Copy() => new()
        {
            IsValid = true,
            ClaimsIdentity = Result.ClaimsIdentity.Clone(),
            SecurityToken = Result.SecurityToken,
            Issuer = Result.Issuer,
            TokenType = Result.TokenType,
        };
    }
}

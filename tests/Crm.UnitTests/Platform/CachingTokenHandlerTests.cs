using Crm.ServiceDefaults.Security;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace Crm.UnitTests.Platform;

public sealed class CachingTokenHandlerTests
{
    [Fact]
    public async Task A_valid_token_is_remembered_until_it_expires_and_bad_ones_never_are()
    {
        using var key = DevTokens.NewKey();
        using var other = DevTokens.NewKey();
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var parameters = new TokenValidationParameters
        {
            ValidIssuer = "i", ValidAudience = "a", IssuerSigningKey = new ECDsaSecurityKey(key), RoleClaimType = "role", NameClaimType = "sub",
            ClockSkew = TimeSpan.Zero, LifetimeValidator = (_, expires, _, _) => expires > clock.GetUtcNow().UtcDateTime,
        };
        var handler = new CachingTokenHandler(clock);
        var token = DevTokens.Create(key, "i", "a", "store", lifetime: TimeSpan.FromMinutes(2), now: clock.GetUtcNow());

        var first = await handler.ValidateTokenAsync(token, parameters);
        var second = await handler.ValidateTokenAsync(token, parameters);
        Assert.True(first.IsValid && second.IsValid);
        Assert.NotSame(first.ClaimsIdentity, second.ClaimsIdentity);
        Assert.Equal("store", second.ClaimsIdentity.FindFirst("role")!.Value);

        clock.Advance(TimeSpan.FromMinutes(3)); // past exp: the cached result is not used
        Assert.False((await handler.ValidateTokenAsync(token, parameters)).IsValid);
        var forged = DevTokens.Create(other, "i", "a", "admin", now: clock.GetUtcNow());
        Assert.False((await handler.ValidateTokenAsync(forged, parameters)).IsValid);
        Assert.False((await handler.ValidateTokenAsync(forged, parameters)).IsValid);
    }
}

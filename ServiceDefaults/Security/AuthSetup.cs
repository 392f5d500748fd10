using System.Security.Cryptography;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.IdentityModel.Tokens;

namespace Crm.ServiceDefaults.Security;

/// <summary>
/// JWT bearer authentication and deny-by-default authorization for every service, from the section
/// <c>Auth</c>: Issuer, Audience (required), and either Authority (an OIDC provider: keys come from its
/// JWKS) or SigningKeys (public keys: base64 SubjectPublicKeyInfo or PEM, ECDSA or RSA; the AppHost hands
/// its development key this way). RoleClaim (default <c>role</c>), ClockSkew (default 30 s).
/// </summary>
public static class AuthSetup
{
    public const string SectionName = "Auth";

    public static void AddCrmAuthentication(this IHostApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(SectionName);
        var issuer = section["Issuer"];
        var audience = section["Audience"];
        var authority = section["Authority"];
        var keys = section.GetSection("SigningKeys").GetChildren().Select(c => c.Value).Where(v => !string.IsNullOrWhiteSpace(v))
            .Concat(section["SigningKey"] is { Length: > 0 } one ? [one] : [])
            .Select(v => ReadKey(v!)).ToList();
        if (string.IsNullOrWhiteSpace(issuer) || string.IsNullOrWhiteSpace(audience) || (string.IsNullOrWhiteSpace(authority) && keys.Count == 0))
            throw new InvalidOperationException(
                "Authentication is not configured: set Auth__Issuer, Auth__Audience and either Auth__Authority (an OIDC provider) " +
                "or Auth__SigningKeys__0 (a public key). The AppHost sets them for the local suite.");
        var roleClaim = section["RoleClaim"] is { Length: > 0 } r ? r : "role";
        var skew = section.GetValue<TimeSpan?>("ClockSkew") ?? TimeSpan.FromSeconds(30);

        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
        {
            o.MapInboundClaims = false; // keep "sub" and "role" as they are
            // Verified tokens are remembered until they expire (at most 5 minutes): see CachingTokenHandler.
            o.TokenHandlers.Clear();
            o.TokenHandlers.Add(new CachingTokenHandler(TimeProvider.System) { MapInboundClaims = false });
            if (!string.IsNullOrWhiteSpace(authority))
            {
                o.Authority = authority;
                o.RequireHttpsMetadata = section.GetValue("RequireHttpsMetadata", true);
            }
            o.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuer = issuer,
                ValidAudience = audience,
                ValidateIssuer = true,
                ValidateAudience = true,
                ValidateLifetime = true,
                RequireExpirationTime = true,
                RequireSignedTokens = true,
                ValidateIssuerSigningKey = true,
                IssuerSigningKeys = keys.Count > 0 ? keys : null,
                ClockSkew = skew,
                NameClaimType = "sub",
                RoleClaimType = roleClaim,
            };
        });
        // Deny by default: an endpoint without its own declaration still needs a valid token; every RPC declares its roles with [Allow].
        builder.Services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build())
            .AddPolicy(AdminPolicy, p => p.RequireRole(Roles.Admin));
    }

    /// <summary>Admin role only (server reflection outside Development).</summary>
    public const string AdminPolicy = "crm-admin";

    private static SecurityKey ReadKey(string value)
    {
        value = value.Trim();
        if (value.StartsWith("-----BEGIN", StringComparison.Ordinal))
        {
            if (value.Contains("RSA", StringComparison.Ordinal)) { var rsa = RSA.Create(); rsa.ImportFromPem(value); return new RsaSecurityKey(rsa); }
            var pem = ECDsa.Create();
            try { pem.ImportFromPem(value); return EcKey(pem); }
            catch (CryptographicException) { var rsa = RSA.Create(); rsa.ImportFromPem(value); return new RsaSecurityKey(rsa); }
        }
        var der = Convert.FromBase64String(value);
        var ec = ECDsa.Create();
        try { ec.ImportSubjectPublicKeyInfo(der, out _); return EcKey(ec); }
        catch (CryptographicException) { var rsa = RSA.Create(); rsa.ImportSubjectPublicKeyInfo(der, out _); return new RsaSecurityKey(rsa); }
    }

    private static ECDsaSecurityKey EcKey(ECDsa key) => new(key) { KeyId = DevTokens.KeyId(key) };
}

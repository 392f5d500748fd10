using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;

namespace Crm.EndToEndTests;

/// <summary>
/// A token for the running suite, got the way the README says: <c>./crm token --role admin</c> runs the built
/// AppHost's <c>token</c> subcommand, which signs with the development key in the AppHost's data folder.
/// </summary>
internal static class CrmToken
{
    public static async Task<string> GetAsync(string dataDirectory, string role, string? customer = null)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { TestSupport.AppHostDll, "token", "--role", role, "--ttl", "1h", $"--AppHost:DataDirectory={dataDirectory}" })
            info.ArgumentList.Add(a);
        if (customer is not null) { info.ArgumentList.Add("--customer"); info.ArgumentList.Add(customer); }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (process.ExitCode != 0) throw new InvalidOperationException($"crm token exited with {process.ExitCode}: {await stderr}");
        return (await stdout).Trim();
    }

    /// <summary>A channel sending the token on every call (plain http on loopback).</summary>
    public static GrpcChannel Channel(string address, string token) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        Credentials = ChannelCredentials.Create(ChannelCredentials.Insecure, CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add("Authorization", "Bearer " + token);
            return Task.CompletedTask;
        })),
        UnsafeUseInsecureChannelCallCredentials = true,
    });
}

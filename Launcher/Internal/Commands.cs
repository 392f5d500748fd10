using System.Diagnostics;

namespace Crm.Launcher.Internal;

/// <summary>Short-lived helper commands (initdb, chown) run to completion.</summary>
internal static class Commands
{
    public static async Task<(int ExitCode, string Output)> RunAsync(
        string fileName, IEnumerable<string> arguments, string? runAsUser = null, string? workingDirectory = null, CancellationToken ct = default)
    {
        var info = new ProcessStartInfo(runAsUser is not null && Posix.IsRoot ? "setpriv" : fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        if (runAsUser is not null && Posix.IsRoot)
        {
            foreach (var a in new[] { $"--reuid={runAsUser}", $"--regid={runAsUser}", "--init-groups", "--", fileName })
                info.ArgumentList.Add(a);
        }
        foreach (var a in arguments) info.ArgumentList.Add(a);

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return (process.ExitCode, (await stdout + await stderr).Trim());
    }

    /// <summary>Gives <paramref name="path"/> (recursively) to <paramref name="user"/> when we are root.</summary>
    public static async Task ChownAsync(string path, string user, CancellationToken ct = default)
    {
        if (!Posix.IsRoot) return;
        var (code, output) = await RunAsync("chown", ["-R", $"{user}:{user}", path], ct: ct);
        if (code != 0) throw new InfrastructureException($"chown -R {user} {path} failed: {output}");
    }

    /// <summary>
    /// Makes the folders from the data root down to <paramref name="path"/> traversable by other users
    /// (a temp folder is created 0700, and postgres/rabbitmq must reach their subfolder).
    /// </summary>
    public static void MakeTraversable(string root)
    {
        if (!Posix.IsRoot || OperatingSystem.IsWindows()) return;
        var mode = File.GetUnixFileMode(root);
        File.SetUnixFileMode(root, mode | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }
}

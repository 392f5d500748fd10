using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Crm.Launcher.Internal;

namespace Crm.Launcher;

/// <summary>
/// Where the servers' data can live. As root, Postgres runs as <c>postgres</c> and RabbitMQ as
/// <c>rabbitmq</c>: they must be able to walk down to their folders. A clone in root's home
/// (<c>/root</c> is mode 700) cannot give them that without opening root's home to every user, so
/// the data then lives in <c>/var/lib/crm-suite/&lt;hash of the requested path&gt;</c> instead: the
/// same folder for the same clone on every run, a different one per clone.
/// </summary>
public static class DataLocation
{
    /// <summary>Parent of the relocated data folders.</summary>
    public const string FallbackRoot = "/var/lib/crm-suite";

    /// <summary>File in a relocated folder naming the folder that was asked for.</summary>
    public const string OriginFile = "REQUESTED_PATH";

    /// <summary>Users the servers run as when we are root.</summary>
    public static readonly IReadOnlyList<string> ServerUsers = ["postgres", "rabbitmq"];

    /// <summary>
    /// <paramref name="requested"/> (full path) when every user in <paramref name="users"/> (default:
    /// postgres and rabbitmq) can reach it, or when we are not root; else the folder under
    /// <see cref="FallbackRoot"/> kept for it.
    /// </summary>
    public static string Resolve(string requested, IEnumerable<string>? users = null)
    {
        var full = Path.GetFullPath(requested);
        if (!Posix.IsRoot || OperatingSystem.IsWindows()) return full;
        var blocked = (users ?? ServerUsers).Where(UserExists).Where(u => !IsReachableBy(full, u)).ToList();
        if (blocked.Count == 0) return full;
        return FallbackFor(full);
    }

    /// <summary>The folder under <see cref="FallbackRoot"/> for <paramref name="requested"/>: /var/lib/crm-suite/&lt;12 hex digits&gt;.</summary>
    public static string FallbackFor(string requested)
    {
        var full = Path.GetFullPath(requested);
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(full)))[..12];
        return Path.Combine(FallbackRoot, hash);
    }

    /// <summary>
    /// Creates the relocated folder (mode 755, its parent too) and records the requested path in it,
    /// so that a look at /var/lib/crm-suite tells which clone each folder belongs to.
    /// </summary>
    public static void Prepare(string folder, string requested)
    {
        if (folder == Path.GetFullPath(requested)) return;
        Directory.CreateDirectory(FallbackRoot);
        Directory.CreateDirectory(folder);
        Commands.MakeTraversable(FallbackRoot);
        File.WriteAllText(Path.Combine(folder, OriginFile), Path.GetFullPath(requested) + "\n");
    }

    /// <summary>
    /// True when <paramref name="user"/> can reach <paramref name="path"/>: its nearest existing
    /// ancestor (the path itself when it exists is made traversable by the Launcher) passes
    /// <c>test -x</c> as that user, which checks every folder on the way, ACLs and groups included.
    /// </summary>
    public static bool IsReachableBy(string path, string user)
    {
        var probe = Path.GetDirectoryName(Path.GetFullPath(path));
        while (probe is not null && !Directory.Exists(probe)) probe = Path.GetDirectoryName(probe);
        if (probe is null) return true;
        var info = new ProcessStartInfo("setpriv") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { $"--reuid={user}", $"--regid={user}", "--init-groups", "--", "test", "-x", probe }) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        process.WaitForExit();
        return process.ExitCode == 0;
    }

    private static bool UserExists(string user)
    {
        try { return File.ReadLines("/etc/passwd").Any(l => l.StartsWith(user + ":", StringComparison.Ordinal)); }
        catch (IOException) { return true; }
    }
}

using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Crm.EndToEndTests;

/// <summary>Small helpers of the tests; independent of the code under test on purpose.</summary>
internal static class TestSupport
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int sig);

    public static void Signal(int pid, int signal) => SysKill(pid, signal);

    public static string RepositoryRoot => Metadata("RepositoryRoot");
    public static string Configuration => Metadata("Configuration");

    public static string AppHostDll => Path.Combine(RepositoryRoot, "AppHost", "bin", Configuration, "net10.0", "Crm.AppHost.dll");

    private static string Metadata(string key) =>
        typeof(TestSupport).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    /// <summary>Live, non-zombie processes (other than this one) whose /proc/PID/cmdline contains <paramref name="text"/>.</summary>
    public static List<string> ProcessesMentioning(string text)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId) continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal) && IsAlive(pid)) found.Add($"{pid}: {cmdline}");
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    /// <summary>True when the pid exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
        }
        catch (IOException) { return false; }
    }

    /// <summary>The parent pid from /proc/PID/stat, 0 when the process is gone.</summary>
    public static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException) { return 0; }
    }

    public static string CommandLine(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' '); }
        catch (IOException) { return ""; }
    }

    /// <summary>Every live process below <paramref name="pid"/> (children, their children, …).</summary>
    public static List<int> DescendantsOf(int pid)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
            if (int.TryParse(Path.GetFileName(dir), out var p) && ParentOf(p) is > 0 and var parent) parents[p] = parent;
        var found = new List<int>();
        var queue = new Queue<int>([pid]);
        while (queue.TryDequeue(out var next))
            foreach (var child in parents.Where(e => e.Value == next).Select(e => e.Key))
            {
                found.Add(child);
                queue.Enqueue(child);
            }
        return found.Where(IsAlive).ToList();
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the time is up; returns whether it held.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(200);
        }
        return true;
    }

    public static async Task<bool> PortAcceptsAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(2));
            return true;
        }
        catch (Exception e) when (e is SocketException or TimeoutException) { return false; }
    }

    /// <summary>Sends the AMQP 0-9-1 header; a broker answers with a Connection.Start frame (type 1, class 10, method 10).</summary>
    public static async Task<bool> AmqpHandshakeAsync(int port)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(5));
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("AMQP\0\0\u0009\u0001"));
        var reply = new byte[11];
        var read = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        while (read < reply.Length)
        {
            var n = await stream.ReadAsync(reply.AsMemory(read), timeout.Token);
            if (n == 0) return false;
            read += n;
        }
        return reply[0] == 1 && reply[8] == 10 && reply[10] == 10;
    }
}

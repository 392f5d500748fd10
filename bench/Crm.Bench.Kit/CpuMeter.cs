using System.Diagnostics;
using System.Globalization;

namespace Crm.Bench;

/// <summary>CPU seconds spent in a window: the whole machine and the processes that matter here.</summary>
public sealed record CpuUsage(
    double WallSeconds, double MachineBusySeconds, double BenchSeconds, double BenchChildrenSeconds,
    double PostgresSeconds, double RabbitMqSeconds, double RedisSeconds)
{
    /// <summary>Average number of busy cores over the window.</summary>
    public double BusyCores => WallSeconds > 0 ? MachineBusySeconds / WallSeconds : double.NaN;

    /// <summary>CPU used by processes this bench did not start (other work on a shared machine): noise.</summary>
    public double OtherSeconds => Math.Max(0, MachineBusySeconds - BenchSeconds - BenchChildrenSeconds - PostgresSeconds - RabbitMqSeconds - RedisSeconds);

    public double OtherCores => WallSeconds > 0 ? OtherSeconds / WallSeconds : double.NaN;

    /// <summary>Microseconds of CPU per operation for a CPU-seconds figure.</summary>
    public static double PerOp(double seconds, double ops) => ops > 0 ? seconds * 1e6 / ops : double.NaN;
}

/// <summary>
/// Reads /proc: the machine's busy time from /proc/stat and, per process, utime+stime (+ reaped children's
/// cutime+cstime, so Postgres backends that exit in the window still count through the postmaster), for this
/// process and its descendants only. The bench process's own time covers the load generator and the in-process
/// services together; "children" is pgbench (live, or reaped into our cutime) and the launcher's watchdogs.
/// </summary>
public sealed class CpuMeter
{
    private const double ClockTicks = 100.0; // USER_HZ on Linux
    private readonly int _self = Environment.ProcessId;

    public sealed record Sample(long Timestamp, double MachineBusy, double Self, double SelfChildren, double Postgres, double RabbitMq, double Redis)
    {
        public static CpuUsage operator -(Sample after, Sample before) => new(
            Stopwatch.GetElapsedTime(before.Timestamp, after.Timestamp).TotalSeconds,
            after.MachineBusy - before.MachineBusy, after.Self - before.Self, after.SelfChildren - before.SelfChildren,
            after.Postgres - before.Postgres, after.RabbitMq - before.RabbitMq, after.Redis - before.Redis);
    }

    public Sample Snapshot()
    {
        // Every process on the machine, then only the descendants of this one: the servers the launcher started
        // (under their watchdogs) and pgbench. Other people's processes on a shared machine are left out.
        var stats = new Dictionary<int, Stat>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
            if (int.TryParse(Path.GetFileName(dir), out var pid) && ReadStat(pid) is { } stat) stats[pid] = stat;
        var children = stats.Values.ToLookup(s => s.ParentPid);

        double postgres = 0, rabbit = 0, redis = 0, self = 0, selfChildren = 0;
        if (stats.TryGetValue(_self, out var me)) { self = me.Own; selfChildren = me.Children; }
        var pending = new Stack<int>(children[_self].Select(c => c.Pid));
        while (pending.Count > 0)
        {
            var stat = stats[pending.Pop()];
            foreach (var child in children[stat.Pid]) pending.Push(child.Pid);
            var time = stat.Own + stat.Children;
            switch (stat.Comm)
            {
                case "postgres": postgres += time; break;
                case "beam.smp" or "epmd" or "erl_child_setup" or "inet_gethost" or "inet_gethost_native": rabbit += time; break;
                case "redis-server": redis += time; break;
                default: selfChildren += stat.Own; break; // pgbench while it runs, watchdogs
            }
        }
        return new Sample(Stopwatch.GetTimestamp(), MachineBusy(), self, selfChildren, postgres, rabbit, redis);
    }

    private sealed record Stat(int Pid, int ParentPid, string Comm, double Own, double Children);

    private static Stat? ReadStat(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var open = text.IndexOf('(');
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open) return null;
        var comm = text[(open + 1)..close];
        // After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
        var fields = text[(close + 2)..].Split(' ');
        if (fields.Length < 15) return null;
        double F(int field) => double.Parse(fields[field - 3], CultureInfo.InvariantCulture) / ClockTicks;
        return new Stat(pid, int.Parse(fields[1], CultureInfo.InvariantCulture), comm, F(14) + F(15), F(16) + F(17));
    }

    private static double MachineBusy()
    {
        var line = File.ReadLines("/proc/stat").First(l => l.StartsWith("cpu ", StringComparison.Ordinal));
        var v = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        // user nice system idle iowait irq softirq steal (guest time is already in user)
        var busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v.Length > 7 ? v[7] : 0);
        return busy / ClockTicks;
    }
}

public static class Quiet
{
    /// <summary>
    /// Waits (at most <paramref name="maxWait"/>) for a second in which processes this bench did not start use
    /// less than <paramref name="maxOtherCores"/>; returns how long it waited and the last such load seen.
    /// </summary>
    public static async Task<(double Waited, double OtherCores)> WaitAsync(CpuMeter cpu, TimeSpan maxWait, double maxOtherCores, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var before = cpu.Snapshot();
            await Task.Delay(1000, ct);
            var other = (cpu.Snapshot() - before).OtherCores;
            if (other < maxOtherCores || watch.Elapsed >= maxWait) return (watch.Elapsed.TotalSeconds, other);
        }
    }
}

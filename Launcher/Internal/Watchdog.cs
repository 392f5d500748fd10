namespace Crm.Launcher.Internal;

/// <summary>
/// The tiny bash wrapper every server and service runs under, so that no child outlives its owner,
/// not even when the owner is SIGKILLed (nothing else would tell the child).
/// </summary>
/// <remarks>
/// Arguments: owner pid, stop signal (TERM/INT), grace seconds, then the command. The wrapper
/// <list type="bullet">
/// <item>starts the command as its child and prints <c>@@crm-watchdog child=PID</c> on stderr
/// (with its own pid in <c>CRM_WATCHDOG</c>, which <see cref="ParentCheck"/> compares with the child's parent);</item>
/// <item>forwards a SIGTERM or SIGINT it receives to the child as the stop signal;</item>
/// <item>checks once a second that the owner still exists; when it is gone, it sends the stop
/// signal, waits the grace period and then SIGKILLs the child;</item>
/// <item>exits with the child's exit status (128 + signal when the child was killed).</item>
/// <item>waits with a plain <c>wait -n</c> (any job: the child or the 1 s tick) and then asks
/// <c>kill -0</c>: <c>wait -n PID</c> fails at once for a child bash has already reaped, which
/// would make the loop spin.</item>
/// </list>
/// It is started through <c>setsid</c>: a Ctrl+C in the owner's terminal then reaches only the
/// owner, which stops its children in order (services first, then the databases).
/// </remarks>
internal static class Watchdog
{
    public const string Marker = "@@crm-watchdog child=";

    public const string Script = """
        owner=$1 sig=$2 grace=$3; shift 3
        child= deadline= ; export CRM_WATCHDOG=$$
        trap 'stopping=1; [ -n "$child" ] && kill -s "$sig" "$child" 2>/dev/null' TERM INT
        "$@" & child=$!
        echo "@@crm-watchdog child=$child" >&2
        [ -n "$stopping" ] && kill -s "$sig" "$child" 2>/dev/null
        while :; do
          if [ -z "$deadline" ] && ! kill -0 "$owner" 2>/dev/null; then
            kill -s "$sig" "$child" 2>/dev/null; deadline=$((SECONDS + grace))
          elif [ -n "$deadline" ] && [ "$SECONDS" -ge "$deadline" ]; then
            kill -s KILL "$child" 2>/dev/null
          fi
          sleep 1 </dev/null >/dev/null 2>&1 & tick=$!
          wait -n 2>/dev/null
          if ! kill -0 "$child" 2>/dev/null; then kill "$tick" 2>/dev/null; wait "$child"; exit; fi
        done
        """;

    /// <summary>
    /// Run by the child after <c>setpriv --pdeathsig</c> armed the parent-death signal and before the
    /// program: a watchdog that died before that moment would never send it (the signal is armed
    /// against the new parent, init), so the child checks that its parent is still the watchdog.
    /// </summary>
    public const string ParentCheck = """[ "$PPID" = "$CRM_WATCHDOG" ] || exit 129; unset CRM_WATCHDOG; exec "$@" """;

    /// <summary>The argument list for <c>setsid</c> that runs <paramref name="command"/> under the watchdog.</summary>
    public static IEnumerable<string> Arguments(int stopSignal, TimeSpan grace, IEnumerable<string> command)
    {
        yield return "bash";
        yield return "-c";
        yield return Script;
        yield return "crm-watchdog";
        yield return Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        yield return Posix.SignalName(stopSignal);
        yield return ((int)Math.Ceiling(grace.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var part in command) yield return part;
    }
}

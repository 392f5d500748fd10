#!/usr/bin/env bash
# One command for the benchmarks (also `./crm bench`):  bench/run.sh [SUITE] [suite options]
#   core       (default) customer and loyalty: GetCustomer / RecordOrder / event lag / points end to end / Redeem
#              against pgbench -S, pgbench TPC-B and a bare gRPC echo             → bench/RESULTS.md            (~3 min)
#   sales      forecast, win rate, sales cycle over 100,000 opportunities; MoveStage → bench/RESULTS-sales.md
#   tickets    breach detection and ListAtRisk over 100,000 open tickets; OpenTicket → bench/RESULTS-tickets.md
#   campaigns  analytics recompute and sales report over 1,000,000 customers / 10,000,000 orders
#                                                                                   → bench/RESULTS-campaigns.md
#   partner    streaming import of 1,000,000 orders against COPY; change-feed lag   → bench/RESULTS-partner.md
#   telemetry  the core figures with telemetry flowing to the dashboard against off → bench/RESULTS-telemetry.md
#   all        every suite above, one after the other
# Each suite builds its project in bench/ in Release, starts Postgres/Redis/RabbitMQ (durable) in a temp folder and
# the services it measures in-process, measures its ceilings in the same run, writes its results file and
# bench/out/*.json, and stops everything it started. Run them on a quiet machine: other load is reported.
# Options after the suite go to it (see `bench/run.sh SUITE --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

suite=core
case "${1:-}" in
  core|sales|tickets|campaigns|partner|telemetry|all) suite=$1; shift ;;
esac

run_suite() {
  local name=$1; shift
  local project results
  case "$name" in
    core)      project=Crm.Bench;           results=bench/RESULTS.md ;;
    telemetry) run_telemetry "$@"; return ;;
    sales)     project=Crm.Bench.Sales;     results=bench/RESULTS-sales.md ;;
    tickets)   project=Crm.Bench.Tickets;   results=bench/RESULTS-tickets.md ;;
    campaigns) project=Crm.Bench.Campaigns; results=bench/RESULTS-campaigns.md ;;
    partner)   project=Crm.Bench.Partner;   results=bench/RESULTS-partner.md ;;
  esac
  echo "=== bench suite: $name ($project → $results)"
  dotnet build "bench/$project/$project.csproj" -c Release --verbosity quiet -nologo
  dotnet "bench/$project/bin/Release/net10.0/$project.dll" --results "$results" --out bench/out "$@"
}

# The core phases that only the customer service serves, without export and exporting to the dashboard's receiver,
# alternately (off, on, on, off, off, on: drift over the run falls on both sides alike), then the comparison of the
# medians (the event lag's p99 over all of a side's events). TELEMETRY_RUNS (default 3) runs of each. (Loyalty's phases are left out: in one process its tracer would
# also export the customer host's spans, which the AppHost's separate processes never do.)
run_telemetry() {
  echo "=== bench suite: telemetry (Crm.Bench, ${TELEMETRY_RUNS:-3} runs off and on alternately → bench/RESULTS-telemetry.md)"
  dotnet build bench/Crm.Bench/Crm.Bench.csproj -c Release --verbosity quiet -nologo
  dotnet build AppHost/Crm.AppHost.csproj -c Release --verbosity quiet -nologo
  local bench=bench/Crm.Bench/bin/Release/net10.0/Crm.Bench.dll
  local phases=pgbench-select,get,pgbench-tpcb,record,lag
  local runs=${TELEMETRY_RUNS:-3} i mode
  local -a off=() on=()
  for ((i = 1; i <= runs; i++)); do
    for mode in off on; do
      # odd pairs off then on, even pairs on then off
      if ((i % 2 == 0)); then mode=$([ "$mode" = off ] && echo on || echo off); fi
      if [ "$mode" = off ]; then
        dotnet "$bench" --phases "$phases" --no-results --out "bench/out/telemetry-off-$i" "$@"
        off+=("bench/out/telemetry-off-$i/latest.json")
      else
        dotnet "$bench" --phases "$phases" --no-results --out "bench/out/telemetry-on-$i" --telemetry "$@"
        on+=("bench/out/telemetry-on-$i/latest.json")
      fi
    done
  done
  dotnet "$bench" compare-telemetry --off "${off[@]}" --on "${on[@]}" --results bench/RESULTS-telemetry.md
}

status=0
if [ "$suite" = all ]; then
  for s in core telemetry sales tickets campaigns partner; do run_suite "$s" "$@" || status=$?; done
else
  run_suite "$suite" "$@" || status=$?
fi

# Everything a bench starts lives under /tmp/crm-bench-*: nothing of it may outlive the run.
if pgrep -af 'crm-bench-[0-9a-f]{10}' >/dev/null 2>&1; then
  echo "Processes left running by the bench:" >&2
  pgrep -af 'crm-bench-[0-9a-f]{10}' >&2
  if [ "$status" -eq 0 ]; then status=1; fi
fi
exit "$status"

#!/usr/bin/env bash
# One command for the customer- and loyalty-service benchmark (also `./crm bench`):
#   builds bench/Crm.Bench in Release, starts Postgres/Redis/RabbitMQ (durable) in a temp folder and the
#   customer service in-process (the loyalty service too, for the last two phases), measures the ceilings
#   (pgbench -S, pgbench TPC-B, a bare gRPC echo) and GetCustomer / RecordOrder / event lag / points earned end
#   to end (RecordOrder → loyalty ledger) / Redeem in the same run, writes bench/RESULTS.md and
#   bench/out/bench-*.json, and stops everything it started. About 3 minutes on 2 cores after the build.
# Extra arguments go to the bench, e.g. `bench/run.sh --clients 32 --connections 2` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

dotnet build bench/Crm.Bench/Crm.Bench.csproj -c Release --verbosity quiet -nologo
status=0
dotnet bench/Crm.Bench/bin/Release/net10.0/Crm.Bench.dll --results bench/RESULTS.md --out bench/out "$@" || status=$?

# Everything the bench started lives under /tmp/crm-bench-*: nothing of it may outlive the run.
if pgrep -af 'crm-bench-[0-9a-f]{10}' >/dev/null 2>&1; then
  echo "Processes left running by the bench:" >&2
  pgrep -af 'crm-bench-[0-9a-f]{10}' >&2
  if [ "$status" -eq 0 ]; then status=1; fi
fi
exit "$status"

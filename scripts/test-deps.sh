#!/usr/bin/env bash
# What the tests need beyond Python packages: Debian's chromium for the browser tests, and
# PostgreSQL and Redis reachable. Fails loudly when a service is missing: tests never skip.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
  fi
fi

PG_URL="${ORDERCAST_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
REDIS_URL="${ORDERCAST_TEST_REDIS:-redis://127.0.0.1:6379/0}"
.venv/bin/python - "$PG_URL" "$REDIS_URL" <<'PY'
import asyncio, sys
import asyncpg, redis.asyncio as redis

async def main(pg: str, rd: str) -> None:
    problems = []
    try:
        conn = await asyncpg.connect(pg.replace("postgres://", "postgresql://", 1), timeout=5)
        await conn.close()
    except Exception as exc:
        problems.append(f"PostgreSQL at {pg} is not reachable ({exc}); start it or set ORDERCAST_TEST_POSTGRES")
    try:
        client = redis.from_url(rd, socket_timeout=5)
        await client.ping()
        await client.aclose()
    except Exception as exc:
        problems.append(f"Redis at {rd} is not reachable ({exc}); start it or set ORDERCAST_TEST_REDIS")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)

asyncio.run(main(sys.argv[1], sys.argv[2]))
PY

#!/usr/bin/env bash
# Make PostgreSQL available to the test suite when it is missing and we can install it.
# The tests use ETL_DOCTOR_TEST_POSTGRES_URL when set; otherwise they start a throwaway server with
# initdb/pg_ctl from Debian's `postgresql` package. This script only installs that package, never fails:
# without PostgreSQL the PostgreSQL tests skip with a reason (or fail under ETL_DOCTOR_REQUIRE_POSTGRES=1).
set -u

if [ -n "${ETL_DOCTOR_TEST_POSTGRES_URL:-}" ]; then
  exit 0
fi
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: PostgreSQL not found and apt-get is unavailable; PostgreSQL tests will be skipped." >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "note: PostgreSQL not found; install it with 'sudo apt-get install postgresql' to run its tests." >&2
  exit 0
fi
echo "installing PostgreSQL from Debian's packages for the test suite..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
  echo "note: apt-get install postgresql failed; PostgreSQL tests will be skipped." >&2
fi
exit 0

#!/bin/sh
# One-shot schema job: create and migrate Temporal's two PostgreSQL databases (safe to run again).
set -eu
for database in temporal temporal_visibility; do
  schema=temporal
  [ "$database" = temporal_visibility ] && schema=visibility
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p 5432 --db "$database" create || true
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p 5432 --db "$database" setup-schema -v 0.0
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p 5432 --db "$database" \
    update-schema -d "/etc/temporal/schema/postgresql/v12/$schema/versioned"
done

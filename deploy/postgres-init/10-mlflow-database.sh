#!/bin/sh
# Run once by the postgres image on an empty data volume: MLflow's backend store gets a database
# of its own beside Dagster's ($POSTGRES_DB), owned by the same user.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "create database \"$MLFLOW_PG_DB\" owner \"$POSTGRES_USER\""

#!/bin/bash
# Run once by the influxdb:2 image at its first start (/docker-entrypoint-initdb.d, after setup).
# Grafana's dashboards query InfluxQL on database `estate` (dashboards/provisioning/datasources):
# InfluxDB 2 serves InfluxQL through a DBRP mapping from that database to the bucket.
set -euo pipefail
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db estate --rp autogen --default

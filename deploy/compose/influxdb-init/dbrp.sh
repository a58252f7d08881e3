#!/bin/sh
# Runs once, after InfluxDB's first-start setup: the hub reads with InfluxQL over
# /query, which InfluxDB 2 answers for a bucket through a DBRP mapping.
set -e
influx v1 dbrp create --db ruuhka --rp autogen --bucket-id "${DOCKER_INFLUXDB_BUCKET_ID}" --default

#!/usr/bin/env bash
# Copies the Delta Lake jars into $1 (default .cache/jars) from Maven Central via Maven, once.
# Spark then loads them from there with spark.jars: no Ivy resolution, no network at run time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:-$here/../.cache/jars}"
mkdir -p "$dest" && dest="$(cd "$dest" && pwd)"  # absolute: Maven resolves paths from the pom's folder
if compgen -G "$dest/delta-spark_2.13-*.jar" >/dev/null && compgen -G "$dest/delta-storage-*.jar" >/dev/null; then
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch_delta_jars: Maven (mvn) is needed once to fetch the Delta jars; install it (apt-get install maven)" >&2; exit 1; }
mvn -q -B -Dstyle.color=never -f "$here/delta-jars-pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$dest" -DincludeArtifactIds=delta-spark_2.13,delta-storage 2>&1 \
  | sed 's/\x1b\[[0-9;]*m//g'  # Maven 3.8 prints colour codes even in batch mode
ls "$dest"/delta-*.jar

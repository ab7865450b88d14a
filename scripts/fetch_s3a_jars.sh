#!/usr/bin/env bash
# Copies Hadoop's S3A connector (hadoop-aws + the AWS SDK v2 modules it loads) into $1/s3a and the
# s3proxy server jar into $1 (default .cache/jars) from Maven Central via Maven, once. Spark adds
# $1/s3a/*.jar to its classpath (jobs/spark_session.py); scripts/s3proxy.sh runs the server jar.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:-$here/../.cache/jars}"
mkdir -p "$dest/s3a" && dest="$(cd "$dest" && pwd)"  # absolute: Maven resolves paths from the pom's folder
if compgen -G "$dest/s3a/hadoop-aws-*.jar" >/dev/null && compgen -G "$dest/s3a/s3-transfer-manager-*.jar" >/dev/null \
  && compgen -G "$dest/s3proxy-*-jar-with-dependencies.jar" >/dev/null; then
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch_s3a_jars: Maven (mvn) is needed once to fetch the S3A jars; install it (apt-get install maven)" >&2; exit 1; }
mvn_copy() {  # $1: output folder, $2: group ids to copy
  mvn -q -B -Dstyle.color=never -f "$here/s3a-jars-pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$1" -DincludeGroupIds="$2" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
  # Maven 3.8 prints colour codes even in batch mode
}
# Only the SDK and its own small dependencies; netty, httpclient, codec and SLF4J come with pyspark.
mvn_copy "$dest/s3a" org.apache.hadoop,software.amazon.awssdk,software.amazon.eventstream,org.reactivestreams
mvn_copy "$dest" org.gaul
ls "$dest"/s3a/hadoop-aws-*.jar "$dest"/s3proxy-*.jar

#!/usr/bin/env bash
# A real S3 API server on loopback for tests and the cluster demo: s3proxy with its filesystem
# backend (one folder per bucket under STATE_DIR/data). Keys come from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY and go into a mode-600 properties file, never onto a command line.
#
#   scripts/s3proxy.sh start STATE_DIR PORT [BUCKET...]   # waits until it answers HTTP
#   scripts/s3proxy.sh stop STATE_DIR                     # stops the pid it started
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
jar="$(compgen -G "${RLB_JARS_DIR:-$here/../.cache/jars}/s3proxy-*-jar-with-dependencies.jar" | head -n1 || true)"
cmd="${1:?usage: s3proxy.sh start STATE_DIR PORT [BUCKET...] | stop STATE_DIR}"
state="${2:?usage: s3proxy.sh $cmd STATE_DIR ...}"
pidfile="$state/s3proxy.pid"

case "$cmd" in
start)
  port="${3:?usage: s3proxy.sh start STATE_DIR PORT [BUCKET...]}"
  shift 3
  [[ -n "$jar" ]] || { echo "s3proxy.sh: no s3proxy jar; run scripts/fetch_s3a_jars.sh (make s3a-jars) once" >&2; exit 1; }
  : "${AWS_ACCESS_KEY_ID:?s3proxy.sh: export AWS_ACCESS_KEY_ID (the key the server will accept)}"
  : "${AWS_SECRET_ACCESS_KEY:?s3proxy.sh: export AWS_SECRET_ACCESS_KEY (the secret the server will accept)}"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "s3proxy.sh: already running (pid $(cat "$pidfile")); stop it first: s3proxy.sh stop $state" >&2; exit 1
  fi
  mkdir -p "$state/data"
  for bucket in "$@"; do mkdir -p "$state/data/$bucket"; done
  (umask 077; cat >"$state/s3proxy.conf" <<CONF
s3proxy.endpoint=http://127.0.0.1:$port
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$AWS_ACCESS_KEY_ID
s3proxy.credential=$AWS_SECRET_ACCESS_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$(cd "$state/data" && pwd)
CONF
  )
  nohup java -Xmx512m -jar "$jar" --properties "$state/s3proxy.conf" >"$state/s3proxy.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do  # health wait: any HTTP answer (403 to an anonymous request) means up
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
      echo "s3proxy up at http://127.0.0.1:$port (pid $(cat "$pidfile"), data in $state/data)"; exit 0
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "s3proxy.sh: server exited; see $state/s3proxy.log" >&2; tail -5 "$state/s3proxy.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "s3proxy.sh: no answer on 127.0.0.1:$port after 60 s; see $state/s3proxy.log" >&2
  kill "$(cat "$pidfile")" 2>/dev/null || true; exit 1
  ;;
stop)
  [[ -f "$pidfile" ]] || exit 0
  pid="$(cat "$pidfile")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  ;;
*) echo "s3proxy.sh: unknown command $cmd (start or stop)" >&2; exit 2 ;;
esac

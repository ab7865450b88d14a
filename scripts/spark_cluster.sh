#!/usr/bin/env bash
# A Spark standalone cluster on loopback: one master and two workers as separate JVMs, started
# with pyspark's own bin/spark-class (the pip wheel has no sbin/ scripts), and stopped by the pids
# this script recorded. Workers inherit this shell's environment, so export the AWS variables
# (storage/object_store.py) before `start` for an s3a:// warehouse.
#
#   scripts/spark_cluster.sh start STATE_DIR [MASTER_PORT]   # prints spark://127.0.0.1:PORT
#   scripts/spark_cluster.sh stop STATE_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${RLB_PROJECT_PYTHON:-$here/../.venv/bin/python}"
cmd="${1:?usage: spark_cluster.sh start STATE_DIR [MASTER_PORT] | stop STATE_DIR}"
state="${2:?usage: spark_cluster.sh $cmd STATE_DIR}"
workers="${RLB_CLUSTER_WORKERS:-2}"

stop_pid() {  # $1: pid file
  [[ -f "$1" ]] || return 0
  local pid; pid="$(cat "$1")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

case "$cmd" in
start)
  port="${3:-7077}"
  spark_home="$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
  export SPARK_HOME="$spark_home" PYSPARK_PYTHON="$python" PYSPARK_DRIVER_PYTHON="$python"
  export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$state/logs" SPARK_WORKER_DIR="$state/work"
  mkdir -p "$state/logs" "$state/work"
  if [[ -f "$state/master.pid" ]] && kill -0 "$(cat "$state/master.pid")" 2>/dev/null; then
    echo "spark_cluster.sh: already running (master pid $(cat "$state/master.pid")); stop it first" >&2; exit 1
  fi
  nohup "$spark_home/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 \
    --port "$port" --webui-port 0 >"$state/logs/master.out" 2>&1 &
  echo $! >"$state/master.pid"
  for _ in $(seq 1 120); do
    grep -q "I have been elected leader" "$state/logs/master.out" 2>/dev/null && break
    kill -0 "$(cat "$state/master.pid")" 2>/dev/null || { echo "spark_cluster.sh: master exited; see $state/logs/master.out" >&2; exit 1; }
    sleep 0.5
  done
  for i in $(seq 1 "$workers"); do
    nohup "$spark_home/bin/spark-class" org.apache.spark.deploy.worker.Worker "spark://127.0.0.1:$port" \
      --host 127.0.0.1 --cores 1 --memory "${RLB_WORKER_MEMORY:-2g}" --webui-port 0 \
      --work-dir "$state/work/$i" >"$state/logs/worker-$i.out" 2>&1 &
    echo $! >"$state/worker-$i.pid"
  done
  for _ in $(seq 1 120); do  # every worker registered with the master
    [[ "$(grep -c "Registering worker" "$state/logs/master.out" || true)" -ge "$workers" ]] && {
      echo "spark://127.0.0.1:$port"; exit 0; }
    sleep 0.5
  done
  echo "spark_cluster.sh: workers did not register within 60 s; see $state/logs" >&2
  "$0" stop "$state"; exit 1
  ;;
stop)
  for f in "$state"/worker-*.pid; do [[ -e "$f" ]] && stop_pid "$f"; done
  stop_pid "$state/master.pid"
  ;;
*) echo "spark_cluster.sh: unknown command $cmd (start or stop)" >&2; exit 2 ;;
esac

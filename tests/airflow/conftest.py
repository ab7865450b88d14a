"""Airflow settings for the DAG tests, set before Airflow is imported: the DAGs folder is the
project's (dag.test() syncs the DAG from it into the metadata DB), no example DAGs."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".cache" / "airflow"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "airflow_dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

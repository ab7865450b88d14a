"""The Airflow environment is separate from the project's and has what the DAGs need."""

from __future__ import annotations

import os
import subprocess


def test_airflow_and_spark_provider_import() -> None:
    import airflow
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    assert airflow.__version__.startswith("3.3."), airflow.__version__
    assert SparkSubmitOperator.__name__ == "SparkSubmitOperator"


def test_project_pyspark_is_not_the_airflow_client() -> None:
    """The provider's pyspark-client must not leak into the project's environment."""
    project_python = os.environ["RLB_PROJECT_PYTHON"]
    out = subprocess.run(
        [project_python, "-c", "import pyspark, delta; print(pyspark.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "4.0.1"

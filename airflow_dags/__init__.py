"""Airflow DAG definitions only; no business logic."""

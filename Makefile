# The README's two commands: `make demo` (the main job end to end on the embedded default) and
# `make test` (ruff, mypy, pytest, Airflow DAG tests). Both set up what they need on a fresh
# machine and skip what is already there: environments are rebuilt only when their
# requirements change (stamp files), the Delta jars are fetched once into .cache/jars.

PYTHON ?= python3
VENV := .venv
AIRFLOW_VENV := .venv-airflow
JARS_DIR := .cache/jars
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --progress-bar off
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)

.PHONY: demo demo-cluster test test-all setup setup-airflow s3a-jars py-files lint typecheck pytest airflow-test clean

SCALE ?= default

demo: setup
	$(PY) -m demo --scale $(SCALE) $(DEMO_ARGS)

# The same demo on a local standalone cluster (a master and two worker JVMs, scripts/spark_cluster.sh)
# with the warehouse on s3proxy (s3a://), both started and stopped by demo/cluster.py; the same report.
demo-cluster: setup py-files
	$(PY) -m demo.cluster --scale $(SCALE) $(DEMO_ARGS)

# Two steps at a time: the two environments install side by side (pip is mostly one core and
# disk), then pytest runs beside the Airflow suite, whose spark-submits spend much of their time
# starting JVMs; lint and typecheck fill the gaps (typecheck last: it takes the core the shorter
# suite leaves). The steps share nothing on disk but the pip cache and the Delta jars (read
# only); each step's output is printed whole when it ends, and any failing step (lint and
# typecheck included) fails `make test`. TEST_JOBS=1 runs the steps one after another.
TEST_JOBS ?= 2

test:
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-all

test-all: setup setup-airflow lint pytest airflow-test typecheck

setup: $(VENV)/.installed $(JARS_DIR)/.fetched $(JARS_DIR)/.s3a-fetched

setup-airflow: $(AIRFLOW_VENV)/.installed

$(VENV)/.installed: requirements/base.txt requirements/nodeps.txt pyproject.toml
	@echo "== project environment ($(VENV))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -q --upgrade "pip==25.1.1" "setuptools==80.9.0" wheel
	$(PY) -m pip install $(PIP_FLAGS) -q -r requirements/base.txt
	@# petastorm without its dependency pins (setuptools<70 clashes with torch); its runtime
	@# dependencies are pinned in requirements/base.txt.
	$(PY) -m pip install $(PIP_FLAGS) -q --no-deps -r requirements/nodeps.txt
	$(PY) -m pip install $(PIP_FLAGS) -q --no-deps --no-build-isolation -e .
	@# The one known conflict is petastorm's setuptools pin; anything else fails the set-up.
	@$(PY) -m pip check | grep -v -e "^petastorm 0.13.1 has requirement setuptools<70" -e "^No broken requirements" \
	  | { if grep .; then echo "pip check: unexpected dependency conflicts above" >&2; exit 1; fi; }
	touch $@

$(JARS_DIR)/.fetched: scripts/delta-jars-pom.xml scripts/fetch_delta_jars.sh
	@echo "== Delta jars ($(JARS_DIR))"
	scripts/fetch_delta_jars.sh $(JARS_DIR)
	touch $@

# Hadoop's S3A connector (hadoop-aws + the AWS SDK v2 modules it loads, ~8 MB) for s3a://
# warehouses, and the s3proxy server that tests/test_object_store.py runs on loopback.
s3a-jars: $(JARS_DIR)/.s3a-fetched

$(JARS_DIR)/.s3a-fetched: scripts/s3a-jars-pom.xml scripts/fetch_s3a_jars.sh
	@echo "== S3A and s3proxy jars ($(JARS_DIR))"
	scripts/fetch_s3a_jars.sh $(JARS_DIR)
	touch $@

# The project's packages as one zip for spark-submit --py-files on a cluster (the DAG's
# spark_py_files param): executors import pipelines/, schemas/, storage/ and jobs/ from it.
PY_FILES := dist/rlb-pipeline.zip
py-files: $(PY_FILES)

PY_PACKAGES := schemas pipelines jobs storage loader trainer synthetic
$(PY_FILES): scripts/build_py_files.py $(shell find $(PY_PACKAGES) -name '*.py' 2>/dev/null)
	@$(PY) scripts/build_py_files.py $@ $(PY_PACKAGES)

$(AIRFLOW_VENV)/.installed: requirements/airflow.txt
	@echo "== Airflow environment ($(AIRFLOW_VENV))"
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install $(PIP_FLAGS) -q --upgrade "pip==25.1.1"
	$(AIRFLOW_VENV)/bin/python -m pip install $(PIP_FLAGS) -q -r requirements/airflow.txt
	touch $@

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest $(PYTEST_ARGS)

airflow-test: setup setup-airflow
	@if ls tests/airflow/test_*.py >/dev/null 2>&1; then \
	  RLB_PROJECT_PYTHON=$(CURDIR)/$(PY) AIRFLOW_HOME=$(CURDIR)/.cache/airflow \
	  $(AIRFLOW_VENV)/bin/python -m pytest -c tests/airflow/pytest.ini tests/airflow; \
	fi

clean:
	rm -rf warehouse reports .cache/spark-warehouse .cache/airflow .pytest_cache .mypy_cache .ruff_cache

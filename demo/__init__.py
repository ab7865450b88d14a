"""The end-to-end demo: every stage on generated logs, then an HTML report of the run.

`python -m demo` (or `make demo`) runs demo/app.py; demo/report.py renders a run's summary.json.
Nothing is imported here so that `import demo.report` does not pay for Spark and torch."""

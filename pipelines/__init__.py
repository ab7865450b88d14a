"""Spark transformations: pure DataFrame -> DataFrame functions, no I/O (docs/design.md §5)."""

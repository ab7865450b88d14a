"""Spark transformations: pure DataFrame -> DataFrame functions, no I/O (DESIGN.md §5)."""

"""`training_pins`: the table versions a training run still reads, so VACUUM keeps their files.

A run resolves one snapshot per table (loader/snapshot.py) and registers it here with
loader.register_pin; jobs/maintain_tables.py reads the unexpired pins before it vacuums and never
deletes a file one of them needs. Written without Spark (delta-rs, append only), one row a pin.
Times are epoch milliseconds, like every time column of the project."""

from __future__ import annotations

from .contract import LONG, STRING, Column, TableContract

TRAINING_PINS = TableContract(
    name="training_pins",
    version=1,
    columns=(
        Column("table_path", STRING, doc="absolute path or URI of the pinned table's folder"),
        Column("version", LONG, doc="the Delta version the run reads"),
        Column("run_id", STRING, doc="the training run (its output folder or id)"),
        Column("pinned_at_ms", LONG, doc="when the pin was registered, epoch ms"),
        Column("expires_at_ms", LONG, nullable=True, doc="after this the pin is ignored; null: never"),
    ),
    partition_by=(),
    keys=("table_path", "version", "run_id"),
)

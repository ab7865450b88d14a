"""`quarantine`: every input row that was not used, with why. Nothing disappears without a row here."""

from __future__ import annotations

from .contract import STRING, Column, TableContract
from .fields import DATE

QUARANTINE = TableContract(
    name="quarantine",
    version=1,
    columns=(
        Column("source_table", STRING, doc="input table the row came from"),
        Column("reason", STRING, doc="the validity rule the row broke, e.g. null_request_id, duplicate"),
        Column("row_json", STRING, doc="the rejected row, as JSON"),
        DATE,
    ),
    # source_table is a partition too, so each job replaces only its own rows for a date.
    partition_by=("source_table", "date"),
    keys=(),
)

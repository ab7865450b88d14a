"""The quality gate's Great Expectations suites, kept as code next to the contracts they check.

Each suite is a function returning a `gx.ExpectationSuite`; per-run thresholds (L_max, the most
targets, drift bands, the share of valid input rows) are `{"$PARAMETER": name}` values filled
from `GateThresholds.parameters()` when jobs/validate.py runs them. What GX cannot express on an
array column directly (every array's length, sorted hist_ts, no leakage, 0/1 label elements,
null elements) is computed per row into the `qc_*` columns named here by
pipelines/quality.with_row_checks, and tested with plain column expectations. Conservation and
drift are aggregates: pipelines/quality.py reduces them to one-row frames that the conservation
and drift suites test, so GX reports every rule of the gate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import great_expectations as gx
import great_expectations.expectations as gxe

from .constants import DEFAULT_L_MAX
from .contract import TableContract
from .fields import LABEL_COLUMN_NAMES, TASKS
from .impressions import IMPRESSIONS
from .request_samples import REQUEST_SAMPLES
from .user_actions import USER_ACTIONS
from .user_day_samples import USER_DAY_SAMPLES

# Per-row checks added by pipelines/quality.with_row_checks: name -> the rule it pins. Each column
# is a non-null boolean, True when the row keeps the rule.
ROW_CHECKS: dict[str, str] = {
    "qc_hist_lengths_match": "every hist_* array has hist_len elements",
    "qc_target_lengths_match": "every tgt_* and label_* array has num_targets elements",
    "qc_no_null_elements": "no array holds a null element",
    "qc_hist_ts_sorted": "hist_ts is sorted ascending (oldest first)",
    "qc_hist_before_request": "every hist_ts < request_ts (no leakage of the request's future)",
    "qc_labels_binary": "every label element is 0 or 1",
}

# Per-row checks of a user_day_samples row (pipelines/quality.with_user_day_row_checks), same form.
USER_DAY_ROW_CHECKS: dict[str, str] = {
    "qc_window_lengths_match": "every hist_* array has window_len elements",
    "qc_request_lengths_match": "every per-request array has num_requests elements, num_requests >= 1",
    "qc_target_lengths_match": "every tgt_*/label_* array has total_targets = sum(num_targets) elements",
    "qc_no_null_elements": "no array holds a null element",
    "qc_window_ts_sorted": "the window's hist_ts is sorted ascending (oldest first)",
    "qc_requests_sorted": "request_ts is non-decreasing (requests in (request_ts, request_id) order)",
    "qc_offsets_in_window": "0 <= hist_start <= hist_end <= window_len for every request",
    "qc_offsets_non_decreasing": "hist_start and hist_end are non-decreasing over the requests",
    "qc_window_all_read": "every window event is in some request's slice (first start 0, last end "
    "window_len, no gap): the window is never longer than the day's histories",
    "qc_slice_before_request": "the last event of each request's slice has event_ts < its request_ts",
    "qc_labels_binary": "every label element is 0 or 1",
}
# The longest request slice of a user_day_samples row (hist_end - hist_start), tested <= l_max.
MAX_SLICE_LEN = "max_slice_len"

# Columns of the one-row user_day_samples conservation frame (pipelines/quality.user_day_conservation_frame):
# its requests and targets against the published request_samples partition of the same date.
REQUESTS_PUBLISHED = "requests_published"
REQUESTS_WRITTEN = "requests_written"
DISTINCT_REQUESTS_WRITTEN = "distinct_requests_written"
TARGETS_PUBLISHED = "targets_published"
USER_DAY_TARGETS_WRITTEN = "targets_written"

# Columns of the one-row conservation frame (pipelines/quality.conservation_frame).
IMPRESSIONS_READ = "impressions_read"
TARGETS_WRITTEN = "targets_written"
IMPRESSIONS_QUARANTINED = "impressions_quarantined"
ACCOUNTED = "accounted"  # targets_written + impressions_quarantined

# Columns of the one-row drift frame (pipelines/quality.drift_frame): current / previous partition.
ROW_COUNT_RATIO = "row_count_ratio"
MEAN_HIST_LEN_RATIO = "mean_hist_len_ratio"
LABEL_RATE_DELTAS: tuple[str, ...] = tuple(f"label_rate_delta_{t}" for t in TASKS)

# Suite names, also the names of the GX batches and of the entries in the gate record.
SUITE_REQUEST_SAMPLES = "request_samples"
SUITE_IMPRESSIONS = "impressions"
SUITE_USER_ACTIONS = "user_actions"
SUITE_CONSERVATION = "request_samples_conservation"
SUITE_DRIFT = "request_samples_drift"
SUITE_USER_DAY_SAMPLES = "user_day_samples"
SUITE_USER_DAY_CONSERVATION = "user_day_samples_conservation"

_SPARK_TYPE_NAMES = {"string": "StringType", "long": "LongType", "int": "IntegerType", "array": "ArrayType"}


@dataclass(frozen=True)
class GateThresholds:
    """The gate's per-run thresholds; each field is a `$PARAMETER` of the suites."""

    l_max: int = field(default=DEFAULT_L_MAX, metadata={"help": "hist_len <= l_max (the build's --l-max)"})
    max_targets: int = field(default=50, metadata={"help": "1 <= num_targets <= max_targets"})
    min_row_count_ratio: float = field(
        default=0.5, metadata={"help": "rows(D) / rows(previous partition) >= this"}
    )
    max_row_count_ratio: float = field(
        default=2.0, metadata={"help": "rows(D) / rows(previous partition) <= this"}
    )
    min_mean_hist_len_ratio: float = field(
        default=0.5, metadata={"help": "mean hist_len(D) / mean hist_len(previous) >= this"}
    )
    max_mean_hist_len_ratio: float = field(
        default=2.0, metadata={"help": "mean hist_len(D) / mean hist_len(previous) <= this"}
    )
    max_label_rate_delta: float = field(
        default=0.1, metadata={"help": "|positive-label rate(D) - rate(previous)| <= this, per task"}
    )
    input_valid_share: float = field(
        default=0.99,
        metadata={
            "help": "inputs: share of rows with non-null ids and 0/1 labels >= this "
            "(bad rows are quarantined)"
        },
    )

    def __post_init__(self) -> None:
        problems = []
        if self.l_max < 0 or self.max_targets < 1:
            problems.append(f"l_max >= 0 and max_targets >= 1 (got {self.l_max}, {self.max_targets})")
        if not 0 <= self.min_row_count_ratio <= self.max_row_count_ratio:
            problems.append(
                f"0 <= min_row_count_ratio <= max_row_count_ratio "
                f"(got {self.min_row_count_ratio}, {self.max_row_count_ratio})"
            )
        if not 0 <= self.min_mean_hist_len_ratio <= self.max_mean_hist_len_ratio:
            problems.append(
                f"0 <= min_mean_hist_len_ratio <= max_mean_hist_len_ratio "
                f"(got {self.min_mean_hist_len_ratio}, {self.max_mean_hist_len_ratio})"
            )
        if self.max_label_rate_delta < 0 or not 0 <= self.input_valid_share <= 1:
            problems.append(
                f"max_label_rate_delta >= 0 and 0 <= input_valid_share <= 1 "
                f"(got {self.max_label_rate_delta}, {self.input_valid_share})"
            )
        if problems:
            raise ValueError(f"invalid gate thresholds: expected {'; '.join(problems)}")

    def parameters(self) -> dict[str, float | int]:
        """The suites' `$PARAMETER` values."""
        return asdict(self)


def _param(name: str) -> dict[str, str]:
    if name not in GateThresholds.__dataclass_fields__:
        raise KeyError(
            f"unknown gate parameter {name!r}; known: {sorted(GateThresholds.__dataclass_fields__)}"
        )
    return {"$PARAMETER": name}


def _schema_expectations(
    contract: TableContract, extra_columns: tuple[str, ...] = ()
) -> list[gxe.Expectation]:
    """Exact column list (contract order) and each column's Spark type (arrays: ArrayType; their
    element types are enforced by the contract on write, jobs/delta_io.conform)."""
    out: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*contract.column_names, *extra_columns])
    ]
    out += [
        gxe.ExpectColumnValuesToBeOfType(column=c.name, type_=_SPARK_TYPE_NAMES[c.dtype.name])
        for c in contract
    ]
    return out


def request_samples_suite() -> gx.ExpectationSuite:
    """One partition of request_samples(_staging), with the `qc_*` row-check columns added."""
    contract = REQUEST_SAMPLES
    expectations: list[gxe.Expectation] = [
        *_schema_expectations(contract, tuple(ROW_CHECKS)),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[
            gxe.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("request_id", "user_id", "request_ts", "date")
        ],
        gxe.ExpectColumnValuesToBeUnique(column="request_id"),  # validated one date at a time
        gxe.ExpectColumnValuesToBeBetween(column="num_targets", min_value=1, max_value=_param("max_targets")),
        gxe.ExpectColumnValuesToBeBetween(column="hist_len", min_value=0, max_value=_param("l_max")),
        # The qc_* columns are never null (a null array or element fails its rule).
        *[
            gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[True], notes=rule)
            for name, rule in ROW_CHECKS.items()
        ],
    ]
    return gx.ExpectationSuite(name=SUITE_REQUEST_SAMPLES, expectations=expectations)


def user_day_samples_suite() -> gx.ExpectationSuite:
    """One partition of user_day_samples(_staging), with the user-day `qc_*` columns and
    MAX_SLICE_LEN added (pipelines/quality.with_user_day_row_checks)."""
    expectations: list[gxe.Expectation] = [
        *_schema_expectations(USER_DAY_SAMPLES, (*USER_DAY_ROW_CHECKS, MAX_SLICE_LEN)),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("user_id", "date", "window_len")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "date"]),
        gxe.ExpectColumnValuesToBeBetween(column=MAX_SLICE_LEN, min_value=0, max_value=_param("l_max")),
        *[
            gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[True], notes=rule)
            for name, rule in USER_DAY_ROW_CHECKS.items()
        ],
    ]
    return gx.ExpectationSuite(name=SUITE_USER_DAY_SAMPLES, expectations=expectations)


def user_day_conservation_suite() -> gx.ExpectationSuite:
    """The one-row frame: requests (each once) and targets equal the published request_samples'."""
    return gx.ExpectationSuite(
        name=SUITE_USER_DAY_CONSERVATION,
        expectations=[
            gxe.ExpectTableRowCountToEqual(value=1),
            *[
                gxe.ExpectColumnPairValuesToBeEqual(column_A=published, column_B=written)
                for published, written in (
                    (REQUESTS_PUBLISHED, REQUESTS_WRITTEN),
                    (REQUESTS_PUBLISHED, DISTINCT_REQUESTS_WRITTEN),
                    (TARGETS_PUBLISHED, USER_DAY_TARGETS_WRITTEN),
                )
            ],
            gxe.ExpectColumnValuesToBeBetween(column=REQUESTS_PUBLISHED, min_value=1),
        ],
    )


def impressions_suite() -> gx.ExpectationSuite:
    """One input partition of impressions. Invalid rows are expected (they are quarantined), so
    ids and labels must be valid in at least `input_valid_share` of the rows: the gate stops a
    day whose producer broke, not one with the usual few bad rows."""
    mostly = _param("input_valid_share")
    return gx.ExpectationSuite(
        name=SUITE_IMPRESSIONS,
        expectations=[
            *_schema_expectations(IMPRESSIONS),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            *[
                gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly)
                for c in ("request_id", "user_id", "item_id", "request_ts")
            ],
            *[gxe.ExpectColumnValuesToBeInSet(column=t, value_set=[0, 1], mostly=mostly) for t in TASKS],
        ],
    )


def user_actions_suite() -> gx.ExpectationSuite:
    """One input partition of user_actions (same tolerance for quarantined rows as impressions)."""
    mostly = _param("input_valid_share")
    return gx.ExpectationSuite(
        name=SUITE_USER_ACTIONS,
        expectations=[
            *_schema_expectations(USER_ACTIONS),
            *[
                gxe.ExpectColumnValuesToNotBeNull(column=c, mostly=mostly)
                for c in ("user_id", "item_id", "event_ts")
            ],
        ],
    )


def conservation_suite() -> gx.ExpectationSuite:
    """The one-row conservation frame: impressions read = targets written + quarantined."""
    return gx.ExpectationSuite(
        name=SUITE_CONSERVATION,
        expectations=[
            gxe.ExpectTableRowCountToEqual(value=1),
            gxe.ExpectColumnPairValuesToBeEqual(column_A=IMPRESSIONS_READ, column_B=ACCOUNTED),
            gxe.ExpectColumnValuesToNotBeNull(column=ACCOUNTED),
        ],
    )


def drift_suite() -> gx.ExpectationSuite:
    """The one-row drift frame against the previous published partition."""
    return gx.ExpectationSuite(
        name=SUITE_DRIFT,
        expectations=[
            gxe.ExpectTableRowCountToEqual(value=1),
            gxe.ExpectColumnValuesToBeBetween(
                column=ROW_COUNT_RATIO,
                min_value=_param("min_row_count_ratio"),
                max_value=_param("max_row_count_ratio"),
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column=MEAN_HIST_LEN_RATIO,
                min_value=_param("min_mean_hist_len_ratio"),
                max_value=_param("max_mean_hist_len_ratio"),
            ),
            *[
                gxe.ExpectColumnValuesToBeBetween(
                    column=c, min_value=0, max_value=_param("max_label_rate_delta")
                )
                for c in LABEL_RATE_DELTAS
            ],
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (ROW_COUNT_RATIO, *LABEL_RATE_DELTAS)],
        ],
    )


__all__ = [
    "ACCOUNTED",
    "IMPRESSIONS_QUARANTINED",
    "IMPRESSIONS_READ",
    "LABEL_COLUMN_NAMES",
    "LABEL_RATE_DELTAS",
    "MEAN_HIST_LEN_RATIO",
    "ROW_CHECKS",
    "ROW_COUNT_RATIO",
    "TARGETS_WRITTEN",
    "USER_DAY_ROW_CHECKS",
    "GateThresholds",
    "conservation_suite",
    "drift_suite",
    "impressions_suite",
    "request_samples_suite",
    "user_actions_suite",
    "user_day_conservation_suite",
    "user_day_samples_suite",
]

"""Generated data, one module per level of the stack, so tests, benchmarks and the demo need no
real logs:

* `synthetic.logs`: Spark `impressions` and `user_actions` with a planted long-range signal
  (what jobs/generate_logs.py writes to the warehouse);
* `synthetic.tables`: contract-shaped `request_samples` Delta tables written with delta-rs, no
  Spark (for the loader);
* `synthetic.batches`: `RequestBatch`es built directly as tensors, no loader (for the model).

Import the module you need: this package imports none of them, so a user of one does not pay for
the pyspark, deltalake or torch imports of another.
"""

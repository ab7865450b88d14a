"""spark-submit entry points: parse arguments, read Delta, call pipelines/, write."""

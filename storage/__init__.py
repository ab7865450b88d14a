"""Where tables live: warehouse URIs (local paths, `s3://` / `s3a://`), the AWS settings and the
clients built from them (storage/object_store.py). A package of its own because jobs/ (Spark),
loader/ and trainer/ (no Spark) all need it, and the libraries must not import the jobs."""

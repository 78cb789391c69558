"""gunicorn configuration for bench/submit.py: count each web worker's statements (bench/sqlcount.py)."""


def post_worker_init(worker):
    import bench.sqlcount  # noqa: F401  installs the counters


def worker_exit(server, worker):
    from bench import sqlcount

    sqlcount.dump()

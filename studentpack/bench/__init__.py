"""Measuring served models: load tests (locust in a child process), reports, and the pipeline.

Nothing here imports locust: it patches the standard library with gevent when imported, so it
only runs in `studentpack.bench.locust_worker`, a child process of its own.
"""

"""brinery's benchmark: workloads, sides, timing harness and memory probes.

Run it as ``python bench/run.py`` (see bench/README.md). It is a package so
that the classes its workloads pickle have a stable importable name
(``bench.workloads.UserRecord``), which loads needs.
"""

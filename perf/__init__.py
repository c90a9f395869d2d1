"""Benchmarks: `python -m perf run SUITE`. Each suite compares against a baseline in the
same run, prints a table last and writes JSON under perf/results/."""

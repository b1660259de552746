"""Benchmarks of the event log and the process, each a module, run by bench/run.py."""

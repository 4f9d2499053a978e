"""Benchmarks: each module has main(argv) and prints a table, writes JSON and PNG."""

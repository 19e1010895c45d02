"""The throughput and latency benchmark (issue 5): `python -m bench.run`; see bench/RESULTS.md."""

"""Speed / quality benchmarks (not tests): run with ``python -m benchmarks.<name>``."""

"""Evaluators: callables `(generate, step) -> {metric: float}` that the trainers run in the loop."""

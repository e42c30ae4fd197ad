"""Evaluation: metrics, feature networks, baselines and the benchmark."""

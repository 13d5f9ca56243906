"""Evaluation beyond attacks: error and correction-rate metrics, Inception and digit scores."""

"""Reliability tests: crash, concurrency, corruption, hostile input, a stateful model."""

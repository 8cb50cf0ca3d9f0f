"""Benchmarks: the beat scheduler side by side (stock RedBeat vs the platform's), broker limits, cron expires."""

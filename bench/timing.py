"""Timing helpers shared by the benchmarks: warm, repeated calls; p50/p95 and the
ratio to a baseline measured in the same run."""

from __future__ import annotations

import statistics
import time


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(call, rounds: int, ok=lambda status: status < 400) -> list[float]:
    """Milliseconds of ``rounds`` calls of ``call`` (a request) after one warm-up;
    every response must pass ``ok``."""
    call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        assert ok(response.status_code), response.status_code
    return samples


def print_table(results: dict[str, list[float]], baseline: str, label: str = "request") -> None:
    """p50, p95 and p50 / baseline's p50 for each named list of samples."""
    base = statistics.median(results[baseline])
    width = max(len(name) for name in results) + 2
    print(f"{label:<{width}}{'p50 ms':>9}{'p95 ms':>9}{'p50/base':>10}")
    for name, samples in results.items():
        p50 = statistics.median(samples)
        print(f"{name:<{width}}{p50:>9.2f}{percentile(samples, 0.95):>9.2f}{p50 / base:>10.1f}")

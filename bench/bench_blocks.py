"""Trivial function blocks for the benchmarks: the work is ~free, so what is measured is
the engine (and the durable record) around it."""

from __future__ import annotations


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    return x + 1

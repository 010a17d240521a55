"""Functions used by quickstart.yaml."""

import asyncio


def make_numbers(count: int) -> list[int]:
    return list(range(1, count + 1))


async def square(x: int) -> int:
    await asyncio.sleep(0.05)
    return x * x


def total(values: list[dict[str, int]]) -> int:
    # one entry per branch: the output of the branch's last block, here `square`
    return sum(branch["result"] for branch in values)

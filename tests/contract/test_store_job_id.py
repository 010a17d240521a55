"""``set_job_id``: a queued run names the queue job that executes it, on both backends."""

from __future__ import annotations

import pytest
from tests.contract.conftest import Kit
from tests.contract.test_store_lease import W1, queued

from flowtrail.errors import RunNotFoundError


async def test_the_job_id_is_recorded_whatever_the_status(kit: Kit) -> None:
    run_id = await queued(kit)
    await kit.store.set_job_id(run_id, 41)
    assert (await kit.store.get_run(run_id)).job_id == 41
    claimed = await kit.store.claim(run_id, W1, 30)  # a worker may be faster than the write
    assert claimed is not None and claimed.job_id == 41
    await kit.store.set_job_id(run_id, 42)
    assert (await kit.store.get_run(run_id)).job_id == 42


async def test_an_unknown_run_is_not_found(kit: Kit) -> None:
    with pytest.raises(RunNotFoundError):
        await kit.store.set_job_id("no-such-run", 1)

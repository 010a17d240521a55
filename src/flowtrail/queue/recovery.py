"""Automatic recovery: a queued run that ends ``crashed`` is retried, when its workflow
asks for it (``recovery: {attempts: N, backoff_seconds: S}``).

Whoever finds a queued run crashed calls ``recover_crashed``: the worker whose run ended
crashed (handed back at shutdown), and the sweeper when it ends a run whose lease
expired. The retry is queued like any run, its job deferred by the backoff; the worker
that claims it reuses what completed and runs the rest. When the attempts are used up
the last run stays ``crashed``, with a note that says so. Each decision is a note on the
crashed run.
"""

from __future__ import annotations

import logging
import time

from flowtrail.errors import RunStateError, StoreError, WorkflowError
from flowtrail.queue.submit import defer_run, not_queued
from flowtrail.runner import Runner, stored_workflow
from flowtrail.settings import Settings
from flowtrail.status import RunStatus
from flowtrail.store import RunRecord, Store

log = logging.getLogger("flowtrail.queue")


async def recover_crashed(store: Store, run_id: str, settings: Settings) -> RunRecord | None:
    """Queue the next attempt of ``run_id`` if it is a crashed queued run whose workflow
    has ``recovery:`` and attempts left; return the new run's record, else ``None``.
    Safe to call more than once, from several processes: a run is retried once."""
    old = await store.get_run(run_id)
    if old.status is not RunStatus.CRASHED or old.queue_name is None or old.retried_by:
        return None
    try:
        workflow = await stored_workflow(store, old)
    except (RunStateError, WorkflowError) as exc:
        log.warning("run %s crashed and cannot be rebuilt to recover it: %s", run_id, exc)
        return None
    policy = workflow.definition.recovery
    if policy is None:
        return None
    if old.attempt >= policy.attempts:
        await store.add_note(
            run_id,
            {
                "kind": "recovery_exhausted",
                "attempt": old.attempt,
                "attempts": policy.attempts,
                "message": f"automatic recovery stopped: attempt {old.attempt} of "
                f"{policy.attempts} crashed; the run stays crashed",
            },
        )
        return None
    try:
        new = await Runner(settings, store).requeue(
            old,
            queue_name=old.queue_name,
            expires_in=policy.backoff_seconds + settings.queue_ttl_seconds,
        )
    except RunStateError:  # retried meanwhile by someone else
        return None
    try:
        job_id = await defer_run(store.url, new.id, old.queue_name, delay=policy.backoff_seconds)
        await store.set_job_id(new.id, job_id)
    except Exception as exc:
        # The retry row exists but nothing will run it: it ends failed, saying why.
        why = " ".join(str(exc).split()) or type(exc).__name__
        log.error("run %s: the retry %s could not be queued: %s", run_id, new.id, why)
        await not_queued(store, new.id, time.time(), why)
        raise StoreError(f"the retry {new.id} of run {run_id} could not be queued: {why}") from exc
    await store.add_note(
        run_id,
        {
            "kind": "recovery",
            "retried_by": new.id,
            "attempt": new.attempt,
            "attempts": policy.attempts,
            "after_seconds": policy.backoff_seconds,
        },
    )
    log.info("run %s crashed: attempt %d queued as run %s", run_id, new.attempt, new.id)
    return await store.get_run(new.id)

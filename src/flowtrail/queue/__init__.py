"""Queued runs on PostgreSQL, executed by workers: Procrastinate is the job queue.

    defaults.py  names and defaults, and the PostgreSQL check (no Procrastinate import)
    schema.py    Procrastinate's tables, applied once by ``flowtrail db upgrade``
    app.py       the Procrastinate app and its one task, ``flowtrail.execute_run``
    submit.py    enqueue: the ``queued`` row, then the job (``flowtrail run --queue``)
    execute.py   what the task does with one run: claim, rebuild, execute, finalize
    worker.py    ``flowtrail worker``: the Procrastinate worker, signals, the hand-back

A job carries only a run id. The run row is the truth: a job whose run is no longer
``queued`` does nothing, which is what makes a job delivered twice execute once.
"""

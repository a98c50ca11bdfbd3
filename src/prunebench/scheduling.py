"""One timer for Snakemake's scheduling loop, where Snakemake 9 keeps adding them.

Snakemake's scheduler sleeps until something releases its `_open_jobs` semaphore: a job that
finishes, or a timer that wakes it once the job rate limit's window (`--max-jobs-per-timespan`,
100/1s by default) has passed. Snakemake 9.27 starts that timer at the end of *every* pass of the
loop, and a timer's release starts a pass of its own, which starts the next timer. So every pass
that a job's end started begins one more chain of one-second timers that never stops: after n jobs
the loop runs about n times a second, each pass a thread and a job selection (snakemake/snakemake
#3804, #3744). The timers are not daemon threads, so the process also waits for the last one
before it exits.

On the embedded default (about 250 jobs on 2 cores) Snakemake's own process took 13.8 CPU-minutes
from the two cores over the run, more in its later part. `apply()` keeps at most one timer
pending, as a daemon thread; jobs that finish still wake the loop at once, and the rate limit's
wake-up still comes once per window. `bench/scheduler_overhead.py` measures the difference.
"""

from __future__ import annotations

import threading

_PENDING = "_prunebench_reevaluation_pending"
_LOCK = threading.Lock()


def schedule_reevaluation(scheduler, delay: float) -> None:
    """Wake `scheduler`'s loop after `delay` seconds, unless a wake-up is already on its way."""
    with _LOCK:
        if getattr(scheduler, _PENDING, False):
            return
        setattr(scheduler, _PENDING, True)

    def wake() -> None:
        with _LOCK:  # cleared before the release, so the pass it starts arms the next timer
            setattr(scheduler, _PENDING, False)
        scheduler._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()


def apply() -> bool:
    """Put `schedule_reevaluation` in place of Snakemake's own (spelled `_schedule_reevalutation`
    there). Returns False, changing nothing, where the installed Snakemake has no such method."""
    from snakemake.scheduling import job_scheduler

    if not hasattr(job_scheduler.JobScheduler, "_schedule_reevalutation"):
        return False
    job_scheduler.JobScheduler._schedule_reevalutation = schedule_reevaluation
    return True

"""The deadline watchdog: on time, never for a cancelled job, cheap per request.

Every sync response schedules a job at its deadline and cancels it once the body is read, so
the watchdog sees one job per request. These tests hold it to what the transport needs: a
due job runs (however many later or cancelled ones are queued), a cancelled one never does,
the queue stays bounded, and scheduling a job due after the ones already queued does not wake
the thread (which cost ~0.1 ms per invoke when it did). Upper bounds on time are generous
(seconds); "not before its time" is checked inside the action itself.
"""

from __future__ import annotations

import threading
import time

from campusllm.transport.watchdog import Watchdog


class _CountingCondition(threading.Condition):
    """A condition that counts how often the watchdog thread is woken."""

    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def _fired_at(when: float, fired: threading.Event, late: list[float]) -> object:
    def action() -> None:
        late.append(time.monotonic() - when)
        fired.set()

    return action


def test_an_earlier_job_runs_on_time_behind_later_and_cancelled_ones() -> None:
    dog = Watchdog()
    now = time.monotonic()
    for i in range(50):  # what a run of finished requests leaves: far deadlines, cancelled
        dog.at(now + 600 + i, lambda: None).cancel()
    live_later = threading.Event()
    dog.at(now + 600, live_later.set)
    fired, late = threading.Event(), []
    when = time.monotonic() + 0.05
    dog.at(when, _fired_at(when, fired, late))  # type: ignore[arg-type]
    assert fired.wait(5)
    assert late[0] >= 0  # never before its time
    assert not live_later.is_set()


def test_a_cancelled_job_never_runs_even_when_due() -> None:
    dog = Watchdog()
    ran = threading.Event()
    job = dog.at(time.monotonic() + 0.05, ran.set)
    job.cancel()
    marker = threading.Event()
    dog.at(time.monotonic() + 0.1, marker.set)  # the thread has passed the cancelled one
    assert marker.wait(5)
    assert not ran.is_set() and not job.done


def test_later_jobs_do_not_wake_the_thread() -> None:
    dog = Watchdog()
    cond = _CountingCondition()
    dog._cond = cond
    start = time.monotonic()
    for i in range(100):  # one request after another: each deadline after the last
        dog.at(start + 600 + i * 0.001, lambda: None).cancel()
        time.sleep(0.002)  # the request's I/O: the thread gets the GIL, as in a real call
    assert cond.notified == 1  # the first job only: the thread sleeps until it


def test_cancelled_jobs_do_not_pile_up() -> None:
    dog = Watchdog()
    start = time.monotonic()
    for i in range(10 * Watchdog.SWEEP_MIN):
        dog.at(start + 600 + i * 1e-6, lambda: None).cancel()
    assert len(dog._heap) <= 2 * Watchdog.SWEEP_MIN
    # jobs still queued after sweeps keep running on time
    fired, late = threading.Event(), []
    when = time.monotonic() + 0.05
    dog.at(when, _fired_at(when, fired, late))  # type: ignore[arg-type]
    assert fired.wait(5) and late[0] >= 0


def test_a_sweep_keeps_live_jobs() -> None:
    dog = Watchdog()
    start = time.monotonic()
    live = [dog.at(start + 900 + i, lambda: None) for i in range(5)]
    for i in range(2 * Watchdog.SWEEP_MIN):
        dog.at(start + 600 + i * 1e-6, lambda: None).cancel()
    queued = {id(entry[2]) for entry in dog._heap}
    assert all(id(job) in queued for job in live)
    for job in live:
        job.cancel()

"""How many torch threads a process uses: one setting, applied in one place.

Measured on a 2-core machine (`scripts/benchmark_threads.py`, results in
metrics/benchmark_threads.json and the README): with two torch threads
instead of one, training the shipped tagger is about 1.2x faster and tagging
about 1.2x faster when the process has the machine to itself, but when two
such processes run at once, two threads each make training about 2x slower
and tagging about 18x slower than one thread each, because the threads of one
process spin while waiting for cores the other holds. The recurrent layers
step through time with small matrix products, which gain little from more
threads. So the default is one torch thread per process, for training and
prediction alike (spaCy's own CPU models are single-threaded as well).

`SPACY_RNN_NUM_THREADS` changes it: a number of threads, or 0 to leave torch's
own setting (e.g. on an idle machine running one pipeline). The first
prediction or update of a spacy_rnn component applies it to the process
(torch's setting is per process). Worker processes of `nlp.pipe(n_process=N)`
always use one thread: N processes already use N cores.
"""
import multiprocessing
import os
from typing import Optional

import torch

ENV_VAR = "SPACY_RNN_NUM_THREADS"
DEFAULT_THREADS = 1

_applied_pid: Optional[int] = None


def configured_threads() -> int:
    """The thread count asked for: SPACY_RNN_NUM_THREADS, else the default (0 = torch's own)."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return DEFAULT_THREADS
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be a number of threads (0 = torch's default), got {value!r}") from None
    if threads < 0:
        raise ValueError(f"{ENV_VAR} must be >= 0, got {threads}")
    return threads


def apply_thread_policy() -> None:
    """Set this process's torch thread count by the policy above. Cheap after
    the first call in each process (a forked worker applies it again)."""
    global _applied_pid
    pid = os.getpid()
    if _applied_pid == pid:
        return
    _applied_pid = pid
    threads = 1 if multiprocessing.parent_process() is not None else configured_threads()
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)

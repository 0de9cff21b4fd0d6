"""Process-wide settings, each applied in one place: how many torch threads a
process uses, and (below) how glibc's malloc gives memory back: for training
the shared encoder (apply_heap_policy) and for predicting (keep_freed_memory).

Threads.

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
import ctypes
import multiprocessing
import os
import platform
from typing import Optional, Tuple

import torch

ENV_VAR = "SPACY_RNN_NUM_THREADS"
DEFAULT_THREADS = 1

_applied_pid: Optional[int] = None


def _env_count(name: str, default: int, meaning: str) -> int:
    """A non-negative integer from the environment variable `name`, or the default
    when it is unset or blank; `meaning` says what it counts in the error."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{name} must be {meaning}, got {value!r}") from None
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {count}")
    return count


def configured_threads() -> int:
    """The thread count asked for: SPACY_RNN_NUM_THREADS, else the default (0 = torch's own)."""
    return _env_count(ENV_VAR, DEFAULT_THREADS, "a number of threads (0 = torch's default)")


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


# The heap policy: a fixed mmap threshold for glibc's malloc.
#
# Training an encoder that spaCy's parser listens to (configs/parser_tagger_rnn.cfg)
# made `spacy train` grow by 5 to 11 MB a step until the machine ran out of
# memory here, although no Python, numpy or
# torch object outlives its step. glibc raises its mmap threshold each time a
# large block is freed (up to 32 MB on 64-bit), so later blocks of that size
# (measured: between 4 and 16 MiB; the encoder's word table, its gradient and
# the optimizer's temporaries are 11.5 MB) come from the heap, where they interleave with the parser's arrays and the
# heap is never given back. Setting the threshold (mallopt M_MMAP_THRESHOLD,
# the documented tunable behind MALLOC_MMAP_THRESHOLD_) turns the dynamic
# adjustment off: blocks above it are mapped and unmapped on their own. The
# shared-encoder config applies it through the spacy_rnn.fixed_mmap_threshold.v1
# callback (spacy_rnn/pipeline/heap.py); scripts/benchmark_memory.py measures
# memory and speed with and without it.

MMAP_ENV_VAR = "SPACY_RNN_MMAP_THRESHOLD"
DEFAULT_MMAP_THRESHOLD = 4 * 2**20  # bytes
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from <malloc.h>

_heap_policy_pid: Optional[int] = None


def configured_mmap_threshold(default: int = DEFAULT_MMAP_THRESHOLD) -> int:
    """The threshold asked for, in bytes: SPACY_RNN_MMAP_THRESHOLD, else `default` (0 = leave glibc's own)."""
    return _env_count(MMAP_ENV_VAR, default, "a number of bytes (0 = glibc's default)")


def _set_by_user(*tunables: str) -> bool:
    """Whether the environment sets one of glibc's malloc tunables (e.g.
    "mmap_threshold"): as MALLOC_MMAP_THRESHOLD_ or in GLIBC_TUNABLES."""
    given = os.environ.get("GLIBC_TUNABLES", "")
    return any(f"MALLOC_{name.upper()}_" in os.environ or name in given for name in tunables)


def _mallopt(*settings: Tuple[int, int]) -> bool:
    """glibc's mallopt(param, value) for each setting in turn; whether every one took (False
    without a mallopt to call)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and all(mallopt(param, value) for param, value in settings)


def apply_heap_policy(threshold: Optional[int] = None) -> bool:
    """Give glibc's malloc a fixed mmap threshold (configured_mmap_threshold)
    once per process. Does nothing (returns False) when
    the threshold is 0, off glibc, or when the user set glibc's own
    MALLOC_MMAP_THRESHOLD_ / GLIBC_TUNABLES mmap_threshold. Returns whether it
    was set now or before in this process. `threshold` (bytes) replaces the
    default; SPACY_RNN_MMAP_THRESHOLD still wins over both."""
    global _heap_policy_pid
    pid = os.getpid()
    if _heap_policy_pid == pid:
        return True
    threshold = configured_mmap_threshold(DEFAULT_MMAP_THRESHOLD if threshold is None else threshold)
    if threshold == 0 or _set_by_user("mmap_threshold") or platform.libc_ver()[0] != "glibc":
        return False
    if not _mallopt((_M_MMAP_THRESHOLD, threshold)):
        return False
    _heap_policy_pid = pid
    return True


# The prediction heap: the opposite trade, for a process that predicts.
#
# Predicting, torch allocates each batch's tensors (several MB each) and frees
# them before the next batch. With glibc's dynamic thresholds many of those
# blocks are unmapped (or trimmed off the heap's top) when freed and faulted
# back in, zeroed, for the next batch: up to 26,000 page faults per pass of
# the minGRU tagger over EWT test here, from one process to the next anywhere
# from none to that, with the order of allocations. Serving blocks of up to 32 MB (glibc's largest dynamic
# threshold) from the heap and keeping up to 1 GB of freed heap removes them
# (README, "int8 prediction since commit 9549075"). The process keeps its peak
# memory; training the shared encoder wants the opposite (apply_heap_policy).

KEEP_FREED_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1000000000"
# the same settings for mallopt: {"mmap_threshold": 33554432 (32 MiB), "trim_threshold": 1000000000} bytes
_KEEP_FREED = {name.rsplit(".", 1)[1]: int(value) for name, value in (item.split("=") for item in KEEP_FREED_TUNABLES.split(":"))}
_M_TRIM_THRESHOLD = -1  # mallopt's parameter number, from <malloc.h>


def keep_freed_memory() -> bool:
    """For a process that predicts: glibc's malloc serves blocks of up to 32 MiB
    from the heap and keeps up to 1 GB of freed heap, as starting the process
    with GLIBC_TUNABLES=KEEP_FREED_TUNABLES does (mallopt M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD, glibc's documented settings). Process-wide and not undone;
    call it once, before predicting. Does nothing (returns False) off glibc or
    when the user set glibc's mmap or trim threshold through the environment;
    returns whether both settings took."""
    if _set_by_user("mmap_threshold", "trim_threshold") or platform.libc_ver()[0] != "glibc":
        return False
    return _mallopt((_M_MMAP_THRESHOLD, _KEEP_FREED["mmap_threshold"]), (_M_TRIM_THRESHOLD, _KEEP_FREED["trim_threshold"]))

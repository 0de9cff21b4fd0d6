"""Process-level torch settings that the pipeline components apply.

The recurrent layers step through time with small matrix products, which
torch's intra-op threads do not speed up; several processes that each start
one thread per core only wait for each other (on a busy machine a 20,000-token
doc can then take minutes instead of a second). `nlp.pipe(n_process=N)`
already runs one process per core, so each of its workers uses one torch thread.
"""
import multiprocessing
import os
from typing import Optional

import torch

_checked_pid: Optional[int] = None


def limit_torch_threads_in_worker() -> None:
    """Use one torch thread if this is a child process (a worker of
    `nlp.pipe(n_process=N)`); the main process keeps its setting. Cheap after
    the first call in each process (a forked worker checks again)."""
    global _checked_pid
    pid = os.getpid()
    if _checked_pid == pid:
        return
    _checked_pid = pid
    if multiprocessing.parent_process() is not None and torch.get_num_threads() > 1:
        torch.set_num_threads(1)

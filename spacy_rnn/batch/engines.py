"""The engines of `spacy_rnn annotate`: run a spaCy pipeline over the shards
that are not done yet, locally or on Ray, writing each shard when it is
complete (spacy_rnn.batch.outputs).

- local, one process: one `nlp.pipe` over all remaining records, read
  shard by shard; a shard is written as soon as its last doc comes back
  (nlp.pipe keeps the order).
- local, `n_process` > 1: a pool of that many worker processes, each
  loading the pipeline once and reading, annotating and writing whole
  shards (as the Ray engine's actors do), so no doc crosses between
  processes. spaCy's own `nlp.pipe(n_process=...)` sends every doc back to
  the main process, pickled, and that alone kept a core busy: with two
  processes it ran slower than one here (README, "Batch annotation").
- ray: Ray Data. The dataset is the list of remaining shards;
  `map_batches` with a callable class (`ShardAnnotator`) runs on an actor
  pool of `workers` actors, each loading the pipeline once and annotating
  whole shards (read, nlp.pipe, write). On a cluster, OUTPUT_DIR, the inputs
  and the model must be on a file system every node sees, and spacy-rnn
  installed on every node.
"""
import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import spacy
from spacy.language import Language

from ..runtime import apply_thread_policy
from .inputs import Record, Reject, Shard, read_shard
from .outputs import output_fields, stamp, write_shard

ProgressFn = Callable[[int], None]


def annotate_shard(nlp: Language, shard: Shard, output_dir: Path, fmt: str, fields: List[str], max_length: int,
                   batch_size: int) -> Dict:
    """Read, annotate and write one shard in this process; returns its manifest."""
    records: List[Record] = []
    rejects: List[Reject] = []
    for item in read_shard(shard, nlp.vocab, max_length):
        (rejects if isinstance(item, Reject) else records).append(item)
    inputs = [record.doc if record.doc is not None else record.text for record in records]
    docs = [stamp(doc, record.source, record.meta) for doc, record in zip(nlp.pipe(inputs, batch_size=batch_size), records)]
    return write_shard(output_dir, shard, docs, rejects, fmt, fields)


def run_local(nlp: Language, todo: List[Shard], output_dir: Path, fmt: str, max_length: int, batch_size: int,
              progress: Optional[ProgressFn] = None) -> None:
    """The local engine in this process."""
    fields = output_fields(nlp)
    # shard index -> {"shard", "rejects", "expected", "docs"}; filled in plan order, so the dict's order is the plan's
    pending: Dict[int, Dict] = {}

    def flush(through: Optional[int]) -> None:
        """Write the pending shards up to and including `through` (all if None)."""
        for index in list(pending):
            if through is not None and index > through:
                break
            entry = pending.pop(index)
            write_shard(output_dir, entry["shard"], entry["docs"], entry["rejects"], fmt, fields)

    def records():
        for shard in todo:
            items = list(read_shard(shard, nlp.vocab, max_length))
            valid = [item for item in items if isinstance(item, Record)]
            pending[shard.index] = {
                "shard": shard, "rejects": [item for item in items if isinstance(item, Reject)],
                "expected": len(valid), "docs": [],
            }
            if progress:
                progress(len(items) - len(valid))
            for record in valid:
                yield (record.doc if record.doc is not None else record.text), (shard.index, record)

    for doc, (index, record) in nlp.pipe(records(), as_tuples=True, batch_size=batch_size):
        entry = pending[index]
        entry["docs"].append(stamp(doc, record.source, record.meta))
        if len(entry["docs"]) == entry["expected"]:
            flush(index)  # nlp.pipe keeps the order: every earlier shard is complete too
        if progress:
            progress(1)
    flush(None)


class ShardAnnotator:
    """Ray Data's callable class: loads the pipeline once per actor, then
    annotates each shard of each batch it is given."""

    def __init__(self, model: str, output_dir: str, fmt: str, max_length: int, batch_size: int) -> None:
        apply_thread_policy()
        self.nlp = spacy.load(model)
        self.fields = output_fields(self.nlp)
        self.output_dir = Path(output_dir)
        self.fmt, self.max_length, self.batch_size = fmt, max_length, batch_size

    def annotate(self, shard: Shard) -> Dict:
        """Read, annotate and write one shard; returns its manifest."""
        return annotate_shard(self.nlp, shard, self.output_dir, self.fmt, self.fields, self.max_length, self.batch_size)

    def __call__(self, batch: Dict) -> Dict[str, list]:
        out: Dict[str, list] = {"index": [], "inputs": [], "outputs": []}
        keys = ("index", "path", "kind", "start", "end", "offset")
        for values in zip(*(batch[key] for key in keys)):
            shard = Shard(**{key: (value.item() if hasattr(value, "item") else value) for key, value in zip(keys, values)})
            manifest = self.annotate(shard)
            out["index"].append(shard.index)
            out["inputs"].append(manifest["inputs"])
            out["outputs"].append(manifest["outputs"])
        return out


# This worker process's ShardAnnotator (run_processes' pool), made on its first shard.
_worker: Optional[ShardAnnotator] = None


def _annotate_in_worker(settings: Tuple[str, str, str, int, int], shard: Shard) -> Dict:
    """In a worker process: one shard, through the process's ShardAnnotator, made (the pipeline
    loaded) on its first shard, so that a pipeline that does not load fails that shard's future
    with the error spacy.load raised, as in one process."""
    global _worker
    if _worker is None:
        _worker = ShardAnnotator(*settings)
    return _worker.annotate(shard)


def run_processes(model: Union[str, Path], todo: List[Shard], output_dir: Path, fmt: str, max_length: int, n_process: int,
                  batch_size: int, progress: Optional[ProgressFn] = None) -> None:
    """The local engine with n_process worker processes: each shard is read,
    annotated and written whole by one worker; shards finish in any order
    (each is written with its own manifest, and the summary reads them in
    plan order). A failing shard stops the run: the shards written so far
    are kept for a resume."""
    if not todo:
        return
    settings = (str(model), str(output_dir), fmt, max_length, batch_size)
    with ProcessPoolExecutor(max_workers=min(n_process, len(todo))) as pool:
        futures = [pool.submit(_annotate_in_worker, settings, shard) for shard in todo]
        try:
            for future in as_completed(futures):
                manifest = future.result()
                if progress:
                    progress(manifest["inputs"])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def run_ray(model: str, todo: List[Shard], output_dir: Path, fmt: str, max_length: int, workers: int, batch_size: int,
            address: Optional[str], progress: Optional[ProgressFn] = None) -> None:
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "--engine ray needs Ray Data: pip install 'spacy-rnn[ray]' (or pip install 'ray[data]')"
        ) from None
    if not todo:
        return
    started_here = not ray.is_initialized()
    if started_here:
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "SPACY_RNN_NUM_THREADS": "1"}}
        quiet = {"runtime_env": env, "log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, **quiet)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        dataset = ray.data.from_items([shard.to_dict() for shard in todo], override_num_blocks=len(todo))
        annotated = dataset.map_batches(
            ShardAnnotator,
            fn_constructor_kwargs={
                "model": str(model), "output_dir": str(output_dir), "fmt": fmt, "max_length": max_length,
                "batch_size": batch_size,
            },
            batch_size=1,
            concurrency=workers,
            num_cpus=1,
        )
        for row in annotated.iter_rows():
            if progress:
                progress(int(row["inputs"]))
    finally:
        if started_here:
            ray.shutdown()

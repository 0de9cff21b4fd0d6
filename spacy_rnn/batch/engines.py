"""The engines of `spacy_rnn annotate`: run a spaCy pipeline over the shards
that are not done yet, locally or on Ray, writing each shard when it is
complete (spacy_rnn.batch.outputs).

- local, one process: the shards one after the other in this process, each
  read, annotated (nlp.pipe, batch by batch) and written whole.
- local, `n_process` > 1: a pool of that many worker processes, each
  loading the pipeline once and reading, annotating and writing whole
  shards (as the Ray engine's actors do), so no doc crosses between
  processes. spaCy's own `nlp.pipe(n_process=...)` sends every doc back to
  the main process, pickled, and that alone kept a core busy: with two
  processes it ran slower than one here (README, "Batch annotation").
  SIGTERM to the main process stops the workers as Ctrl-C does
  (`sigterm_as_interrupt`): they would otherwise outlive it.
- ray: Ray Data. The dataset is the list of remaining shards;
  `map_batches` with a callable class (`RayShardAnnotator`) runs on an actor
  pool of `workers` actors, each loading the pipeline once and annotating
  whole shards (read, nlp.pipe, write). On a cluster, OUTPUT_DIR, the inputs,
  the model and the --code file must be on a file system every node sees, and
  spacy-rnn installed on every node.

Every engine annotates a shard with `annotate_records`: a batch on which the
pipeline raises is annotated again one doc at a time, and a doc that still
makes it raise becomes a reject naming its record and the error, so one bad
record neither stops the run nor fails every rerun on the same shard.
"""
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from ..runtime import apply_thread_policy
from .inputs import Record, Reject, Shard, read_shard
from .outputs import output_fields, stamp, write_shard

ProgressFn = Callable[[int], None]
RAY_HINT = "--engine ray needs Ray Data: pip install 'spacy-rnn[ray]' (or pip install 'ray[data]')"


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the main process of a run with worker processes: raised
    there, so that the run stops as on Ctrl-C (the workers are terminated,
    the shards written so far are kept for a resume)."""


def import_ray():
    """The ray module with Ray Data, or a RuntimeError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RuntimeError(RAY_HINT) from None
    return ray


# The --code files imported in this process (a forked worker inherits the set and the registrations).
_imported_code: Set[str] = set()


def import_code(code: Optional[Union[str, Path]]) -> None:
    """Import the Python file `code` once in this process, as spaCy's `--code`
    does (spacy.util.import_file), so that the functions it registers (custom
    components, architectures) exist before a pipeline using them is loaded."""
    if code is None:
        return
    path = str(Path(code).resolve())
    if path in _imported_code:
        return
    spacy.util.import_file("python_code", path)
    _imported_code.add(path)


def load_pipeline(model: Union[str, Path], max_length: Optional[int] = None, code: Optional[Union[str, Path]] = None) -> Language:
    """spacy.load(model) after importing `code`, with nlp.max_length raised to
    max_length if that is larger: texts up to --max-length are annotated,
    not refused by the tokenizer (spaCy's E088)."""
    import_code(code)
    nlp = spacy.load(model)
    if max_length is not None and max_length > nlp.max_length:
        nlp.max_length = max_length
    return nlp


def _pipe_input(record: Record, keep: bool) -> Union[str, Doc]:
    """What nlp.pipe is given for the record: its text, or its Doc (.spacy
    input), copied if `keep`, so that the Doc is still unannotated for a retry
    when the batch fails part way through the pipeline."""
    if record.doc is None:
        return record.text
    return record.doc.copy() if keep else record.doc


def _reject(record: Record, err: Exception) -> Reject:
    path, line = record.source.rsplit(":", 1)  # Record.source is "file:line"
    return Reject(path, int(line), f"the pipeline raised {type(err).__name__}: {err}", stage="pipeline")


def annotate_records(nlp: Language, records: List[Record], batch_size: int,
                     progress: Optional[ProgressFn] = None) -> Tuple[List[Doc], List[Reject]]:
    """The records annotated with nlp.pipe in batches of batch_size: the docs
    (stamped with their source and meta, in input order) and a Reject for
    each record on which the pipeline raised. A batch that raises is run again
    one doc at a time, so that only the docs that fail on their own are
    rejected."""
    docs: List[Doc] = []
    rejects: List[Reject] = []
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        try:
            annotated = list(nlp.pipe([_pipe_input(record, keep=True) for record in batch], batch_size=batch_size))
        except Exception:
            annotated = []
            for record in batch:
                try:
                    annotated.append(list(nlp.pipe([_pipe_input(record, keep=False)], batch_size=1))[0])
                except Exception as err:
                    rejects.append(_reject(record, err))
                    annotated.append(None)
        docs += [stamp(doc, record.source, record.meta) for doc, record in zip(annotated, batch) if doc is not None]
        if progress:
            progress(len(batch))
    return docs, rejects


def annotate_shard(nlp: Language, shard: Shard, output_dir: Path, fmt: str, fields: List[str],
                   max_length: Optional[int], batch_size: int, progress: Optional[ProgressFn] = None) -> Dict:
    """Read, annotate and write one shard in this process; returns its manifest.
    max_length None: the pipeline's nlp.max_length."""
    records: List[Record] = []
    rejects: List[Reject] = []
    for item in read_shard(shard, nlp.vocab, nlp.max_length if max_length is None else max_length):
        (rejects if isinstance(item, Reject) else records).append(item)
    if progress:
        progress(len(rejects))
    docs, failed = annotate_records(nlp, records, batch_size, progress)
    if failed:  # one file per shard: its line numbers give the input order
        rejects = sorted(rejects + failed, key=lambda reject: reject.line)
    return write_shard(output_dir, shard, docs, rejects, fmt, fields)


def run_local(nlp: Language, todo: List[Shard], output_dir: Path, fmt: str, max_length: Optional[int], batch_size: int,
              progress: Optional[ProgressFn] = None) -> None:
    """The local engine in this process: the shards in plan order, each
    written when it is annotated. max_length None: nlp.max_length."""
    fields = output_fields(nlp)
    for shard in todo:
        annotate_shard(nlp, shard, output_dir, fmt, fields, max_length, batch_size, progress)


class ShardAnnotator:
    """One worker's pipeline, loaded once, and the shards it annotates (a
    worker process of run_processes, an actor of run_ray)."""

    def __init__(self, model: str, output_dir: str, fmt: str, max_length: Optional[int], batch_size: int,
                 code: Optional[str] = None) -> None:
        """max_length None: the pipeline's nlp.max_length."""
        apply_thread_policy()
        self.nlp = load_pipeline(model, max_length, code)
        self.fields = output_fields(self.nlp)
        self.output_dir = Path(output_dir)
        self.fmt, self.batch_size = fmt, batch_size
        self.max_length = max_length

    def annotate(self, shard: Shard) -> Dict:
        """Read, annotate and write one shard; returns its manifest."""
        return annotate_shard(self.nlp, shard, self.output_dir, self.fmt, self.fields, self.max_length, self.batch_size)


SHARD_KEYS = ("index", "path", "kind", "start", "end", "offset")


class RayShardAnnotator:
    """Ray Data's callable class: a ShardAnnotator per actor. An error (the
    pipeline does not load, a shard cannot be written) is returned in the
    shard's row, pickled, for the driver to raise as the process engine
    does, instead of killing the actor: Ray would retry it, then print
    hundreds of lines of tracebacks."""

    def __init__(self, **settings) -> None:
        try:
            self.annotator: Optional[ShardAnnotator] = ShardAnnotator(**settings)
            self.error: Optional[Exception] = None
        except Exception as err:
            self.annotator, self.error = None, err

    def __call__(self, batch: Dict) -> Dict[str, list]:
        out: Dict[str, list] = {"index": [], "inputs": [], "outputs": [], "error": []}
        for values in zip(*(batch[key] for key in SHARD_KEYS)):
            shard = Shard(**{key: (value.item() if hasattr(value, "item") else value) for key, value in zip(SHARD_KEYS, values)})
            manifest = {"inputs": 0, "outputs": 0}
            error = self.error
            if error is None:
                try:
                    manifest = self.annotator.annotate(shard)
                except Exception as err:
                    error = err
            out["index"].append(shard.index)
            out["inputs"].append(manifest["inputs"])
            out["outputs"].append(manifest["outputs"])
            out["error"].append(b"" if error is None else _pickle_error(error))
        return out


def _pickle_error(error: Exception) -> bytes:
    try:
        return pickle.dumps(error)
    except Exception:  # an exception with state pickle cannot hold: its type and message
        return pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))


def _unpickle_error(data: bytes) -> Exception:
    try:
        return pickle.loads(data)
    except Exception:  # its class cannot be imported here (the driver)
        return RuntimeError("a Ray worker failed with an error that cannot be read in this process")


# This worker process's ShardAnnotator (run_processes' pool), made on its first shard.
_worker: Optional[ShardAnnotator] = None


def _init_worker() -> None:
    """In a new worker process: SIGTERM ends it at once (a forked worker
    inherits the main process's handler, which raises Terminated)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _annotate_in_worker(settings: Tuple, shard: Shard) -> Dict:
    """In a worker process: one shard, through the process's ShardAnnotator, made (the pipeline
    loaded) on its first shard, so that a pipeline that does not load fails that shard's future
    with the error spacy.load raised, as in one process."""
    global _worker
    if _worker is None:
        _worker = ShardAnnotator(*settings)
    return _worker.annotate(shard)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM (kill PID, timeout, a batch scheduler)
    raises Terminated, a KeyboardInterrupt, in this process, so that it takes
    the path of Ctrl-C. By default SIGTERM ends the process at once and its
    worker processes keep running. Only the main thread can set a handler;
    elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:  # a forked worker before _init_worker ran: end as by default
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _shut_down(pool: ProcessPoolExecutor, workers: Callable[[], list], terminate: bool) -> None:
    """Shut the pool down: pending shards are cancelled; running ones finish,
    or with `terminate` (an interrupt) their workers are terminated: a shard
    half written has no manifest, so a resume writes it again (outputs are
    renamed into place). An interrupt while waiting for the running shards
    terminates them too."""
    try:
        if terminate:
            for process in workers():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        for process in workers():
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def run_processes(model: Union[str, Path], todo: List[Shard], output_dir: Path, fmt: str, max_length: Optional[int],
                  n_process: int, batch_size: int, progress: Optional[ProgressFn] = None,
                  code: Optional[Union[str, Path]] = None) -> None:
    """The local engine with n_process worker processes: each shard is read,
    annotated and written whole by one worker; shards finish in any order
    (each is written with its own manifest, and the summary reads them in
    plan order). A failing shard stops the run: the shards written so far
    are kept for a resume. Ctrl-C or SIGTERM terminates the workers."""
    if not todo:
        return
    settings = (str(model), str(output_dir), fmt, max_length, batch_size, None if code is None else str(code))
    with sigterm_as_interrupt():
        before = set(multiprocessing.active_children())

        def workers() -> list:
            """The pool's processes: the children of this process started since."""
            return [process for process in multiprocessing.active_children() if process not in before]

        pool = ProcessPoolExecutor(max_workers=min(n_process, len(todo)), initializer=_init_worker)
        interrupted = False
        try:
            futures = [pool.submit(_annotate_in_worker, settings, shard) for shard in todo]
            for future in as_completed(futures):
                manifest = future.result()
                if progress:
                    progress(manifest["inputs"])
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            _shut_down(pool, workers, terminate=interrupted)


def run_ray(model: str, todo: List[Shard], output_dir: Path, fmt: str, max_length: Optional[int], workers: int, batch_size: int,
            address: Optional[str], progress: Optional[ProgressFn] = None, code: Optional[Union[str, Path]] = None) -> None:
    ray = import_ray()
    if not todo:
        return
    started_here = not ray.is_initialized()
    # SIGTERM stops the run as it stops the local engines (Terminated: exit status 143, the shards
    # kept) but during ray.init, which installs Ray's own handler (exit status 15) as it starts: the
    # run's is installed again after it, inside the outer block, which puts back the process's own
    # handler at the end
    with sigterm_as_interrupt():
        if started_here:
            env = {"env_vars": {"OMP_NUM_THREADS": "1", "SPACY_RNN_NUM_THREADS": "1"}}
            quiet = {"runtime_env": env, "log_to_driver": False, "logging_level": logging.WARNING}
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, **quiet)
        with sigterm_as_interrupt():
            try:
                context = ray.data.DataContext.get_current()
                context.enable_progress_bars = False
                dataset = ray.data.from_items([shard.to_dict() for shard in todo], override_num_blocks=len(todo))
                annotated = dataset.map_batches(
                    RayShardAnnotator,
                    fn_constructor_kwargs={
                        "model": str(model), "output_dir": str(output_dir), "fmt": fmt, "max_length": max_length,
                        "batch_size": batch_size, "code": None if code is None else str(code),
                    },
                    batch_size=1,
                    # a fixed pool of `workers` actors (Ray 2.51 deprecates concurrency= for this)
                    compute=ray.data.ActorPoolStrategy(size=workers),
                    num_cpus=1,
                )
                for row in annotated.iter_rows():
                    if row["error"]:
                        raise _unpickle_error(row["error"])
                    if progress:
                        progress(int(row["inputs"]))
            finally:
                if started_here:
                    ray.shutdown()

"""`annotate`: the library function behind `python -m spacy_rnn annotate`.
Plans the shards, skips those already written (resume), runs an engine
over the rest, then writes rejects.jsonl and summary.json."""
import time
from pathlib import Path
from typing import Dict, Optional, Union

import spacy
from tqdm import tqdm

from ..runtime import apply_thread_policy
from .engines import run_local, run_processes, run_ray
from .inputs import find_inputs, plan_shards
from .outputs import FORMATS, done_shards, finish_run, run_description, start_run

ENGINES = ("local", "ray")


def annotate(
    model: Union[str, Path],
    input_spec: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    fmt: str = "spacy",
    engine: str = "local",
    n_process: int = 1,
    workers: int = 2,
    address: Optional[str] = None,
    shard_size: int = 10_000,
    max_length: Optional[int] = None,
    batch_size: int = 256,
    progress: Optional[bool] = None,
) -> Dict:
    """Annotate every record of the inputs with the pipeline `model` (a path
    or an installed package name); returns the summary (also written to
    OUTPUT_DIR/summary.json). Running it again with the same arguments
    resumes: shards already written are skipped. engine "local" runs in
    this process, or with n_process > 1 in that many worker processes that
    each annotate whole shards (engines.run_processes); "ray" on Ray Data
    actors. `progress` None shows a progress bar on a terminal only."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if n_process < 1 or workers < 1:
        raise ValueError("n_process and workers must be at least 1")
    output_dir = Path(output_dir)
    started = time.perf_counter()
    apply_thread_policy()
    in_this_process = engine == "local" and n_process == 1  # else workers load the pipeline
    nlp = spacy.load(model) if in_this_process else None
    if max_length is None:
        max_length = nlp.max_length if nlp is not None else spacy.blank("en").max_length
    paths = find_inputs(input_spec)
    resumed = start_run(output_dir, run_description(str(model), paths, fmt, max_length, shard_size))
    plan = plan_shards(paths, shard_size)
    done = done_shards(output_dir, plan)
    todo = [shard for shard in plan if shard.index not in done]
    total = sum(shard.end - shard.start for shard in todo)
    load_seconds = time.perf_counter() - started
    with tqdm(total=total, unit="doc", disable=(None if progress is None else not progress), desc="annotate") as bar:
        if in_this_process:
            run_local(nlp, todo, output_dir, fmt, max_length, batch_size, progress=bar.update)
        elif engine == "local":
            run_processes(model, todo, output_dir, fmt, max_length, n_process, batch_size, progress=bar.update)
        else:
            run_ray(str(model), todo, output_dir, fmt, max_length, workers, batch_size, address, progress=bar.update)
    seconds = time.perf_counter() - started
    return finish_run(output_dir, plan, {
        "model": str(model),
        "engine": engine,
        "n_process": n_process if engine == "local" else None,
        "workers": workers if engine == "ray" else None,
        "resumed": resumed,
        "shards_skipped": len(done),
        "records_this_run": total,
        "seconds_this_run": round(seconds, 2),
        "startup_seconds": round(load_seconds, 2),
    })

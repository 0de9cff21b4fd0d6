"""`annotate`: the library function behind `python -m spacy_rnn annotate`.
Checks the options, the engine, the --code file, the pipeline and the
inputs before it writes anything in OUTPUT_DIR, plans the shards, records
the run (run.json), skips the shards already written (resume), runs an
engine over the rest, then writes rejects.jsonl and summary.json."""
import time
from pathlib import Path
from typing import Dict, List, Optional, Union

import spacy
from spacy.errors import Errors
from tqdm import tqdm

from ..runtime import apply_thread_policy
from .engines import import_code, import_ray, load_pipeline, run_local, run_processes, run_ray
from .inputs import InputError, find_inputs, plan_shards
from .outputs import FORMATS, code_identity, done_shards, finish_run, model_identity, run_description, start_run

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
    code: Optional[Union[str, Path]] = None,
) -> Dict:
    """Annotate every record of the inputs with the pipeline `model` (a path
    or an installed package name); returns the summary (also written to
    OUTPUT_DIR/summary.json). Running it again with the same arguments
    resumes: shards already written are skipped. engine "local" runs in
    this process, or with n_process > 1 in that many worker processes that
    each annotate whole shards (engines.run_processes); "ray" on Ray Data
    actors. `progress` None shows a progress bar on a terminal only. `code`:
    a Python file to import first, in this process and in every worker, as
    spaCy's --code (custom components). A max_length above the pipeline's
    nlp.max_length raises it, so such texts are annotated."""
    check_options(fmt=fmt, engine=engine, n_process=n_process, workers=workers, shard_size=shard_size,
                  max_length=max_length, batch_size=batch_size)
    output_dir = Path(output_dir)
    started = time.perf_counter()
    apply_thread_policy()
    # Everything that can refuse the engine, the pipeline or the inputs runs before OUTPUT_DIR is
    # touched: run.json records the run, so a command refused after it would refuse its corrected form.
    if engine == "ray":
        import_ray()
    if code is not None:
        if not Path(code).is_file():
            raise OSError(f"{code}: no such file (--code: a Python file to import)")
        code = Path(code).resolve()  # the workers' working directory may differ (Ray)
        try:
            import_code(code)  # here too: a forked worker inherits what it registers
        except Exception as err:  # the user's file: its own error, in one line
            raise ValueError(f"--code {code}: importing it raised {type(err).__name__}: {err}") from None
    in_this_process = engine == "local" and n_process == 1  # else workers load the pipeline
    if in_this_process:
        nlp = load_pipeline(model, max_length)
    else:
        nlp = None
        check_model_found(model)
    paths = outside_output_dir(input_spec, find_inputs(input_spec), output_dir)
    plan = plan_shards(paths, shard_size)  # reads every file: a .spacy file that is not a DocBin fails here
    # max_length None (the pipeline's nlp.max_length) is recorded as such: worker processes read it when they load it
    description = run_description(model_identity(model, output_dir), paths, fmt, max_length, shard_size, code_identity(code))
    resumed = start_run(output_dir, description)
    done = done_shards(output_dir, plan)
    todo = [shard for shard in plan if shard.index not in done]
    total = sum(shard.end - shard.start for shard in todo)
    load_seconds = time.perf_counter() - started
    with tqdm(total=total, unit="doc", disable=(None if progress is None else not progress), desc="annotate") as bar:
        if in_this_process:
            run_local(nlp, todo, output_dir, fmt, max_length, batch_size, progress=bar.update)
        elif engine == "local":
            run_processes(model, todo, output_dir, fmt, max_length, n_process, batch_size, progress=bar.update, code=code)
        else:
            run_ray(str(model), todo, output_dir, fmt, max_length, workers, batch_size, address, progress=bar.update,
                    code=code)
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


def check_options(*, fmt: str, engine: str, n_process: int, workers: int, shard_size: int, max_length: Optional[int],
                  batch_size: int) -> None:
    """Raise a ValueError naming the first option of `annotate` out of range.
    One place, called first, so that a bad option is refused before OUTPUT_DIR
    is written (a batch_size of 0 would otherwise annotate nothing, and every
    rerun would find the shards still missing)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    counts = {"n_process": n_process, "workers": workers, "shard_size": shard_size, "batch_size": batch_size}
    if max_length is not None:  # None: the pipeline's nlp.max_length
        counts["max_length"] = max_length
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def outside_output_dir(input_spec: Union[str, Path], paths: List[Path], output_dir: Path) -> List[Path]:
    """The input files found in a directory or by a glob, without those under
    OUTPUT_DIR: with OUTPUT_DIR inside the input directory, a rerun would
    otherwise read the first run's own shards and rejects.jsonl as inputs,
    and refuse to resume it as another run. A file named as INPUT is kept."""
    if Path(input_spec).is_file():
        return paths
    out = output_dir.resolve()
    kept = [path for path in paths if out not in path.resolve().parents]
    if not kept:
        raise InputError(f"{input_spec}: holds no input files outside OUTPUT_DIR {output_dir}")
    return kept


def check_model_found(model: Union[str, Path]) -> None:
    """When worker processes load the pipeline (from str(model)), raise here,
    before OUTPUT_DIR is written, the error spacy.load would raise if it
    finds no package, "blank:" language or directory of that name, or a
    directory without the meta.json and config.cfg it reads first: a
    worker's failure would come after run.json records the model, and the
    command with the name corrected would be refused as another run."""
    name = str(model)
    if name.startswith("blank:") or spacy.util.is_package(name):
        return
    path = Path(name)
    if not path.exists():
        raise OSError(Errors.E050.format(name=name))
    # spaCy's own readers, in the order spacy.load reads them (E053 for a missing file)
    spacy.util.load_meta(path / "meta.json")
    spacy.util.load_config(path / "config.cfg")

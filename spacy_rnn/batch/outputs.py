"""The outputs of `spacy_rnn annotate`: one file per shard, written
atomically, then a manifest that marks the shard done; at the end
`rejects.jsonl` and `summary.json`.

OUTPUT_DIR/
  run.json                      what the run reads and writes (a resume must match it): the
                                model (name, version, a hash of each file), the options, the inputs
  shards/shard-000000.spacy     the shard's docs in input order (DocBin, user data kept), or
  shards/shard-000000.jsonl     one JSON object per doc (--format jsonl)
  shards/shard-000000.done.json the shard's counts and rejects: written last, so a
                                shard is done exactly when this file exists
  rejects.jsonl                 every reject: {"file", "line", "reason"}, in input order
  summary.json                  inputs = outputs + rejects, per run and per shard count
"""
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..files import atomic_output
from .inputs import Reject, Shard

# Where the annotate command keeps a doc's input location ("file:line") and JSONL meta fields.
SOURCE_KEY = "spacy_rnn.input"
META_KEY = "spacy_rnn.meta"
FORMATS = ("spacy", "jsonl")

# What a pipeline's components assign -> the JSON field that holds it.
_FIELDS = (
    ("token.tag", "tags"),
    ("token.pos", "pos"),
    ("token.morph", "morphs"),
    ("token.lemma", "lemmas"),
    ("token.dep", "deps"),
    ("token.head", "heads"),
    ("doc.ents", "entities"),
    ("token.is_sent_start", "sent_starts"),
    ("doc.cats", "cats"),
    ("token._.surprisal", "surprisal"),
    ("doc._.perplexity", "perplexity"),
)


def output_fields(nlp: Language) -> List[str]:
    """The JSON fields of the annotations the pipeline sets, in a fixed order.
    A component that declares one token attribute it writes (spacy_rnn's
    rnn_tagger: token_attr "tag" or "pos") counts for that one only."""
    assigned = set()
    for name, pipe in nlp.pipeline:
        assigns = set(nlp.get_pipe_meta(name).assigns)
        token_attr = getattr(pipe, "token_attr", None)
        if token_attr in ("tag", "pos"):
            assigns -= {"token.tag", "token.pos"} - {f"token.{token_attr}"}
        assigned |= assigns
    if "token.dep" in assigned:
        assigned |= {"token.head", "token.is_sent_start"}
    return [name for key, name in _FIELDS if key in assigned]


def doc_to_json(doc: Doc, fields: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"source": doc.user_data.get(SOURCE_KEY), "text": doc.text}
    meta = doc.user_data.get(META_KEY)
    if meta:
        out["meta"] = meta
    out["tokens"] = [token.text for token in doc]
    for name in fields:
        if name == "tags":
            out[name] = [token.tag_ for token in doc]
        elif name == "pos":
            out[name] = [token.pos_ for token in doc]
        elif name == "morphs":
            out[name] = [str(token.morph) for token in doc]
        elif name == "lemmas":
            out[name] = [token.lemma_ for token in doc]
        elif name == "deps":
            out[name] = [token.dep_ for token in doc]
        elif name == "heads":
            out[name] = [token.head.i for token in doc]
        elif name == "sent_starts":
            out[name] = [bool(token.is_sent_start) for token in doc]
        elif name == "entities":
            out[name] = [
                {"start": ent.start, "end": ent.end, "start_char": ent.start_char, "end_char": ent.end_char, "label": ent.label_}
                for ent in doc.ents
            ]
        elif name == "cats":
            out[name] = dict(doc.cats)
        elif name == "surprisal":
            out[name] = [token._.surprisal for token in doc]
        elif name == "perplexity":
            out[name] = doc._.perplexity
    return out


def shard_dir(output_dir: Path) -> Path:
    return output_dir / "shards"


def manifest_path(output_dir: Path, shard: Shard) -> Path:
    return shard_dir(output_dir) / f"{shard.name}.done.json"


def write_shard(output_dir: Path, shard: Shard, docs: List[Doc], rejects: List[Reject], fmt: str, fields: List[str]) -> Dict:
    """Write the shard's docs, then its manifest (both atomically). Returns the manifest."""
    folder = shard_dir(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / f"{shard.name}.{fmt}"
    with atomic_output(data_path) as tmp:
        if fmt == "spacy":
            db = DocBin(store_user_data=True)
            for doc in docs:
                db.add(doc)
            db.to_disk(tmp)
        else:
            with open(tmp, "w", encoding="utf8") as file:
                for doc in docs:
                    file.write(json.dumps(doc_to_json(doc, fields), ensure_ascii=False) + "\n")
    manifest = {
        "shard": shard.to_dict(),
        "file": data_path.name,
        "inputs": len(docs) + len(rejects),
        "outputs": len(docs),
        "rejects": [reject.to_dict() for reject in rejects],
    }
    with atomic_output(manifest_path(output_dir, shard)) as tmp:
        tmp.write_text(json.dumps(manifest), encoding="utf8")
    return manifest


def done_shards(output_dir: Path, plan: List[Shard]) -> Dict[int, Dict]:
    """The manifests of the plan's shards that are already written."""
    done = {}
    for shard in plan:
        path = manifest_path(output_dir, shard)
        if path.exists():
            done[shard.index] = json.loads(path.read_text(encoding="utf8"))
    return done


def model_identity(model: Union[str, Path], output_dir: Optional[Path] = None) -> Dict[str, Any]:
    """What identifies the pipeline MODEL in run.json: its meta.json name and
    version and the SHA-256 of every file of its directory (an installed
    package's directory), by path relative to it. A pipeline changed or
    replaced at the same path is thus a different model, and the same one
    named by a relative or an absolute path, or copied elsewhere, is the
    same. Hashing reads every file of the pipeline once, at startup."""
    name = str(model)
    if name.startswith("blank:"):
        return {"blank": name}
    # spacy.load's order: an installed package first, then a directory
    folder = spacy.util.get_package_path(name) if spacy.util.is_package(name) else Path(name)
    meta_path = folder / "meta.json"
    meta = spacy.util.load_meta(meta_path) if meta_path.exists() else {}
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not _inside(path, output_dir):
            files[path.relative_to(folder).as_posix()] = _sha256(path)
    return {"name": f"{meta.get('lang', '')}_{meta.get('name', '')}", "version": meta.get("version", ""), "files": files}


def _inside(path: Path, folder: Optional[Path]) -> bool:
    """Whether path is inside folder (OUTPUT_DIR inside MODEL: the run's own files are not the model's)."""
    return folder is not None and folder.resolve() in path.resolve().parents


def code_identity(code: Optional[Path]) -> Optional[Dict[str, str]]:
    """What identifies the --code file in run.json: its name and the SHA-256 of its content
    (another implementation of the components annotates differently)."""
    return None if code is None else {"name": Path(code).name, "sha256": _sha256(Path(code))}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_description(model: Dict[str, Any], inputs: Iterable[Path], fmt: str, max_length: Optional[int],
                    shard_size: int, code: Optional[Dict[str, str]] = None) -> Dict:
    """What decides a run's output; a resumed run must have the same. `model`
    is the pipeline's model_identity; max_length None: the pipeline's; `code`
    the --code file's code_identity (None: no --code)."""
    description = {
        "model": model,
        "format": fmt,
        "max_length": max_length,
        "shard_size": shard_size,
        "inputs": [{"path": str(p), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in inputs],
    }
    if code is not None:  # recorded only when given: runs without --code keep their run.json
        description["code"] = code
    return description


def _model_change(before: Any, after: Dict[str, Any]) -> str:
    """How the model of run.json (`before`) differs from this run's, in a few words."""
    parts = []
    if _model_name(before) != _model_name(after):
        parts.append(f"the model was {_model_name(before)}, now {_model_name(after)}")
    if isinstance(before, dict) and "files" in before and "files" in after:
        old, new = before["files"], after["files"]
        changed = sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            parts.append(f"model files that differ: {shown}")
    return "; ".join(parts)


def _model_name(model: Any) -> str:
    if isinstance(model, dict) and "blank" in model:
        return model["blank"]
    if isinstance(model, dict) and "name" in model:
        return f"{model['name']} {model['version']}"
    return str(model)  # a run.json that names the model by its path only


def start_run(output_dir: Path, description: Dict) -> bool:
    """Record the run in OUTPUT_DIR/run.json; returns True when resuming the same run.
    A different run in the same directory is refused, never mixed in."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "run.json"
    if path.exists():
        before = json.loads(path.read_text(encoding="utf8"))
        if before != description:
            changed = sorted(key for key in set(before) | set(description) if before.get(key) != description.get(key))
            detail = _model_change(before.get("model"), description["model"]) if "model" in changed else ""
            raise ValueError(
                f"{output_dir} holds the output of another run (different {', '.join(changed)}"
                f"{'; ' + detail if detail else ''}); use a new OUTPUT_DIR, or the same model, inputs and options "
                "to resume that run"
            )
        return True
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(description, indent=2), encoding="utf8")
    return False


def finish_run(output_dir: Path, plan: List[Shard], extra: Optional[Dict] = None) -> Dict:
    """Write rejects.jsonl and summary.json from the shard manifests; check
    that every shard is done and that inputs = outputs + rejects."""
    done = done_shards(output_dir, plan)
    missing = [shard.name for shard in plan if shard.index not in done]
    if missing:
        raise RuntimeError(f"{len(missing)} shard(s) not written, e.g. {missing[0]}; run the same command again to finish")
    n_inputs = n_outputs = n_rejects = n_pipeline = 0
    with atomic_output(output_dir / "rejects.jsonl") as tmp:
        with open(tmp, "w", encoding="utf8") as file:
            for shard in plan:
                manifest = done[shard.index]
                expected = shard.end - shard.start
                if manifest["inputs"] != expected or manifest["outputs"] + len(manifest["rejects"]) != expected:
                    raise RuntimeError(f"{shard.name}: its manifest counts do not add up to its {expected} records")
                n_inputs += manifest["inputs"]
                n_outputs += manifest["outputs"]
                n_rejects += len(manifest["rejects"])
                n_pipeline += sum(reject.get("stage") == "pipeline" for reject in manifest["rejects"])
                for reject in manifest["rejects"]:
                    file.write(json.dumps(reject, ensure_ascii=False) + "\n")
    summary = {"inputs": n_inputs, "outputs": n_outputs, "rejects": n_rejects, "pipeline_rejects": n_pipeline,
               "shards": len(plan), **(extra or {})}
    with atomic_output(output_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2), encoding="utf8")
    return summary


def shard_paths(output_dir: Path, plan: List[Shard], fmt: str) -> List[Path]:
    return [shard_dir(output_dir) / f"{shard.name}.{fmt}" for shard in plan]


def stamp(doc: Doc, source: str, meta: Dict) -> Doc:
    doc.user_data[SOURCE_KEY] = source
    if meta:
        doc.user_data[META_KEY] = meta
    return doc


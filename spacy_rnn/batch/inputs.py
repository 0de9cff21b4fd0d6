"""The inputs of `spacy_rnn annotate`: which files, how they are cut into
shards, and the records of a shard.

- Files: INPUT is a file, a directory (its .txt, .jsonl and .spacy files,
  recursively) or a glob; files are taken in sorted order. A file name that
  is not UTF-8 is refused: every output doc and reject names its file.
- Records: a .txt line is one text (a trailing "\\r" removed; an empty line is
  an empty text). A .jsonl line is a JSON object with a string `text`; its
  other fields are the record's `meta`, kept. A .spacy file (DocBin) holds
  one record per Doc, its user data kept.
- Rejects: a record that cannot be annotated is not dropped: it becomes a
  `Reject` naming the file, the line (for .spacy, the doc number) and the
  reason: invalid JSON, no string `text`, bytes that are not UTF-8, a text
  longer than max_length, or a value the outputs cannot hold (`_unwritable`):
  a lone surrogate (a JSON "\\ud800" escape; UTF-8 cannot encode it) in the
  text or a meta field, a meta integer beyond 64 bits or meta nested deeper
  than MAX_META_DEPTH (DocBin user data, msgpack, cannot hold them). Text
  files are decoded strictly, so a .txt line never holds a surrogate.
- Shards: each file's records, in order, cut every `shard_size` records.
  A shard knows the byte offset of its first line, so a worker reads only
  its own part of a text file. Shards are numbered in file order; the plan
  depends only on the files and shard_size, so a resumed run cuts the same
  shards.
"""
import glob
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

SUFFIXES = (".txt", ".jsonl", ".spacy")
BOM = b"\xef\xbb\xbf"
# A Python str holds a surrogate code point only when something made it, such as a JSON
# escape "\\ud800" (json.loads joins a valid pair into one character): UTF-8 cannot encode it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# DocBin user data is msgpack: integers of 64 bits at most, and at most 511 levels of
# nesting, the user_data dict and the meta dict included.
META_INT_RANGE = (-(2**63), 2**64 - 1)
MAX_META_DEPTH = 500


class InputError(ValueError):
    """INPUT names no readable input files."""


@dataclass(frozen=True)
class Shard:
    index: int  # position in the plan; names the output files
    path: str
    kind: str  # "txt", "jsonl" or "spacy"
    start: int  # first record (0-based line or doc number)
    end: int  # one past the last record
    offset: int = 0  # byte offset of line `start` (text files)

    @property
    def name(self) -> str:
        return f"shard-{self.index:06d}"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Record:
    source: str  # "file:line" (1-based line, or doc number from 1 for .spacy)
    text: Optional[str] = None
    doc: Optional[Doc] = None  # for .spacy inputs
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Reject:
    file: str
    line: int
    reason: str

    def to_dict(self) -> Dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


def find_inputs(spec: Union[str, Path]) -> List[Path]:
    """The input files of INPUT (a file, a directory or a glob), sorted."""
    path = Path(spec)
    if path.is_file():
        found = [path]
    elif path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    else:
        found = [Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file()]
        if not found:
            raise InputError(f"{spec}: no such file or directory, and no file matches it as a glob")
    unknown = [p for p in found if p.suffix not in SUFFIXES]
    if unknown:
        raise InputError(f"{unknown[0]}: an input file must end in one of {', '.join(SUFFIXES)}")
    if not found:
        raise InputError(f"{spec}: holds no {', '.join(SUFFIXES)} files")
    for path in found:
        if LONE_SURROGATE.search(str(path)):  # bytes that are not UTF-8, as os decodes them (surrogateescape)
            raise InputError(f"{_printable(str(path))}: the file name is not valid UTF-8, and every output doc "
                             "and reject names its file; rename the file")
    return sorted(found)


def plan_shards(paths: List[Path], shard_size: int) -> List[Shard]:
    """Cut every file's records into shards of at most shard_size records
    (at least 1: annotate checks its options before it plans)."""
    shards: List[Shard] = []
    for path in paths:
        kind = path.suffix[1:]
        if kind == "spacy":
            n_docs = len(_load_docbin(path))
            for start in range(0, n_docs, shard_size):
                shards.append(Shard(len(shards), str(path), kind, start, min(start + shard_size, n_docs)))
            continue
        offsets = []  # byte offset of every shard_size-th line
        n_lines = 0
        position = 0
        with path.open("rb") as file:
            for raw in file:
                if n_lines % shard_size == 0:
                    offsets.append(position)
                position += len(raw)
                n_lines += 1
        for i, offset in enumerate(offsets):
            start = i * shard_size
            shards.append(Shard(len(shards), str(path), kind, start, min(start + shard_size, n_lines), offset))
    return shards


def _load_docbin(path: Path) -> DocBin:
    try:
        return DocBin(store_user_data=True).from_disk(path)
    except Exception as err:
        raise InputError(f"{path}: not a readable .spacy file (DocBin): {type(err).__name__}: {err}") from None


def read_shard(shard: Shard, vocab: Vocab, max_length: int) -> Iterator[Union[Record, Reject]]:
    """The shard's records in input order, each a Record or a Reject."""
    if shard.kind == "spacy":
        docs = _load_docbin(Path(shard.path)).get_docs(vocab)
        for i, doc in enumerate(docs):
            if i < shard.start:
                continue
            if i >= shard.end:
                break
            if len(doc.text) > max_length:
                yield Reject(shard.path, i + 1, f"text of {len(doc.text):,} characters is over max_length {max_length:,}")
            else:
                yield Record(f"{shard.path}:{i + 1}", doc=doc)  # its user data travels with it
        return
    with open(shard.path, "rb") as file:
        file.seek(shard.offset)
        for line_no in range(shard.start + 1, shard.end + 1):
            raw = file.readline()
            yield _parse_line(shard, line_no, raw, max_length)


def _parse_line(shard: Shard, line_no: int, raw: bytes, max_length: int) -> Union[Record, Reject]:
    if line_no == 1 and raw.startswith(BOM):
        raw = raw[len(BOM):]
    raw = raw.rstrip(b"\n").rstrip(b"\r")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Reject(shard.path, line_no, f"bytes that are not UTF-8: {raw[err.start:err.start + 1]!r} at column {err.start + 1}")
    meta: Dict[str, Any] = {}
    if shard.kind == "jsonl":
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            return Reject(shard.path, line_no, f"invalid JSON: {err.msg} at column {err.colno}")
        except RecursionError:
            return Reject(shard.path, line_no, "JSON nested too deeply to read")
        except ValueError as err:  # valid JSON that Python will not read: a number of over 4,300 digits
            return Reject(shard.path, line_no, f"JSON that cannot be read: {str(err).split(':')[0]}")
        if not isinstance(value, dict):
            return Reject(shard.path, line_no, f"a JSON {type(value).__name__}, not an object with a 'text' field")
        if "text" not in value:
            return Reject(shard.path, line_no, "no 'text' field")
        if not isinstance(value["text"], str):
            return Reject(shard.path, line_no, f"'text' is not a string but {type(value['text']).__name__}")
        text = value.pop("text")
        meta = value
        problem = _lone_surrogate("text", text) or _unwritable(meta)
        if problem:
            return Reject(shard.path, line_no, problem)
    else:
        text = line
    if len(text) > max_length:
        return Reject(shard.path, line_no, f"text of {len(text):,} characters is over max_length {max_length:,}")
    return Record(f"{shard.path}:{line_no}", text=text, meta=meta)


def _lone_surrogate(name: str, text: str) -> Optional[str]:
    """Why the string `text` (named `name` in the reason) cannot be written as UTF-8, or None."""
    found = LONE_SURROGATE.search(text)
    if found is None:
        return None
    return f"{name} is not valid Unicode: lone surrogate U+{ord(found.group()):04X} at position {found.start()}"


def _unwritable(value: Any, field: str = "", depth: int = 1) -> Optional[str]:
    """Why a JSON record's meta (or the part of it at `field`, e.g. "source.site"
    or "ids[2]", `depth` containers deep) cannot be written to the outputs, or
    None. Checked when the record is read, so that such a record becomes a
    reject instead of failing the whole run when its shard is written."""
    if isinstance(value, str):
        return _lone_surrogate(f"field '{field}'", value)
    if isinstance(value, int) and not META_INT_RANGE[0] <= value <= META_INT_RANGE[1]:
        return f"field '{field}' is an integer beyond 64 bits, which DocBin user data cannot hold"
    if not isinstance(value, (dict, list)):
        return None
    if depth > MAX_META_DEPTH:
        return f"field '{field}' nests deeper than {MAX_META_DEPTH} levels, which DocBin user data cannot hold"
    if isinstance(value, list):
        items = [(f"{field}[{i}]", item) for i, item in enumerate(value)]
    else:
        items = []
        for key, item in value.items():
            name = f"{field}.{_printable(key)}" if field else _printable(key)
            problem = _lone_surrogate(f"field name '{name}'", key)
            if problem:
                return problem
            items.append((name, item))
    for name, item in items:
        problem = _unwritable(item, name, depth + 1)
        if problem:
            return problem
    return None


def _printable(text: str) -> str:
    """`text` with any surrogate written as a backslash escape, so that a reason or an error can name it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")

"""The inputs of `spacy_rnn annotate`: which files, how they are cut into
shards, and the records of a shard.

- Files: INPUT is a file, a directory (its .txt, .jsonl and .spacy files,
  recursively) or a glob; files are taken in sorted order. A file name that
  is not UTF-8 is refused: every output doc and reject names its file.
- Records: a .txt line is one text (a trailing "\\r" removed; an empty line is
  an empty text). A .jsonl line is a JSON object with a string `text`; its
  other fields are the record's `meta`, kept. A blank .jsonl line (empty, or
  only JSON whitespace: spaces, tabs, "\\r") is no record, as JSON Lines
  readers skip it; the other lines keep their numbers. A .spacy file (DocBin)
  holds one record per Doc, its user data kept.
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
  shards. A DocBin cannot be read in parts, so a process keeps the one it
  is reading and builds its docs in order with one `get_docs`: the shards
  of a file read in order (one process, or workers that take them in turn)
  build each doc at most once per process (`_DocBinCursor`).
"""
import glob
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

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
    start: int  # 0-based line (doc number) of the first record
    # start + the shard's record count: one past the last record, unless blank .jsonl lines
    # (no records) lie among the shard's lines
    end: int
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
    stage: str = "input"  # "input": the record could not be read; "pipeline": the pipeline raised on it

    def to_dict(self) -> Dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason, "stage": self.stage}


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
        starts = []  # (line number, byte offset) of every shard_size-th record
        n_records = 0
        position = 0
        with path.open("rb") as file:
            for line_index, raw in enumerate(file):
                if kind == "txt" or not _blank(line_index + 1, raw):
                    if n_records % shard_size == 0:
                        starts.append((line_index, position))
                    n_records += 1
                position += len(raw)
        for i, (start, offset) in enumerate(starts):
            size = min(shard_size, n_records - i * shard_size)
            shards.append(Shard(len(shards), str(path), kind, start, start + size, offset))
    return shards


def _blank(line_no: int, raw: bytes) -> bool:
    """Whether a .jsonl line (line_no 1-based, raw with its line end) is blank: no record."""
    if line_no == 1 and raw.startswith(BOM):
        raw = raw[len(BOM):]
    return not raw.strip(b" \t\r\n")


def _load_docbin(path: Path) -> DocBin:
    try:
        return DocBin(store_user_data=True).from_disk(path)
    except Exception as err:
        raise InputError(f"{path}: not a readable .spacy file (DocBin): {type(err).__name__}: {err}") from None


class _DocBinCursor:
    """A .spacy file loaded once, and one `get_docs` over it that builds its
    docs in order. `doc(i)` continues from the last doc built; only a doc
    before it starts a new pass. Shards read in order therefore build each
    doc once, where loading the file and building every doc before a shard's
    start for each shard took time quadratic in the file's length."""

    def __init__(self, path: Path, key: Tuple[int, int], vocab: Vocab) -> None:
        self.path = str(path)
        self.key = key  # the file's (mtime_ns, size) when loaded
        self.docbin = _load_docbin(path)
        self.n_docs = len(self.docbin)
        self.start_pass(vocab)

    def start_pass(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.docs = self.docbin.get_docs(vocab)
        self.position = 0  # the number of the doc that self.docs builds next

    def doc(self, i: int) -> Doc:
        """Doc number i (0-based) of the file."""
        if i >= self.n_docs:
            raise InputError(f"{self.path}: holds {self.n_docs:,} docs, not doc {i + 1:,}: "
                             "the file changed after its shards were planned")
        if i < self.position:
            self.start_pass(self.vocab)
        while self.position < i:  # docs before i that this process does not read: built, dropped
            next(self.docs)
            self.position += 1
        doc = next(self.docs)
        self.position += 1
        return doc


# The .spacy file this process is reading (read_shard), kept between its shards; None when
# the process has read to its end or has gone on to another file, so that it holds at most
# one file's DocBin, and only while it reads it.
_cursor: Optional[_DocBinCursor] = None


def _docbin_cursor(path: Path, vocab: Vocab) -> _DocBinCursor:
    """This process's cursor over `path`, for docs in `vocab`: the kept one
    if it is over the same file, unchanged since it was loaded, else a new one."""
    global _cursor
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    if _cursor is None or _cursor.path != str(path) or _cursor.key != key:
        _cursor = None  # free the previous file's DocBin before loading this one
        _cursor = _DocBinCursor(path, key, vocab)
    elif _cursor.vocab is not vocab:  # Docs belong to a vocab: another one needs another pass
        _cursor.start_pass(vocab)
    return _cursor


def _release(cursor: _DocBinCursor) -> None:
    global _cursor
    if _cursor is cursor:
        _cursor = None


def read_shard(shard: Shard, vocab: Vocab, max_length: int) -> Iterator[Union[Record, Reject]]:
    """The shard's records in input order, each a Record or a Reject."""
    if shard.kind == "spacy":
        cursor = _docbin_cursor(Path(shard.path), vocab)
        for i in range(shard.start, shard.end):
            try:
                doc = cursor.doc(i)
            except BaseException:
                _release(cursor)  # its get_docs is closed: a new read starts afresh
                raise
            if len(doc.text) > max_length:
                yield Reject(shard.path, i + 1, f"text of {len(doc.text):,} characters is over max_length {max_length:,}")
            else:
                yield Record(f"{shard.path}:{i + 1}", doc=doc)  # its user data travels with it
        if cursor.position == cursor.n_docs:
            _release(cursor)
        return
    if _cursor is not None:
        _release(_cursor)  # another file: the .spacy file read before is done with
    with open(shard.path, "rb") as file:
        file.seek(shard.offset)
        line_no = shard.start
        n_records = 0
        while n_records < shard.end - shard.start:
            raw = file.readline()
            line_no += 1
            if shard.kind == "jsonl" and raw and _blank(line_no, raw):  # b"": the file shrank since the plan
                continue
            n_records += 1
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

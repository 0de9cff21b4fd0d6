"""Reading text files and writing end products safely.

- `read_text_lines`: every reader of text (corpus converters, the LM corpus,
  evaluate-lm) decodes through here: UTF-8 with a leading byte-order mark
  removed, lines split on "\\n" only (with a trailing "\\r" removed), so that
  U+0085, U+2028 and other Unicode line separators inside a line stay text and
  never split a sentence. A file that is not UTF-8 raises a ValueError naming
  the file, the line and the encoding assumed.
- `atomic_output`: every file or directory the package writes as an end
  product is written beside its destination and renamed into place, so a
  reader sees the old or the new one, never a mix, and a crash while writing
  leaves the old one as it was.
"""
import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Tuple, Union

ENCODING = "utf-8"
BOM = "\ufeff"
PathLike = Union[str, Path]


class TextDecodeError(ValueError):
    """A line of a text file is not in the encoding the reader assumes."""

    def __init__(self, path: Path, line_no: int, encoding: str, detail: str) -> None:
        self.path, self.line_no, self.encoding, self.detail = path, line_no, encoding, detail
        super().__init__(
            f"{path}:{line_no}: {detail} as {encoding.upper()} (the encoding this reader assumes); "
            f"re-encode the file as {encoding.upper()}"
        )


def read_text_lines(path: PathLike, encoding: str = ENCODING) -> Iterator[Tuple[int, str]]:
    """(line number from 1, line without its line break) of a text file, UTF-8
    unless another encoding is given (TREC is Latin-1). Raises TextDecodeError
    (a ValueError) for a line that is not in that encoding."""
    path = Path(path)
    with path.open("rb") as file:
        for line_no, raw in enumerate(file, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as err:
                detail = f"cannot decode byte {raw[err.start:err.start + 1]!r} at column {err.start + 1}"
                raise TextDecodeError(path, line_no, encoding, detail) from None
            if line_no == 1 and line.startswith(BOM):
                line = line[len(BOM):]
            yield line_no, line.rstrip("\n").rstrip("\r")


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


def recover(path: PathLike) -> None:
    """Finish or undo a directory swap that a crash interrupted (see
    atomic_output): if `path` is missing but its previous version is beside
    it, put that back. Leftover temporary siblings are removed."""
    path = Path(path)
    if not path.parent.exists():
        return
    for sibling in path.parent.glob(f".{path.name}.*-*"):
        kind = sibling.name[len(path.name) + 2 :].split("-", 1)[0]
        if kind == "old" and not path.exists():
            sibling.rename(path)
        elif kind in ("old", "new"):
            shutil.rmtree(sibling) if sibling.is_dir() else sibling.unlink()


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write a file or a directory
    into; when the block ends without an error, move it into place.

    A file is moved with os.replace, which is atomic. A directory cannot
    replace a non-empty directory in one step, so the old one is first renamed
    aside, the new one renamed into place, and the old one removed; `recover`
    undoes a crash between the two renames. If the block raises, the
    temporary output is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = _sibling(path, "new")
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
    if not tmp.is_dir():
        os.replace(tmp, path)
        return
    old = _sibling(path, "old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()

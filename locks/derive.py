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


def read_lock(path: Path) -> dict[str, str]:
    """name -> 'version' (or 'version ; marker') for every requirement of a pip-compiled lock."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line[0] in " #-":
            continue
        match = PIN.match(line)
        if not match:
            raise ValueError(f"{path}:{number}: {line!r} is not a pinned requirement (name==version)")
        name, version, marker = match.groups()
        pins[name] = version + (f" {marker.strip()}" if marker else "")
    return pins


def requirement_block(path: Path, name: str) -> str:
    """The lines of one requirement of a pip-compiled lock: the pin, its hashes, its comments."""
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{name}==")), None)
    if start is None:
        raise ValueError(f"{path}: no {name}== requirement")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end]) + "\n"


def torch_lock() -> str:
    return "# Written by `make lock` from locks/cpu.txt (see locks/derive.py).\n" + requirement_block(
        ROOT / "locks" / "cpu.txt", "torch"
    )


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

"""Run model-written programs where they can hurt nothing but themselves.

Each program runs in its own process, in a fresh scratch directory, with
- no network: a new network namespace (only a loopback that is down);
- its own PID namespace: when the program ends or times out, every process it started dies too;
- the results tree hidden: an empty tmpfs is mounted over each `hide` directory;
- limits: CPU seconds, address space, file size, open files and processes (as an unprivileged
  user: `nobody` when prunebench runs as root, where the kernel would not count processes);
- a wall-clock timeout, after which the whole process group is killed.

Namespaces come from util-linux's `unshare` (as root, or through a user namespace otherwise).
Where the kernel refuses them, the program still runs with the limits, the scratch directory and
the timeout, a Python-level guard closes sockets, and `isolation()` says so, so that a report
can state how the code ran.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .paths import RESULTS

NOBODY = 65534
# The program's first lines where no network namespace exists: sockets refuse to be made.
SOCKET_GUARD = (
    "import socket as _s\n"
    "def _refuse(*a, **k):\n    raise OSError('network access is disabled in the sandbox')\n"
    "_s.socket = _s.create_connection = _s.socketpair = _refuse\n"
    "del _s, _refuse\n"
)
# Runs inside the namespaces: hide directories, set limits, drop privileges, then exec the program.
LAUNCHER = r'''
import json, os, resource, subprocess, sys
spec = json.loads(sys.argv[1])
scratch = os.open(spec["cwd"], os.O_RDONLY | os.O_DIRECTORY)  # both still reachable once /tmp is covered
program = os.open(os.path.join(spec["cwd"], "program.py"), os.O_RDONLY)
os.set_inheritable(program, True)
for path in spec["read_only"]:
    subprocess.run(["mount", "--bind", path, path], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", path, path], check=True)
for path in spec["hide"]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k,mode=0555", "none", path], check=True)
os.fchdir(scratch)
limits = {resource.RLIMIT_CPU: spec["cpu"], resource.RLIMIT_AS: spec["memory"], resource.RLIMIT_FSIZE: spec["fsize"],
          resource.RLIMIT_NOFILE: 64, resource.RLIMIT_CORE: 0}
for kind, value in limits.items():
    resource.setrlimit(kind, (value, value))
if spec["drop_to"] is not None:
    os.setgroups([]); os.setgid(spec["drop_to"]); os.setuid(spec["drop_to"])
resource.setrlimit(resource.RLIMIT_NPROC, (spec["nproc"], spec["nproc"]))
env = {"PATH": "/usr/bin:/bin", "HOME": ".", "TMPDIR": ".", "LANG": "C.UTF-8", "PYTHONPATH": spec["pythonpath"]}
os.execve(spec["python"], [spec["python"], "-s", "-B", f"/proc/self/fd/{program}"], env)
'''
# Covered inside the program's mount namespace by an empty read-only tmpfs: the world-writable
# folders (and, per run, the results tree); the working directory and home become read-only.
COVERED = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    processes: int = 16


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # passed, failed, timeout
    returncode: int | None
    stderr_tail: str


def _reachable_by_others(path: str) -> bool:
    """Whether an unprivileged user can execute `path` (every folder on the way searchable)."""
    current = Path(path)
    if not os.access(current, os.X_OK) or not current.stat().st_mode & 0o001:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in current.parents)


def _python(unprivileged: bool) -> str:
    """An interpreter for the program, outside the project (a venv's is a link to one): programs
    need only the standard library, and the project folder is covered. As `nobody`, one that user
    can reach (this one may sit in root's home)."""
    candidates = [os.path.realpath(p) for p in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3")]
    if not unprivileged:
        return candidates[0]
    return next((c for c in candidates if os.path.exists(c) and _reachable_by_others(c)), candidates[0])


def _site_packages() -> str:
    """Where this environment's packages are (numpy: HumanEval+'s tests import it), for the program's
    interpreter, which is the same Python version without this environment."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _own_processes() -> int:
    uid = os.getuid()
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


def _unshare_prefix() -> list[str] | None:
    """The `unshare` call that gives a program no network, its own PIDs and its own mounts, or
    None where this system refuses it."""
    tool = shutil.which("unshare")
    if tool is None:
        return None
    base = [tool, "--net", "--pid", "--mount", "--fork", "--kill-child", "--propagation", "private"]
    if os.geteuid() != 0:
        base[1:1] = ["--user", "--map-root-user"]
    try:
        probe = subprocess.run(base + ["true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return base if probe.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def _namespaces() -> tuple[str, ...] | None:
    prefix = _unshare_prefix()
    return tuple(prefix) if prefix else None


def isolation() -> str:
    """How programs run here, in words (the report states it)."""
    if _namespaces():
        return ("separate process in new network, PID and mount namespaces (no network, results hidden), "
                "CPU, memory, file-size and process limits, wall-clock timeout, scratch directory")
    return ("separate process with CPU, memory, file-size and process limits, wall-clock timeout and a scratch "
            "directory; sockets refused by a Python guard (this system refuses network namespaces)")


def run_program(source: str, limits: Limits = Limits(), hide: tuple[str | os.PathLike, ...] = (),
                files: Mapping[str, str] | None = None) -> Outcome:
    """Run a Python program; it passes if it exits with status 0 within the limits. The run's
    results tree (results/ under the working directory) and `hide` are covered. `files` ({name:
    text}) are written beside the program, for it to read from its working directory (a
    problem's tests, a candidate solution)."""
    scratch = Path(tempfile.mkdtemp(prefix="prunebench-sandbox-"))
    try:
        drop_to = NOBODY if os.geteuid() == 0 else None
        if drop_to is not None:
            os.chown(scratch, NOBODY, NOBODY)
        namespaces = _namespaces()
        program = scratch / "program.py"
        program.write_text(source if namespaces else SOCKET_GUARD + source, encoding="utf-8")
        program.chmod(0o644)
        for name, text in (files or {}).items():
            if Path(name).name != name or name == program.name:
                raise ValueError(f"sandbox file name {name!r}: a plain name other than {program.name} is needed")
            extra = scratch / name
            extra.write_text(text, encoding="utf-8")
            extra.chmod(0o644)
        # Processes: the unprivileged user's own count plus the program's allowance (the kernel
        # counts per user, and a user running prunebench has processes of their own).
        nproc = limits.processes + (0 if drop_to is not None else _own_processes())
        python = _python(drop_to is not None)
        covered = [p for p in dict.fromkeys(str(Path(p).resolve()) for p in (*COVERED, RESULTS, *hide))
                   if Path(p).is_dir()]
        covered.sort(key=lambda p: -len(Path(p).parts))  # deepest first: results/ may lie inside /tmp
        read_only = [p for p in dict.fromkeys(str(Path(p).resolve()) for p in (os.getcwd(), Path.home()))
                     if Path(p).is_dir() and p not in covered]
        spec = {"hide": covered if namespaces else [], "read_only": read_only if namespaces else [],
                "cpu": limits.cpu_seconds, "memory": limits.memory_bytes, "fsize": limits.file_bytes, "nproc": nproc,
                "drop_to": drop_to, "cwd": str(scratch), "python": python, "pythonpath": _site_packages()}
        command = list(namespaces or ()) + [os.path.realpath(sys.executable), "-I", "-c", LAUNCHER, json.dumps(spec)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, start_new_session=True, cwd=scratch)
        try:
            _, stderr = process.communicate(timeout=limits.wall_seconds)
            status = "passed" if process.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            _kill(process)
            _, stderr = process.communicate()
            status = "timeout"
        tail = stderr.decode("utf-8", "replace")[-500:]
        return Outcome(status == "passed", status, process.returncode, tail)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.kill()

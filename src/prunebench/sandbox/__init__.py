"""Run model-written programs where they can hurt nothing but their own score.

Every run is a bubblewrap (`bwrap`) container of its own:
- a new, empty root filesystem: the operating system's programs and libraries (/usr) and the
  Python installation, read-only, with every site-packages folder in them covered; numpy, the one
  package tests import, at /site; the run's files at /box, read-only; a scratch folder /work (also
  /tmp) that is a tmpfs of `Limits.file_bytes`. The project, the results, the data mirror and the
  home folder are not in it wherever they lie (any that lies inside a mounted tree is covered too);
- new network, PID, IPC, UTS and cgroup namespaces: no network; its own /proc, which shows its own
  processes only; when its first process ends, every process it started ends;
- an empty environment (no HF_TOKEN, nothing of the caller's), no capabilities, no new privileges;
- a user of its own: as root, a fresh unprivileged uid per run; as an ordinary user, a new user
  namespace per run (in which it may not make another);
- limits per run: resident memory of all its processes together (watched, and each process's
  address space capped), number of processes, scratch bytes, CPU seconds per process, output kept,
  and a wall-clock timeout.
Whether a program passed is never read from its exit status: tasks decide from what the harness
itself received (driver.py's verdict, or a program's output compared outside the sandbox).

Where bwrap is missing or the kernel refuses its namespaces, nothing runs: `unavailable()` says why
and how to enable it, and `run` raises SandboxUnavailable.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..paths import RESULTS

HERE = Path(__file__).parent
BOX, WORK, SITE = "/box", "/work", "/site"
PACKAGES = ("numpy", "numpy.libs")  # what programs may import beyond the standard library
DRIVER_FILES = ("driver.py", "host.py", "wire.py")
POLL_SECONDS = 0.05  # how often a run's memory is measured
STDERR_KEPT = 4096
ENABLE = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) and "
          "allow user namespaces for ordinary users (sysctl kernel.unprivileged_userns_clone=1 where the kernel "
          "has it; on Ubuntu 24.04 and later an AppArmor profile that lets bwrap use them), or run as root")
# Runs first inside the container, trusted: limits, then (as root) the run's own uid, then the program.
LAUNCHER = r'''
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for name, value in spec["limits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
if spec["uid"] is not None:
    os.setgroups([]); os.setgid(spec["uid"]); os.setuid(spec["uid"])
resource.setrlimit(resource.RLIMIT_NPROC, (spec["processes"], spec["processes"]))
os.execv(sys.executable, [sys.executable, "-S", "-B", spec["entry"]])
'''


class SandboxUnavailable(RuntimeError):
    """Model-written code cannot run isolated on this system; it is not run at all."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10  # per process
    memory_bytes: int = 1 << 30  # resident memory of the whole run
    file_bytes: int = 16 << 20  # scratch space of the whole run (and the largest file)
    processes: int = 16  # at once, in the whole run
    output_bytes: int = 1 << 20  # standard output kept; the rest is read and dropped


@dataclass(frozen=True)
class Outcome:
    status: str  # exited, timeout, memory (over the run's memory limit)
    returncode: int | None
    stdout: bytes  # at most Limits.output_bytes
    stdout_complete: bool  # False where more was written than was kept
    stderr_tail: str


def _python() -> tuple[str, str]:
    """The interpreter programs run under (this one, without its environment) and its installation."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _packages() -> list[Path]:
    purelib = Path(sysconfig.get_paths()["purelib"])
    return [purelib / name for name in PACKAGES if (purelib / name).is_dir()]


def _inside(path: Path, tree: Path) -> bool:
    return path == tree or tree in path.parents


def _site_folders(prefix: str) -> list[str]:
    """Every package folder of the system and of the interpreter's installation (covered: a
    package there, HumanEval's own for one, may hold answers)."""
    roots = [Path(prefix), Path("/usr"), Path("/usr/local")]
    found = {str(p) for root in roots for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages")
             for p in root.glob(pattern)}
    return sorted(found)


_ALSO_HIDDEN: set[str] = set()


def hide(path: str | os.PathLike) -> None:
    """Keep `path` (the data mirror a task reads) from every later run, wherever it lies: a task's
    metric, which lm-eval calls without context, cannot pass it to `run` itself."""
    _ALSO_HIDDEN.add(str(Path(path).resolve()))


def _hidden(extra: Iterable[str | os.PathLike]) -> list[Path]:
    """What a program must never see: the project (working folder), results, home, the data mirror
    (`hide`) and the caller's `extra`."""
    paths = [Path.cwd(), RESULTS, Path.home(), *(Path(p) for p in (*_ALSO_HIDDEN, *extra))]
    return [p.resolve() for p in paths if str(p)]


def _run_uid() -> int | None:
    """As root, a uid of this run's own (no other process has it, so per-user limits are per run)."""
    return 0x40000000 + secrets.randbelow(1 << 29) if os.geteuid() == 0 else None


def _command(box: Path, entry: str, limits: Limits, uid: int | None, hide: Iterable) -> list[str]:
    python, prefix = _python()
    own_prefix = not _inside(Path(prefix), Path("/usr"))  # a Python installed elsewhere (pyenv, conda)
    bound = ["/usr"] + ([prefix] if own_prefix else [])
    args = [shutil.which("bwrap") or "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if uid is None:
        args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        if Path("/" + name).is_symlink():
            args += ["--symlink", os.readlink("/" + name), "/" + name]
        elif Path("/" + name).is_dir():
            args += ["--ro-bind", "/" + name, "/" + name]
            bound.append("/" + name)
    if Path("/etc/ld.so.cache").is_file():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    if own_prefix:
        for parent in reversed(Path(prefix).parents[:-1]):
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    args += ["--perms", "0755", "--dir", SITE]
    for package in _packages():
        args += ["--ro-bind", str(package), f"{SITE}/{package.name}"]
    covered = _site_folders(prefix) + [str(p) for p in _hidden(hide)
                                       if any(_inside(p, Path(tree)) for tree in bound)]
    for folder in dict.fromkeys(covered):
        args += ["--perms", "0555", "--tmpfs", folder, "--remount-ro", folder]
    args += ["--ro-bind", str(box), BOX, "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
             "--size", "4096", "--perms", "0555", "--tmpfs", "/dev/shm", "--remount-ro", "/dev/shm",
             "--size", str(limits.file_bytes), "--perms", "1777", "--tmpfs", WORK, "--symlink", WORK, "/tmp",
             "--chdir", WORK]
    for key, value in {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORK, "TMPDIR": WORK, "LANG": "C.UTF-8",
                       "PYTHONHASHSEED": "0", "PYTHONPATH": SITE, "OPENBLAS_NUM_THREADS": "1",
                       "OMP_NUM_THREADS": "1"}.items():
        args += ["--setenv", key, value]
    spec = {"uid": uid, "processes": limits.processes, "entry": f"{BOX}/{entry}",
            "limits": {"RLIMIT_CPU": limits.cpu_seconds, "RLIMIT_AS": limits.memory_bytes,
                       "RLIMIT_FSIZE": limits.file_bytes, "RLIMIT_NOFILE": 256, "RLIMIT_CORE": 0}}
    return args + ["--", python, "-S", "-B", "-c", LAUNCHER, json.dumps(spec)]


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why model-written code cannot run isolated here (None where it can): probed once, by running
    the smallest program through the same container as every run."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed: {ENABLE}"
    try:
        outcome = _execute({"probe.py": "print('ok')\n"}, "probe.py", b"", Limits(wall_seconds=30), ())
    except OSError as error:
        return f"bwrap could not start ({error}): {ENABLE}"
    if outcome.stdout.strip() != b"ok":
        return f"bwrap could not build the sandbox ({outcome.stderr_tail.strip()[-300:]}): {ENABLE}"
    return None


def require() -> None:
    """Refuse, before any work, where model-written code cannot run isolated."""
    reason = unavailable()
    if reason:
        raise SandboxUnavailable(f"model-written code is not run unprotected: {reason}")


def isolation() -> str:
    """How programs run here, in words (a task's result and the report state it)."""
    reason = unavailable()
    if reason:
        return f"not run: {reason}"
    user = "a fresh unprivileged uid per run" if os.geteuid() == 0 else "a user namespace per run"
    return ("bubblewrap container per run: empty root with the system, Python and numpy read-only, project, "
            f"results, data and home absent; no network; own PID namespace; {user}, no capabilities; "
            "per-run limits on memory, processes, scratch space and output; wall-clock timeout; "
            "passes decided outside the program")


def run(files: Mapping[str, str | bytes], entry: str, stdin: bytes = b"", limits: Limits = Limits(),
        hide: Iterable[str | os.PathLike] = ()) -> Outcome:
    """Run `python /box/<entry>` in a container of its own with `files` ({plain name: content}) in
    /box, `stdin` as its standard input; return what it wrote (kept within the limits). `hide`
    names more folders it must never see (the data mirror) beside the project, results and home."""
    require()
    return _execute(files, entry, stdin, limits, hide)


def run_tests(program: str, tests: str, limits: Limits = Limits(), hide: Iterable[str | os.PathLike] = ()) -> bool:
    """Whether `tests` (Python that raises unless the candidate is right) ran to their end against
    `program`, with the candidate in a process of its own (driver.py)."""
    files = _driver_files()
    job = json.dumps({"program": program, "tests": tests}).encode()
    outcome = run(files, "driver.py", job, limits, hide)
    lines = outcome.stdout.splitlines()
    try:
        return bool(lines) and json.loads(lines[-1]).get("verdict") == "passed"
    except (ValueError, AttributeError):
        return False


@functools.cache
def _driver_files() -> dict[str, str]:
    """The test driver's programs, read once (every HumanEval candidate's run carries them)."""
    return {name: (HERE / name).read_text(encoding="utf-8") for name in DRIVER_FILES}


def _execute(files: Mapping[str, str | bytes], entry: str, stdin: bytes, limits: Limits, hide) -> Outcome:
    if entry not in files:
        raise ValueError(f"sandbox entry {entry!r} is not among its files")
    box = Path(tempfile.mkdtemp(prefix="prunebench-box-"))
    try:
        box.chmod(0o755)
        for name, content in files.items():
            if Path(name).name != name or name in (".", ".."):
                raise ValueError(f"sandbox file name {name!r}: a plain file name is needed")
            path = box / name
            path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
            path.chmod(0o644)
        command = _command(box, entry, limits, _run_uid(), hide)
        # bwrap's own process stays in the container as its first process: it gets no environment
        # either, so that nothing of the caller's (a token) can be read from /proc/1/environ.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, cwd="/", env={"PATH": "/usr/bin:/bin"})
        try:
            return _supervise(process, stdin, limits)
        finally:
            _kill(process)
    finally:
        shutil.rmtree(box, ignore_errors=True)


def _supervise(process: subprocess.Popen, stdin: bytes, limits: Limits) -> Outcome:
    """Feed stdin, keep the head of stdout and the tail of stderr (reading and dropping the rest),
    and end the run at its wall-clock or memory limit."""
    deadline = time.monotonic() + limits.wall_seconds
    selector = selectors.DefaultSelector()
    for stream in (process.stdout, process.stderr):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(process.stdin.fileno(), False)
        selector.register(process.stdin, selectors.EVENT_WRITE)
    else:
        process.stdin.close()
    stdout, stderr, complete, status = bytearray(), bytearray(), True, "exited"
    next_poll = 0.0
    while selector.get_map():
        now = time.monotonic()
        if now >= deadline:
            status = "timeout"
            break
        if now >= next_poll:
            next_poll = now + POLL_SECONDS
            if _resident_bytes(process.pid) > limits.memory_bytes:
                status = "memory"
                break
        for key, _ in selector.select(timeout=min(POLL_SECONDS, max(0.0, deadline - now))):
            if key.fileobj is process.stdin:
                try:
                    written = os.write(process.stdin.fileno(), pending[:1 << 16])
                except (BrokenPipeError, BlockingIOError) as error:
                    written = len(pending) if isinstance(error, BrokenPipeError) else 0
                pending = pending[written:]
                if not pending:
                    selector.unregister(process.stdin)
                    process.stdin.close()
                continue
            chunk = os.read(key.fileobj.fileno(), 1 << 16)
            if not chunk:
                selector.unregister(key.fileobj)
            elif key.fileobj is process.stdout:
                room = limits.output_bytes - len(stdout)
                complete = complete and len(chunk) <= room
                stdout += chunk[:max(0, room)]
            else:
                stderr = (stderr + chunk)[-STDERR_KEPT:]
    selector.close()
    if status == "exited":
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = "timeout"
    return Outcome(status, process.returncode if status == "exited" else None, bytes(stdout), complete,
                   stderr.decode("utf-8", "replace"))


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    return children


def _resident_bytes(root: int) -> int:
    """Resident memory of `root` and every process below it (the whole run: an orphan is adopted by
    the container's first process, which is below the bwrap process)."""
    children, total, todo = _children(), 0, [root]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


def _kill(process: subprocess.Popen) -> None:
    """End the container: its first process dies with bwrap (--die-with-parent), and with it every
    process of its PID namespace."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream and not stream.closed:
            stream.close()
    process.wait()

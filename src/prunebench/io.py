"""Atomic file output and the JSONL format every stage reads and writes.

A result is written to a temporary sibling and renamed into place, so a killed job never leaves a
half-written file that a later run would mistake for a finished one. A JSONL result starts with one
``{"_provenance": {...}}`` line; `read_jsonl` returns the records without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

PROVENANCE_KEY = "_provenance"
OUTPUT_MARK = ".prunebench-output"  # in a directory a command wrote: the command's name


class InputError(ValueError):
    """Bad input from a user-controlled file; the message names the file and the line or field."""


class JobError(RuntimeError):
    """A job that could not finish for a reason it can say in one line (where to read more, if anywhere)."""


def _is_within(path: Path, ancestor: Path) -> bool:
    return path == ancestor or ancestor in path.parents


def check_output_dir(path: str | os.PathLike, command: str, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse, before any work, a directory that writing `command`'s output there could destroy.

    Refused: the working directory or one of its parents; an input, a directory holding an input,
    or a directory inside an input directory; an existing file; and a directory that is not empty
    unless an earlier run of the same command wrote it (its OUTPUT_MARK names the command).
    """
    target = Path(path).resolve()
    where = f"{command} output {path}"
    cwd = Path.cwd().resolve()
    if _is_within(cwd, target):
        raise InputError(f"{where}: is the working directory or one of its parents; name a directory of its own")
    for item in inputs:
        source = Path(item).resolve()
        if _is_within(source, target) or (source.is_dir() and _is_within(target, source)):
            raise InputError(f"{where}: overlaps the input {item}; name a directory of its own")
    if target.exists() and not target.is_dir():
        raise InputError(f"{where}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        mark = target / OUTPUT_MARK
        if not mark.is_file() or mark.read_text(encoding="utf-8").strip() != command:
            raise InputError(f"{where}: is not empty and is not an earlier output of `prunebench {command}`; "
                             f"remove it or name another directory")


def mark_output_dir(path: str | os.PathLike, command: str) -> None:
    """Record that `command` wrote this directory, so that a rerun may replace it."""
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / OUTPUT_MARK).write_text(command + "\n", encoding="utf-8")


def check_output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an output file that is an input, lies inside an input directory (a model's folder,
    the data mirror), or exists as a directory."""
    target = Path(path).resolve()
    if target.is_dir():
        raise InputError(f"output {path}: is a directory")
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if source == target:
            raise InputError(f"output {path}: is also an input; name another file")
        if source.is_dir() and _is_within(target, source):
            raise InputError(f"output {path}: lies inside the input {item}; name a file outside it")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_siblings(path: Path) -> list[Path]:
    """The temporaries that writing `path` leaves beside it when it is killed (see atomic_path)."""
    import glob

    return list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp*")) if path.parent.is_dir() else []


def remove_stale_temporaries(path: Path) -> None:
    """Temporaries of `path` that a killed writer left behind: writing `path` again removes them."""
    for stale in _temporary_siblings(path):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def is_temporary(path: Path) -> bool:
    """Whether a path under results/ is work in progress rather than a result: a hidden temporary
    (or anything inside one), or the `.parts` folder of a resumable job."""
    from .paths import PARTS

    return any(part.startswith(".") or part.endswith(PARTS) for part in path.parts)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, mark: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds.
    `mark` records the command that wrote it (OUTPUT_MARK), so that a rerun may replace it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        if mark is not None:
            mark_output_dir(tmp, mark)
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON: a NaN or infinity is an error here rather than a file other readers reject."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None


def dump_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_jsonl(path: str | os.PathLike, records: Iterable[dict], provenance: dict | None = None) -> int:
    """Write records (after an optional provenance line) atomically; return how many were written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        if provenance is not None:
            out.write(dump_line({PROVENANCE_KEY: provenance}))
        for record in records:
            out.write(dump_line(record))
            count += 1
    return count


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Records of a JSONL file, skipping the provenance line; a bad line names the file and line."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            if PROVENANCE_KEY in record:
                continue
            yield record


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return list(iter_jsonl(path))


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance header of a JSONL file, or None if it has none."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return None
    return record.get(PROVENANCE_KEY) if isinstance(record, dict) else None


def require_fields(record: dict, fields: Iterable[str], where: str) -> None:
    missing = [f for f in fields if f not in record]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(repr(m) for m in missing)}")

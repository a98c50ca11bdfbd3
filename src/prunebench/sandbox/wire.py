"""Plain values across a process boundary, as one JSON line each.

The test driver and the candidate's host (both inside the sandbox) exchange arguments and return
values in this form. What arrives is decoded into Python's own builtin types only (int, float,
complex, str, bytes, bool, None, list, tuple, dict, set, frozenset), so nothing a candidate sends
can carry behaviour: an object whose `__eq__` always answers True cannot cross, and a subclass of a
builtin arrives as the builtin. Standard library only: this file runs under the sandbox's bare
interpreter.

JSON's own types stand for themselves (a JSON list is a Python list; NaN and Infinity as Python's
json module writes them); every other type is an object with one tag: {"t": [..]} tuple,
{"d": [[k, v], ..]} dict, {"s": [..]} set, {"f": [..]} frozenset, {"b": "<base64>"} bytes,
{"c": [re, im]} complex, {"i": "<hex>"} an integer beyond 64 bits (decimal text of a huge integer
takes quadratic time; hexadecimal is linear), {"n": ["<base64 doubles>", "<base64 int64s>", "<base64 flags>"]}
a long list of numbers (the floats, the integers, and a byte per item saying which comes next;
JSON's decimal text of ten million floats takes seconds, and some HumanEval+ answers are that long). Any other list of
scalars is passed to json whole rather than element by element.
"""

from __future__ import annotations

import base64
import json
from array import array
from itertools import compress, repeat

MAX_LINE = 64 << 20  # bytes of one message: a larger one is refused, not read on
SCALARS = frozenset({int, float, str, bool, type(None)})
LIMIT = 1 << 64  # integers at least this large travel as hexadecimal
FLIP = bytes([1, 0]) + bytes(254)  # bytes.translate table: integer flags to double flags
NUMBERS = frozenset({int, float})


class WireError(ValueError):
    """A message that is not a plain value in this encoding."""


def _flat(values) -> bool:
    """Whether a list or tuple holds exact scalars only, with no integer past LIMIT."""
    kinds = set(map(type, values))
    if not kinds <= SCALARS:
        return False
    if int not in kinds:
        return True
    ints = [v for v in values if type(v) is int]
    return -LIMIT < min(ints) and max(ints) < LIMIT


def _numbers(items: list):
    """A long list of ints and floats as packed arrays (None where it is not one): the doubles, the
    64-bit integers, and a flag per item saying which of the two it is next (C loops throughout)."""
    if len(items) < 64 or not set(map(type, items)) <= NUMBERS:
        return None
    flags = bytes(map(isinstance, items, repeat(int)))
    try:
        ints = array("q", compress(items, flags))
    except OverflowError:
        return None
    doubles = array("d", compress(items, flags.translate(FLIP)))
    return {"n": [_b64(doubles.tobytes()), _b64(ints.tobytes()), _b64(flags)]}


def _unpack_numbers(body) -> list:
    if len(body) != 3 or not all(type(part) is str for part in body):
        raise WireError("tag 'n' needs three base64 strings")
    doubles, ints = array("d"), array("q")
    raw_doubles, raw_ints, flags = (base64.b64decode(part.encode("ascii"), validate=True) for part in body)
    if (len(raw_doubles) % 8 or len(raw_ints) % 8 or flags.count(1) * 8 != len(raw_ints)
            or flags.count(0) * 8 != len(raw_doubles)):
        raise WireError("tag 'n': the flags do not match the numbers")
    doubles.frombytes(raw_doubles)
    ints.frombytes(raw_ints)
    sources = (iter(doubles.tolist()), iter(ints.tolist()))
    return list(map(next, map(sources.__getitem__, flags)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_plain(value, depth: int = 0):
    """`value` as JSON-ready data. Subclasses of builtins are taken as their builtin (an int
    subclass is sent as int(value)); numpy scalars and arrays as their Python values; anything else
    is refused with WireError."""
    if depth > 200:
        raise WireError("value nested more than 200 levels deep")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        plain = int.__index__(value)
        return plain if -LIMIT < plain < LIMIT else {"i": hex(plain)}
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, complex):
        plain = complex.__complex__(value)
        return {"c": [plain.real, plain.imag]}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        items = list(tuple.__iter__(value))
        return {"t": items if _flat(items) else [to_plain(v, depth + 1) for v in items]}
    if isinstance(value, list):
        items = list(list.__iter__(value))
        packed = _numbers(items)
        if packed is not None:
            return packed
        return items if _flat(items) else [to_plain(v, depth + 1) for v in items]
    if isinstance(value, dict):
        return {"d": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in dict.items(value)]}
    if isinstance(value, frozenset):
        return {"f": [to_plain(v, depth + 1) for v in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"s": [to_plain(v, depth + 1) for v in set.__iter__(value)]}
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return to_plain(value.tolist(), depth + 1)
    raise WireError(f"a value of type {type(value).__name__} is not plain data")


def _number(value) -> float:
    if type(value) not in (int, float):
        raise WireError("a number was expected")
    return value


def from_plain(data):
    """The builtin value `data` (as to_plain wrote it) stands for."""
    kind = type(data)
    if data is None or kind in (bool, int, float, str):
        return data
    if kind is list:
        return data if set(map(type, data)) <= SCALARS else [from_plain(v) for v in data]
    if kind is not dict or len(data) != 1:
        raise WireError(f"not a plain value: {kind.__name__}")
    (tag, body), = data.items()
    if tag == "n" and type(body) is list:
        return _unpack_numbers(body)
    if tag == "i" and type(body) is str:
        return int(body, 16)
    if tag == "b" and type(body) is str:
        return base64.b64decode(body.encode("ascii"), validate=True)
    if type(body) is not list:
        raise WireError(f"tag {tag!r} needs a list")
    if tag == "t":
        return tuple(from_plain(body))
    if tag == "s":
        return {from_plain(v) for v in body}
    if tag == "f":
        return frozenset(from_plain(v) for v in body)
    if tag == "c" and len(body) == 2:
        return complex(_number(body[0]), _number(body[1]))
    if tag == "d" and all(type(pair) is list and len(pair) == 2 for pair in body):
        return {from_plain(k): from_plain(v) for k, v in body}
    raise WireError(f"unknown tag {tag!r}")


def send(stream, message: dict) -> None:
    """One message as one line (values inside it already made plain)."""
    stream.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stream.flush()


def receive(stream) -> dict:
    """The next message; WireError at the end of the stream or on anything not one JSON object."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        raise WireError("the other side closed the channel")
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise WireError("message too long or cut off")
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise WireError(f"unreadable message: {error}") from None
    if type(message) is not dict:
        raise WireError("a message must be a JSON object")
    return message

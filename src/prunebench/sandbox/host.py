"""Inside the sandbox, untrusted: runs a candidate program and answers calls of its functions.

The test driver (driver.py) starts this in a process of its own and sends it the candidate's
source as the first message. The source runs as a module named `candidate` (not `__main__`, as in
HumanEval's harness); this process then reports the names it defined and answers each call with the
return value, made plain (wire.py), or the exception's type name. Whatever the candidate does to this
process (exits, patches builtins, writes to the channel) reaches the driver only as plain values or
as a closed channel.
"""

import os
import sys

import wire

requests = os.fdopen(os.dup(0), "rb")
replies = os.fdopen(os.dup(1), "wb")
quiet = os.open(os.devnull, os.O_RDWR)
os.dup2(quiet, 0)
os.dup2(quiet, 1)
sys.stdin = open(os.devnull)
sys.stdout = open(os.devnull, "w")

source = wire.receive(requests)["program"]
namespace = {"__name__": "candidate", "__builtins__": __builtins__}
try:
    exec(compile(source, "candidate.py", "exec"), namespace)
except BaseException as error:  # noqa: BLE001 - SystemExit too: a program that exits defines nothing
    wire.send(replies, {"error": type(error).__name__})
    raise SystemExit(1)
names = {}
for name, value in list(namespace.items()):
    if name.startswith("__"):
        continue
    if callable(value):
        names[name] = {"callable": True}
    else:
        try:
            names[name] = {"value": wire.to_plain(value)}
        except (wire.WireError, RecursionError):
            continue
wire.send(replies, {"names": names})
while True:
    try:
        request = wire.receive(requests)
    except wire.WireError:  # the driver is done (or gone)
        raise SystemExit(0) from None
    try:
        args = wire.from_plain(request["args"])
        kwargs = wire.from_plain(request["kwargs"])
        result = namespace[request["call"]](*args, **kwargs)
        reply = {"value": wire.to_plain(result)}
    except BaseException as error:  # noqa: BLE001 - reported to the driver as the exception's name
        try:
            reply = {"raised": str.__str__(type(error).__name__), "message": str.__str__(str(error))[:200]}
        except BaseException:  # noqa: BLE001 - an exception whose text cannot be read
            reply = {"raised": "Exception", "message": ""}
    wire.send(replies, reply)

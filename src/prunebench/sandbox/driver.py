"""Inside the sandbox, trusted: runs a problem's tests against a candidate held in another process.

Reads one JSON object from standard input, {"program": candidate source, "tests": test source},
then
1. makes this process non-dumpable, so that no other process of the sandbox (they share its user
   and hold no capability) can read its memory or open its file descriptors through /proc or ptrace;
2. starts host.py, hands it the program, and learns the names the program defined;
3. runs the tests here, with each function of the candidate replaced by a proxy that calls it in the
   host and returns the plain value it gave (wire.py);
4. writes one verdict line to its standard output, which no other process holds.

So a pass means these tests ran to their end in this process: a candidate that exits, kills, patches
or floods its own process reaches the tests only as a closed channel or as plain values.
"""

import builtins
import ctypes
import json
import os
import subprocess
import sys

import wire

PR_SET_DUMPABLE = 4
HERE = os.path.dirname(os.path.abspath(__file__))

if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
    raise SystemExit("the test driver could not make itself non-dumpable")
verdict = os.fdopen(os.dup(1), "w")
quiet = os.open(os.devnull, os.O_RDWR)
job = json.loads(os.fdopen(0, "rb").read())
os.dup2(quiet, 1)
sys.stdout = open(os.devnull, "w")


def finish(passed: bool, reason: str = "") -> None:
    verdict.write(json.dumps({"verdict": "passed" if passed else "failed", "reason": reason[:300]}) + "\n")
    verdict.flush()
    raise SystemExit(0)


host = subprocess.Popen([sys.executable, "-S", "-B", os.path.join(HERE, "host.py")], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, close_fds=True, cwd=os.getcwd())


def exception_named(name) -> type:
    """The builtin exception the candidate raised (tests may expect one), else RuntimeError."""
    found = getattr(builtins, name, None) if type(name) is str else None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return RuntimeError


def proxy(name: str):
    def call(*args, **kwargs):
        wire.send(host.stdin, {"call": name, "args": wire.to_plain(list(args)), "kwargs": wire.to_plain(kwargs)})
        reply = wire.receive(host.stdout)
        if "value" in reply:
            return wire.from_plain(reply["value"])
        if "raised" in reply:
            raise exception_named(reply["raised"])(f"the candidate raised {str(reply['raised'])[:80]}")
        raise wire.WireError("the candidate's host sent neither a value nor an exception")

    call.__name__ = call.__qualname__ = name
    return call


try:
    wire.send(host.stdin, {"program": job["program"]})
    ready = wire.receive(host.stdout)
    if type(ready.get("names")) is not dict:
        finish(False, f"the candidate program did not run to its end ({str(ready.get('error'))[:80]})")
    namespace = {"__name__": "tests", "__builtins__": builtins}
    for name, entry in ready["names"].items():
        if type(name) is not str or not name.isidentifier() or type(entry) is not dict:
            continue
        namespace[name] = proxy(name) if entry.get("callable") is True else wire.from_plain(entry.get("value"))
    exec(compile(job["tests"], "tests.py", "exec"), namespace)
except SystemExit:
    raise
except BaseException as error:  # noqa: BLE001 - any failure of the tests is the candidate's failure
    finish(False, f"{type(error).__name__}: {error}")
finish(True)

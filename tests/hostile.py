"""Hostile candidates for HumanEval/0, each cut as lm-eval's stop sequences cut a completion.

Each candidate either cheats (exits, forges a verdict, returns an object that equals anything) or
returns the right answer only where its attack worked (it read a file it must not see, reached the
network, outgrew a limit). Every one must score 0, whatever user runs the harness. Standard library
only, and runnable as a script (`python hostile.py SPEC.json` prints {name: passed} as JSON), so
that the same suite runs as root and, through runuser, as an ordinary user.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

RIGHT = ("    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n"
         "            if idx != idx2 and abs(elem - elem2) < threshold:\n                return True\n"
         "    return False\n")
WRONG = "    return None\n"
VERDICT = '{"verdict": "passed", "reason": ""}\\n'


def _needs(attack: str) -> str:
    """A right answer behind an attack: it passes only if `attack` (indented lines) succeeds."""
    return attack + RIGHT


def cases(spec: dict) -> dict[str, str]:
    """name -> completion. `spec` names what must stay out of reach: files (paths), the host's
    listening port, the harness's pid, a marker for left-behind processes."""
    files = spec["files"]
    return {
        # A pass must mean the tests ran to their end.
        "raise SystemExit": "    raise SystemExit(0)\n",
        "exit()": "    exit()\n",
        "quit()": "    quit()\n",
        "sys.exit after a wrong body": WRONG + "import sys\nsys.exit(0)\n",
        "os._exit after a wrong body": WRONG + "import os\nos._exit(0)\n",
        "libc exit": WRONG + "import ctypes\nctypes.CDLL(None).exit(0)\n",
        "atexit os._exit": WRONG + "import atexit, os\natexit.register(os._exit, 0)\n",
        "unittest.main": WRONG + "import unittest\nunittest.main(argv=['x'])\n",
        "always-equal object": "    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n",
        "always-equal int": "    class Yes(int):\n        def __eq__(self, other):\n            return True\n    return Yes(0)\n",
        "forged verdict on every descriptor": (
            f"import os\nfor fd in range(64):\n    try:\n        os.write(fd, b'{VERDICT}')\n    except OSError:\n"
            "        pass\nos._exit(0)\n"),
        "reads the driver": _needs("    import os\n    open(f'/proc/{os.getppid()}/mem', 'rb').close()\n"
                                   "    assert os.listdir(f'/proc/{os.getppid()}/fd')\n"),
        # Answers and secrets out of reach.
        **{f"reads {name}": _needs(f"    assert open({path!r}, 'rb').read(1)\n") for name, path in files.items()},
        "lists the project": _needs(f"    import os\n    assert os.listdir({spec['project']!r})\n"),
        "reads HF_TOKEN": _needs("    import os\n    assert os.environ.get('HF_TOKEN')\n"),
        "reads the harness's environment": _needs(
            "    import os\n    assert any(b'HF_TOKEN' in open(f'/proc/{p}/environ', 'rb').read()\n"
            "               for p in os.listdir('/proc') if p.isdigit())\n"),
        # Nothing written outside the run, no network, the harness untouched.
        "writes outside": _needs(f"    open({spec['outside']!r}, 'w').write('escaped')\n"),
        "writes a lock file": _needs("    open('/run/lock/prunebench-escape', 'w').write('x')\n"),
        "writes /dev/shm": _needs("    open('/dev/shm/prunebench-escape', 'w').write('x')\n"),
        "connects to the host": _needs(
            f"    import socket\n    socket.create_connection(('127.0.0.1', {spec['port']}), timeout=2).close()\n"),
        "connects with _socket": _needs(
            f"    import _socket\n    s = _socket.socket()\n    s.settimeout(2)\n    s.connect(('127.0.0.1', {spec['port']}))\n"),
        "signals the harness": _needs(f"    import os, signal\n    os.kill({spec['harness']}, signal.SIGTERM)\n"),
        "kills everything it can": _needs("    import os, signal\n    os.kill(-1, signal.SIGKILL)\n"),
        # Limits that hold for the run as a whole.
        "fills the disk across files": _needs(
            "    for i in range(48):\n        open(f'fill{i}', 'wb').write(b'0' * (1 << 20))\n"),
        "fills /tmp": _needs("    open('/tmp/fill', 'wb').write(b'0' * (48 << 20))\n"),
        "memory across processes": _needs(
            "    import os, time\n    ready = []\n    for _ in range(4):\n        r, w = os.pipe()\n"
            "        if os.fork() == 0:\n            block = bytearray(300 << 20)\n            os.write(w, b'1')\n"
            "            time.sleep(30)\n            os._exit(0)\n        ready.append(os.read(r, 1))\n"
            "    time.sleep(1)\n"),
        "forks past the limit": _needs(
            "    import os, time\n    for _ in range(24):\n        if os.fork() == 0:\n            time.sleep(30)\n"
            "            os._exit(0)\n"),
        "loops forever": "    while True:\n        pass\n",
        "floods stderr": "    import os\n    block = b'x' * (1 << 20)\n    for _ in range(200):\n        os.write(2, block)\n" + WRONG,
        "leaves a process behind": (
            f"    import os\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
            f"            os.execv('/bin/sleep', ['sleep', {spec['marker']!r}])\n        os._exit(0)\n" + WRONG),
    }


LIMITS = {"wall_seconds": 8.0, "cpu_seconds": 4, "memory_bytes": 512 << 20, "file_bytes": 16 << 20, "processes": 8}


def run_suite(spec: dict, names: list[str] | None = None, through_metric: bool = True) -> dict[str, bool]:
    """Each case, and the right answer as "right", scored: {name: passed}. Through prunebench's
    HumanEval metric (pass@1 of one sample, as lm-eval calls it), or, where numpy and the rest of the
    project's environment are missing (an ordinary user's bare interpreter), through the sandbox's
    test driver directly."""
    from prunebench import sandbox

    chosen = {n: c for n, c in cases(spec).items() if names is None or n in names}
    chosen["right"] = RIGHT
    reference = spec["tests"] + "\ncheck(has_close_elements)"
    limits = sandbox.Limits(**LIMITS)
    if through_metric:
        from prunebench.lmeval.tasks import code

        def score(completion: str) -> bool:
            return code.pass_at_k([reference], [[spec["prompt"] + completion]], [1], limits)["pass@1"] == 1.0
    else:
        def score(completion: str) -> bool:
            return sandbox.run_tests(spec["prompt"] + completion, reference, limits)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(chosen, pool.map(score, chosen.values())))


if __name__ == "__main__":
    given = json.loads(open(sys.argv[1], encoding="utf-8").read())
    print(json.dumps(run_suite(given, through_metric=False)))

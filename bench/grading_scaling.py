"""How the grader's parsing time grows with hostile input, against the same code on a benign input of
the same length, in one run.

Model output is untrusted: a response of unclosed boxes, deep nesting or endless whitespace must
cost time linear in its length, never worse. For each hostile family the script times the parser
at n and at 4n characters and prints the growth ratio t(4n) / t(n) (about 4 where the parser is
linear, about 16 where it is quadratic), beside the same ratio for a benign text of equal length
(plain prose ending in one box), the peer. The test suite checks the answers these inputs give;
this script is where their cost is measured.

    python bench/grading_scaling.py --size 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from prunebench import grading
from prunebench.datasets import last_boxed

# (name, parser, text of about n characters)
FAMILIES = [
    ("unclosed boxes (last_boxed)", last_boxed, lambda n: "\\boxed{7} " + "\\boxed{" * (n // 7)),
    ("leading spaces (choice_letter)", grading.choice_letter, lambda n: " " * n + "B"),
    ("open parentheses (choice_letter)", grading.choice_letter, lambda n: "(" * n + "B"),
    ("nested text (choice_letter)", grading.choice_letter,
     lambda n: "\\text{" * (n // 7) + "B" + "}" * (n // 7)),
    ("open braces (choice_letter)", grading.choice_letter, lambda n: "{ " * (n // 2)),
]
PEERS = {last_boxed: lambda n: "word " * (n // 5) + "\\boxed{7}", grading.choice_letter: lambda n: "word " * (n // 5) + "B"}


def _time(parse, text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        parse(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000, help="n: characters of the smaller input")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'input':36} {'t(n) ms':>9} {'t(4n) ms':>9} {'growth':>7} {'peer growth':>12}")
    for name, parse, make in FAMILIES:
        small, large = (_time(parse, make(n), args.repeats) for n in (args.size, 4 * args.size))
        peer = PEERS[parse]
        peer_small, peer_large = (_time(parse, peer(n), args.repeats) for n in (args.size, 4 * args.size))
        print(f"{name:36} {small * 1e3:9.2f} {large * 1e3:9.2f} {large / small:7.1f} "
              f"{peer_large / peer_small:12.1f}")


if __name__ == "__main__":
    main()

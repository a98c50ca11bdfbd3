"""A seeded, procedurally generated suite of grade-school math word problems in five levels.

Written by prunebench itself, so that a small model on a CPU meets problems across its whole range
of ability: level 1 is one operation on small numbers, level 5 chains four or five operations with
larger numbers. Each problem carries a worked solution (for MathR-style gold calibration) and an
integer answer. The same seed always gives the same problems; train and test use disjoint seeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

NAMES = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kira",
         "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor",
         "Wen", "Yara", "Zoe"]
ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "stamps", "books", "shells", "cards",
         "buttons", "beads", "tickets"]
CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("jar", "jars"), ("crate", "crates"), ("pack", "packs")]
LEVELS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class WordProblem:
    question: str
    steps: tuple[str, ...]
    answer: int
    level: int
    template: str

    @property
    def solution(self) -> str:
        return "\n".join(self.steps) + f"\nThe final answer is $\\boxed{{{self.answer}}}$."


def _pick(rng: random.Random) -> tuple[str, str]:
    return rng.choice(NAMES), rng.choice(ITEMS)


# Level 1: one operation on small numbers.
def _gain(rng):
    name, item = _pick(rng)
    a, b = rng.randint(3, 40), rng.randint(2, 30)
    return (f"{name} has {a} {item}. {name} finds {b} more {item}. How many {item} does {name} have now?",
            (f"{name} has {a} + {b} = {a + b} {item}.",), a + b)


def _loss(rng):
    name, item = _pick(rng)
    b = rng.randint(2, 30)
    a = b + rng.randint(3, 40)
    return (f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} does {name} have left?",
            (f"{name} has {a} - {b} = {a - b} {item} left.",), a - b)


def _groups(rng):
    _, item = _pick(rng)
    one, many = rng.choice(CONTAINERS)
    a, b = rng.randint(2, 9), rng.randint(3, 12)
    return (f"A {one} holds {b} {item}. How many {item} are in {a} {many}?",
            (f"{a} {many} hold {a} x {b} = {a * b} {item}.",), a * b)


# Level 2: two operations.
def _gain_loss(rng):
    name, item = _pick(rng)
    a, b = rng.randint(10, 60), rng.randint(5, 40)
    c = rng.randint(3, a + b - 1)
    return (f"{name} has {a} {item}, buys {b} more, and then gives away {c}. How many {item} does {name} have now?",
            (f"After buying, {name} has {a} + {b} = {a + b} {item}.",
             f"After giving {c} away, {name} has {a + b} - {c} = {a + b - c} {item}."), a + b - c)


def _groups_plus(rng):
    name, item = _pick(rng)
    one, many = rng.choice(CONTAINERS)
    a, b, c = rng.randint(3, 9), rng.randint(4, 15), rng.randint(2, 25)
    return (f"{name} buys {a} {many} of {item} with {b} {item} in each {one}, and already had {c} {item}. "
            f"How many {item} does {name} have in total?",
            (f"The {many} hold {a} x {b} = {a * b} {item}.",
             f"In total {name} has {a * b} + {c} = {a * b + c} {item}."), a * b + c)


def _share(rng):
    name, item = _pick(rng)
    k, each = rng.randint(2, 8), rng.randint(3, 12)
    extra = rng.randint(1, each - 1)
    total = k * each
    return (f"{name} shares {total} {item} equally among {k} friends. Each friend then gives {extra} back to {name}. "
            f"How many {item} does each friend keep?",
            (f"Each friend gets {total} / {k} = {each} {item}.",
             f"After giving {extra} back, each keeps {each} - {extra} = {each - extra} {item}."), each - extra)


# Level 3: three operations, two-digit numbers.
def _change(rng):
    name = rng.choice(NAMES)
    a, b, c, d = rng.randint(2, 6), rng.randint(3, 12), rng.randint(2, 6), rng.randint(2, 9)
    cost = a * b + c * d
    paid = (cost // 10 + 1 + rng.randint(0, 3)) * 10
    return (f"{name} buys {a} notebooks at ${b} each and {c} pens at ${d} each, and pays with ${paid}. "
            f"How many dollars of change does {name} get?",
            (f"The notebooks cost {a} x {b} = {a * b} dollars.", f"The pens cost {c} x {d} = {c * d} dollars.",
             f"Together they cost {a * b} + {c * d} = {cost} dollars.",
             f"The change is {paid} - {cost} = {paid - cost} dollars."), paid - cost)


def _two_kinds(rng):
    name, item = _pick(rng)
    one, many = rng.choice(CONTAINERS)
    a, b, c, d = rng.randint(3, 9), rng.randint(6, 24), rng.randint(2, 8), rng.randint(5, 20)
    lost = rng.randint(2, a * b + c * d - 1)
    total = a * b + c * d - lost
    return (f"{name} has {a} large {many} with {b} {item} each and {c} small {many} with {d} {item} each. "
            f"{name} loses {lost} {item}. How many {item} are left?",
            (f"Large {many}: {a} x {b} = {a * b}.", f"Small {many}: {c} x {d} = {c * d}.",
             f"Together: {a * b} + {c * d} = {a * b + c * d}.",
             f"After losing {lost}: {a * b + c * d} - {lost} = {total}."), total)


def _weekly(rng):
    name = rng.choice(NAMES)
    per_day, days, weeks = rng.randint(12, 45), rng.randint(3, 6), rng.randint(2, 5)
    spent = rng.randint(10, per_day * days * weeks - 1)
    saved = per_day * days * weeks - spent
    return (f"{name} earns ${per_day} a day and works {days} days a week. After {weeks} weeks, {name} spends "
            f"${spent}. How many dollars does {name} have left?",
            (f"A week's pay is {per_day} x {days} = {per_day * days} dollars.",
             f"{weeks} weeks give {per_day * days} x {weeks} = {per_day * days * weeks} dollars.",
             f"After spending: {per_day * days * weeks} - {spent} = {saved} dollars."), saved)


# Level 4: three or four operations with division, rounding up or a percentage.
def _boxes_needed(rng):
    item = rng.choice(ITEMS)
    students, each, per_box = rng.randint(12, 40), rng.randint(2, 6), rng.choice([8, 10, 12, 15, 20])
    spare = rng.randint(3, 15)
    need = students * each + spare
    boxes = -(-need // per_box)
    return (f"A teacher has {students} students and wants to give each student {each} {item}, plus keep {spare} "
            f"spare {item}. {item.capitalize()} come in boxes of {per_box}. How many boxes must the teacher buy?",
            (f"The students need {students} x {each} = {students * each} {item}.",
             f"With the spares that is {students * each} + {spare} = {need} {item}.",
             f"{need} / {per_box} is {need // per_box} with remainder {need % per_box}, so the teacher needs "
             f"{boxes} boxes."), boxes)


def _discount(rng):
    name = rng.choice(NAMES)
    # prices are multiples of 20, so every offered percentage leaves whole dollars
    price, qty, pct = rng.choice([20, 40, 60, 80, 120, 160, 200]), rng.randint(2, 6), rng.choice([10, 20, 25, 50])
    fee = rng.randint(3, 15)
    subtotal = price * qty
    off = subtotal * pct // 100
    total = subtotal - off + fee
    return (f"{name} buys {qty} jackets at ${price} each. The store takes {pct}% off the total, then adds a "
            f"${fee} delivery fee. How many dollars does {name} pay?",
            (f"The jackets cost {qty} x {price} = {subtotal} dollars.", f"{pct}% of {subtotal} is {off} dollars.",
             f"After the discount: {subtotal} - {off} = {subtotal - off} dollars.",
             f"With delivery: {subtotal - off} + {fee} = {total} dollars."), total)


def _trip(rng):
    name = rng.choice(NAMES)
    v1, t1, v2, t2 = rng.randint(30, 70), rng.randint(2, 5), rng.randint(10, 40), rng.randint(2, 4)
    back = rng.randint(5, v1 * t1 + v2 * t2 - 5)
    total = v1 * t1 + v2 * t2 - back
    return (f"{name} drives at {v1} km per hour for {t1} hours, then at {v2} km per hour for {t2} hours, and then "
            f"drives {back} km back the way they came. How many km from the start is {name}?",
            (f"The first part covers {v1} x {t1} = {v1 * t1} km.", f"The second part covers {v2} x {t2} = {v2 * t2} km.",
             f"Together: {v1 * t1} + {v2 * t2} = {v1 * t1 + v2 * t2} km.",
             f"After driving back: {v1 * t1 + v2 * t2} - {back} = {total} km."), total)


# Level 5: four or five operations, three-digit numbers.
def _factory(rng):
    item = rng.choice(["toys", "chairs", "lamps", "bottles", "bricks"])
    machines, per_hour, hours, days = rng.randint(3, 9), rng.randint(14, 48), rng.randint(6, 10), rng.randint(3, 6)
    made = machines * per_hour * hours * days
    faulty_pct = rng.choice([p for p in (5, 10, 20, 25, 50) if made * p % 100 == 0] or [0])
    if faulty_pct == 0:  # no whole-number percentage: make the count even and take half
        made, faulty_pct = made * 2, 50
        days *= 2
    faulty = made * faulty_pct // 100
    shipped = rng.randint(1, made - faulty - 1)
    left = made - faulty - shipped
    return (f"A factory has {machines} machines. Each machine makes {per_hour} {item} per hour and runs {hours} "
            f"hours a day. After {days} days, {faulty_pct}% of the {item} are faulty and thrown away, and {shipped} "
            f"good {item} are shipped. How many good {item} remain?",
            (f"Per hour the machines make {machines} x {per_hour} = {machines * per_hour} {item}.",
             f"Per day: {machines * per_hour} x {hours} = {machines * per_hour * hours}.",
             f"In {days} days: {machines * per_hour * hours} x {days} = {made}.",
             f"Faulty: {faulty_pct}% of {made} = {faulty}; good: {made} - {faulty} = {made - faulty}.",
             f"After shipping: {made - faulty} - {shipped} = {left}."), left)


def _savings(rng):
    name = rng.choice(NAMES)
    start, weekly, weeks = rng.randint(100, 400), rng.randint(15, 60), rng.randint(6, 20)
    n_items = rng.randint(2, 5)
    price = rng.randint(20, min(90, start // n_items))
    half = rng.choice([True, False])
    total = start + weekly * weeks - n_items * price
    steps = [f"Savings grow by {weekly} x {weeks} = {weekly * weeks} dollars.",
             f"So {name} has {start} + {weekly * weeks} = {start + weekly * weeks} dollars.",
             f"The games cost {n_items} x {price} = {n_items * price} dollars.",
             f"After buying them: {start + weekly * weeks} - {n_items * price} = {total} dollars."]
    question = (f"{name} has ${start} saved and adds ${weekly} every week for {weeks} weeks. Then {name} buys "
                f"{n_items} games at ${price} each")
    if half and total % 2 == 0:
        steps.append(f"Half of {total} is {total // 2} dollars.")
        total //= 2
        question += " and gives half of the remaining money to a sister. How many dollars does the sister get?"
    else:
        question += ". How many dollars does {name} have left?".format(name=name)
    return question, tuple(steps), total


def _orchard(rng):
    rows, per_row, per_tree = rng.randint(8, 25), rng.randint(6, 18), rng.randint(20, 60)
    per_crate = rng.choice([10, 12, 15, 20, 25])
    price = rng.randint(4, 15)
    apples = rows * per_row * per_tree
    crates = apples // per_crate
    return (f"An orchard has {rows} rows of {per_row} trees, and each tree gives {per_tree} apples. The apples are "
            f"packed in crates of {per_crate}; apples that do not fill a whole crate are kept. Each full crate "
            f"sells for ${price}. How many dollars do the crates sell for?",
            (f"There are {rows} x {per_row} = {rows * per_row} trees.",
             f"They give {rows * per_row} x {per_tree} = {apples} apples.",
             f"{apples} / {per_crate} is {crates} with remainder {apples % per_crate}, so there are {crates} full crates.",
             f"The crates sell for {crates} x {price} = {crates * price} dollars."), crates * price)


TEMPLATES: dict[int, list[Callable[[random.Random], tuple[str, tuple[str, ...], int]]]] = {
    1: [_gain, _loss, _groups],
    2: [_gain_loss, _groups_plus, _share],
    3: [_change, _two_kinds, _weekly],
    4: [_boxes_needed, _discount, _trip],
    5: [_factory, _savings, _orchard],
}


def generate(count: int, seed: int, levels: tuple[int, ...] = LEVELS,
             exclude: frozenset[str] = frozenset()) -> list[WordProblem]:
    """`count` distinct problems cycling through `levels`, none of whose questions is in `exclude`."""
    rng = random.Random(seed)
    problems, seen = [], set(exclude)
    while len(problems) < count:
        level = levels[len(problems) % len(levels)]
        template = rng.choice(TEMPLATES[level])
        question, steps, answer = template(rng)
        if question in seen:
            continue
        seen.add(question)
        problems.append(WordProblem(question, steps, answer, level, template.__name__.lstrip("_")))
    return problems

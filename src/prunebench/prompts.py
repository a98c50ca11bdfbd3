"""Prompts in the model's own chat format, and the split of a response into thinking and answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A sample's `finish` where its prompt did not fit the model's context and nothing was generated
# (generation writes it; grading gives such a sample a verdict and filter of its own).
PROMPT_TOO_LONG = "prompt_too_long"


def last_box(text: str) -> tuple[int, str] | None:
    """(start, content) of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` with balanced braces.

    A box that never closes, or a bare ``\\boxed`` after the answer, is passed over for the last
    complete one. One pass matches every brace (a stack), so hostile text costs linear time.
    """
    opens = [m for m in _BOX.finditer(text)]
    if not opens:
        return None
    closing: dict[int, int] = {}
    stack: list[int] = []
    for pos in range(opens[0].end() - 1, len(text)):
        char = text[pos]
        if char == "{":
            stack.append(pos)
        elif char == "}" and stack:
            closing[stack.pop()] = pos
    for match in reversed(opens):
        brace = match.end() - 1
        if brace in closing:
            return match.start(), text[brace + 1:closing[brace]]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete box (see `last_box`), or None."""
    box = last_box(text)
    return None if box is None else box[1]


def user_message(question: str, instruction: str) -> str:
    """DeepScaleR's single user turn: the problem followed by the instruction."""
    return f"{question} {instruction}".strip()


def build_prompt(tokenizer, entry: dict, question: str, instruction: str) -> str:
    """The text the model continues: chat template, generation prompt, then the entry's response prefix."""
    messages = []
    if entry.get("system_prompt"):
        messages.append({"role": "system", "content": entry["system_prompt"]})
    messages.append({"role": "user", "content": user_message(question, instruction)})
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, chat_template=entry.get("chat_template") or None
    )
    return text + entry.get("response_prefix", "")


def end_of_turn(tokenizer) -> str:
    """The string that closes an assistant turn, so a calibration sequence looks like a finished reply."""
    return tokenizer.eos_token or ""


def conversation(tokenizer, entry: dict, question: str, instruction: str, response: str) -> str:
    """A whole exchange as the model would see it: prompt, response, end of turn.

    Built by concatenation rather than by the chat template's assistant turn, because templates of
    reasoning models (DeepSeek-R1's among them) delete the thinking from assistant turns.
    """
    return build_prompt(tokenizer, entry, question, instruction) + response + end_of_turn(tokenizer)


@dataclass(frozen=True)
class ResponseParts:
    thinking: str
    answer: str
    think_closed: bool  # False when the model has think tags and never closed the span


def split_response(text: str, think: dict | None, response_prefix: str = "") -> ResponseParts:
    """Thinking and answer parts of a response (the generated text, without the prompt).

    With think tags, the answer is what follows the last end tag; a response that never closes its
    thinking has no answer. Without think tags, the reasoning is the text before the final answer
    line (the last line that holds the answer box), and the answer is that line onward.
    """
    if think:
        start, end = think["start"], think["end"]
        full = text if start in text else response_prefix + text
        cut = full.rfind(end)
        if cut < 0:
            return ResponseParts(thinking=full, answer="", think_closed=False)
        thinking = full[:cut]
        begin = thinking.find(start)
        thinking = thinking[begin + len(start):] if begin >= 0 else thinking
        return ResponseParts(thinking=thinking.strip("\n"), answer=full[cut + len(end):].strip(), think_closed=True)
    found = last_box(text)
    if found is None:
        return ResponseParts(thinking=text, answer="", think_closed=True)
    box = found[0]
    start = text.rfind("\n", 0, box) + 1
    if not text[:start].strip():  # one paragraph: the answer is the sentence that holds the box
        start = max(text.rfind(". ", 0, box), text.rfind("? ", 0, box), text.rfind("! ", 0, box)) + 2
        start = start if start >= 2 else 0
    return ResponseParts(thinking=text[:start].rstrip(), answer=text[start:].strip(), think_closed=True)


def without_thinking(text: str, think: dict | None, response_prefix: str = "") -> str:
    """The response with its thinking removed (SGR w/o thinking): an empty think span, then the answer."""
    parts = split_response(text, think, response_prefix)
    if not think:
        return parts.answer
    opened = think["start"] in response_prefix  # the prompt already opened the span
    return ("" if opened else think["start"]) + f"\n{think['end']}\n\n{parts.answer}"

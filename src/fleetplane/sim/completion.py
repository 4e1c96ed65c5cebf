"""A chat request reduced to what decides the reply, and the replies themselves.

Both APIs parse their bodies into a `ChatRequest`; `build_choices` then decides, from the seed alone,
whether each choice calls a tool, how long it is, what it says and why it stops. The API modules only
render choices, so a streamed and a plain response to the same request cannot disagree.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from fleetplane.sim.config import ModelConfig
from fleetplane.sim.directives import NONE, Directives
from fleetplane.sim.generate import choice_rng, cut_at_stop, output_length, request_seed, text_pieces
from fleetplane.sim.toolargs import generate_arguments
from fleetplane.telemetry.tokens import count_text

Finish = Literal["end", "length", "stop_sequence", "tool_call"]
ToolMode = Literal["auto", "required", "none", "named"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    schema: Mapping[str, Any]


@dataclass(slots=True)
class ChatRequest:
    name: str
    model: ModelConfig
    body: Mapping[str, Any]
    input_tokens: int
    stream: bool = False
    n: int = 1
    max_tokens: int | None = None
    stops: list[str] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_mode: ToolMode = "auto"
    tool_name: str | None = None
    after_tool_result: bool = False
    directives: Directives = NONE


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    input: dict[str, Any]


@dataclass(slots=True)
class Choice:
    text: str
    # What a stream sends, in order: text pieces, or the pieces of a tool call's arguments.
    pieces: list[str]
    # Tokens each piece stands for; they add up to `output_tokens`.
    weights: list[int]
    tool_call: ToolCall | None
    finish: Finish
    stop_sequence: str | None
    output_tokens: int


def build_choices(chat: ChatRequest, sim_seed: int, tool_id: Callable[[random.Random], str]) -> list[Choice]:
    seed = request_seed(sim_seed, chat.name, chat.body)
    choices = [_choice(chat, choice_rng(seed, index), tool_id) for index in range(chat.n)]
    if chat.model.chunk_tokens > 1:
        for choice in choices:
            _regroup(choice, chat.model.chunk_tokens)
    return choices


def _regroup(choice: Choice, size: int) -> None:
    """Send `size` pieces per stream event, as providers that batch tokens do (and to cut event counts)."""
    pieces, weights = choice.pieces, choice.weights
    choice.pieces = ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]
    choice.weights = [sum(weights[i : i + size]) for i in range(0, len(weights), size)]


def _choice(chat: ChatRequest, rng: random.Random, tool_id: Callable[[random.Random], str]) -> Choice:
    drawn = output_length(rng, chat.model.output_tokens)
    length = chat.directives.output_tokens if chat.directives.output_tokens is not None else drawn
    cap = chat.max_tokens
    tool = _pick_tool(chat, rng)
    cut_short = False
    if tool is not None:
        call = _tool_call(tool, rng, tool_id)
        tokens = count_text(call.name) + count_text(call.arguments)
        if cap is None or tokens <= cap:
            pieces = _split(call.arguments, max(1, count_text(call.arguments)))
            return Choice("", pieces, _spread(tokens, len(pieces)), call, "tool_call", None, tokens)
        # A call that cannot fit under the cap becomes text cut at the cap, so usage never exceeds it.
        cut_short = True
    finish: Finish = "end"
    if cap is not None and (length > cap or cut_short):
        length, finish = cap, "length"
    pieces = text_pieces(rng, length)
    text = "".join(pieces)
    cut, matched = cut_at_stop(text, chat.stops)
    if matched is None:
        return Choice(text, pieces, [1] * len(pieces), None, finish, None, len(pieces))
    kept: list[str] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > len(cut):
            if size < len(cut):
                kept.append(cut[size:])
            break
        kept.append(piece)
        size += len(piece)
    tokens = count_text(cut)
    weights = [1] * len(kept)
    if kept:
        weights[-1] += tokens - len(kept)
    return Choice(cut, kept, weights, None, "stop_sequence", matched, tokens)


def _pick_tool(chat: ChatRequest, rng: random.Random) -> ToolSpec | None:
    if not chat.tools or chat.tool_mode == "none":
        return None
    by_name = {tool.name: tool for tool in chat.tools}
    if chat.tool_mode == "named" and chat.tool_name in by_name:
        return by_name[chat.tool_name]
    if chat.tool_mode == "auto" and chat.after_tool_result:
        return None
    drawn = rng.choice(chat.tools)
    wanted = chat.directives.tool
    return by_name.get(wanted, drawn) if wanted else drawn


def _tool_call(tool: ToolSpec, rng: random.Random, tool_id: Callable[[random.Random], str]) -> ToolCall:
    arguments = generate_arguments(tool.schema, rng)
    return ToolCall(tool_id(rng), tool.name, orjson.dumps(arguments).decode(), arguments)


def _split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _spread(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]

"""Deterministic model output: prose or a tool input valid against its JSON Schema.

Text is built from the request's own words so it reads like an answer to it. Tool
inputs follow the schema as pydantic emits it (``$ref``/``$defs``, ``anyOf`` with null,
enums, formats, bounds, required fields); a string with a ``pattern`` prefers tokens of
the request that match it, so ids the request mentions (``cmp-3``) are reused, and an
alternative that needs an id the request does not mention (removing a section from an
empty page) is not chosen.
"""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

from claude_sim import regex_sample

_WORD = re.compile(r"(?<![\w-])[A-Za-z][A-Za-z']{2,}(?:-[A-Za-z']+)*(?![\w-])")
_TOKEN = re.compile(r"[^\s\"'`,;:()\[\]{}<>]+")
_STOP = frozenset(
    (
        "the and for with that this from into your you are was were will have has had not but "
        "all any can our out its his her they them then than there their what when which who "
        "how why use using used via per each such also only more most other some should would "
        "could must may might shall about above below after before over under again very just"
    ).split()
)
_FILLER = ("section", "page", "content", "layout", "modern", "clean", "simple", "user", "item")
MAX_DEPTH = 8


class RequestWords:
    """Vocabulary drawn from a request: plain words for prose, raw tokens for patterns.

    Tokens of the ``focus`` texts (the request's last content block, the task at hand) come
    first when a pattern matches there, as a model attends to the task before the context;
    words of the ``salient`` texts (the last turn) steer choices among enum values and
    tagged alternatives (``add_section`` when the task says to add a section).
    """

    def __init__(
        self, texts: list[str], focus: list[str] | None = None, salient: list[str] | None = None
    ) -> None:
        words: list[str] = []
        tokens: list[str] = []
        for text in texts:
            words += [w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP]
            tokens += _TOKEN.findall(text)
        self.words = list(dict.fromkeys(words)) or list(_FILLER)
        self.tokens = list(dict.fromkeys(tokens))
        self.focus = list(dict.fromkeys(t for text in focus or [] for t in _TOKEN.findall(text)))
        self.salient = {_stem(w) for text in salient or [] for w in _WORD.findall(text.lower())}
        self.focus_words = list(
            dict.fromkeys(
                w.lower()
                for text in focus or []
                for w in _WORD.findall(text)
                if w.lower() not in _STOP
            )
        )

    def relevance(self, value: Any) -> int:
        """How many words of ``value`` (an enum value or tag) the task mentions."""
        if not isinstance(value, str):
            return 0
        return sum(_stem(w) in self.salient for w in re.split(r"[_\-\s]+", value.lower()) if w)

    def pick(self, values: list[Any], rng: random.Random) -> int:
        """The index of one of ``values``: nearly always one the task mentions most, now
        and then any (a model's occasional slip)."""
        scores = [self.relevance(v) for v in values]
        best = max(scores, default=0)
        if best > 0 and rng.random() < 0.97:
            return rng.choice([i for i, score in enumerate(scores) if score == best])
        return rng.randrange(len(values))

    def phrase(self, rng: random.Random, n: int) -> str:
        """Words about the task: mostly from the focus, some from the whole request."""
        pool = self.focus_words if self.focus_words and rng.random() < 0.8 else self.words
        return " ".join(rng.choice(pool) for _ in range(max(1, n)))

    def matching(self, pattern: str) -> list[str]:
        """Tokens that match ``pattern``: those of the focus if any match, else all."""
        try:
            rx = re.compile(pattern)
        except re.error:
            return []
        focused = [t for t in self.focus if rx.search(t)]
        return focused or [t for t in self.tokens if rx.search(t)]


_TEMPLATES = (
    "The {0} {1} should sit next to the {2}.",
    "I would keep the {0} simple and give the {1} more room.",
    "Here is a {0} {1} with a clear {2}.",
    "A {0} works well for the {1}, and the {2} can follow it.",
    "Consider moving the {0} above the {1} so the {2} stays visible.",
    "The {0} uses the same {1} as the {2}.",
    "This keeps the {0} consistent with the {1}.",
    "Next, the {0} gets a {1} {2}.",
)


def prose(words: RequestWords, rng: random.Random, target_tokens: int, count: Any) -> str:
    """Sentences about the request's words, about ``target_tokens`` long by ``count``."""
    sentences: list[str] = []
    used = 0
    while used < target_tokens:
        template = rng.choice(_TEMPLATES)
        sentence = template.format(*(rng.choice(words.words) for _ in range(3)))
        sentences.append(sentence)
        used += int(count(sentence)) + 1
    return " ".join(sentences)


class SchemaFiller:
    """Builds one value valid against a JSON Schema, resolving refs against its root;
    with ``payloads``, strings as a prompt-injected model writes them (valid or not)."""

    def __init__(
        self,
        root: dict[str, Any],
        words: RequestWords,
        rng: random.Random,
        richness: float = 1.0,
        payloads: tuple[str, ...] = (),
    ) -> None:
        self._root = root
        self._words = words
        self._rng = rng
        self._richness = richness
        self._payloads = payloads

    def fill(self, schema: dict[str, Any] | None = None, depth: int = 0) -> Any:
        schema = self._resolve(self._root if schema is None else schema)
        rng = self._rng
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][self._words.pick(list(schema["enum"]), rng)]
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged = _merge(merged, self._resolve(part))
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.fill(_merge(merged, rest), depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self._resolve(o) for o in schema[key]]
                concrete = [o for o in options if o.get("type") != "null"]
                # Keywords beside the combinator apply too: fill the chosen branch merged in.
                base = {k: v for k, v in schema.items() if k not in (key, "discriminator")}
                if concrete and (
                    depth >= MAX_DEPTH or rng.random() < 0.9 or len(concrete) == len(options)
                ):
                    # A model does not choose an operation on an id it cannot name.
                    concrete = [o for o in concrete if not self._names_unknown(o)] or concrete
                    option = concrete[self._words.pick([_tag(o) for o in concrete], rng)]
                    return self.fill(_merge(base, option), depth + 1)
                return None
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete_types = [t for t in kind if t != "null"] or ["null"]
            kind = rng.choice(concrete_types)
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return int(self._number(schema, integer=True))
        if kind == "number":
            return self._number(schema, integer=False)
        if kind == "boolean":
            return rng.random() < 0.5
        return None

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            target: Any = self._root
            for part in ref.lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra}
            seen += 1
        return schema

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        keep_optional = 0.0 if depth >= MAX_DEPTH else min(0.9, 0.5 * self._richness)
        for name, sub in props.items():
            wanted = name in required or (
                self._rng.random() < keep_optional and not self._unknown_reference(sub)
            )
            if wanted:
                out[name] = self.fill(sub, depth + 1)
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict) and depth < MAX_DEPTH:
            for _ in range(self._rng.randint(1, 3)):
                out[self._rng.choice(self._words.words)] = self.fill(extra, depth + 1)
        low = schema.get("minProperties", 0)
        while len(out) < low and isinstance(extra, dict):
            out[f"{self._rng.choice(self._words.words)}_{len(out)}"] = self.fill(extra, depth + 1)
        return out

    def _names_unknown(self, option: dict[str, Any]) -> bool:
        """The alternative requires an id (a patterned string) the request does not contain."""
        props = option.get("properties", {})
        return any(
            name in props and self._unknown_reference(props[name])
            for name in option.get("required", [])
        )

    def _unknown_reference(self, schema: dict[str, Any]) -> bool:
        """An optional patterned string (an id) that nothing in the request matches: a model
        leaves such a field out rather than invent an id."""
        schema = self._resolve(schema)
        options = [self._resolve(o) for o in schema.get("anyOf", [schema])]
        patterns = [o["pattern"] for o in options if "pattern" in o]
        return bool(patterns) and not any(self._words.matching(p) for p in patterns)

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + 4))
        prefix = schema.get("prefixItems", [])
        if depth >= MAX_DEPTH:
            count = low
        else:
            spread = max(1, round(3 * self._richness))
            count = min(high, max(low, self._rng.randint(1, spread)))
        items = schema.get("items", {})
        out: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items if isinstance(items, dict) else {}
            value = self.fill(sub, depth + 1)
            if schema.get("uniqueItems") and value in out:
                enum = self._resolve(sub).get("enum")
                fresh = [v for v in enum or [] if v not in out]
                if not fresh:
                    if len(out) >= low:
                        break
                    continue
                value = self._rng.choice(fresh)
            out.append(value)
        return out

    def _string(self, schema: dict[str, Any]) -> str:
        rng = self._rng
        if self._payloads and rng.random() < (0.1 if "pattern" in schema else 0.5):
            return rng.choice(self._payloads)
        fmt = schema.get("format")
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", 10_000))
        if "pattern" in schema:
            pattern = schema["pattern"]
            candidates = [t for t in self._words.matching(pattern) if low <= len(t) <= high]
            if candidates:
                return rng.choice(candidates)
            sampled = regex_sample.sample(pattern, rng)
            if sampled is not None and low <= len(sampled) <= high:
                return sampled
        if fmt:
            formatted = _formatted(fmt, self._words, rng)
            if formatted is not None:
                return formatted
        text = self._words.phrase(rng, rng.randint(1, max(1, round(6 * self._richness))))
        while len(text) < low:
            text += " " + self._words.phrase(rng, 3)
        return text[:high].strip() if len(text[:high].strip()) >= low else text[:high]

    def _number(self, schema: dict[str, Any], integer: bool) -> float:
        rng = self._rng
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", max(low, 0) + 100))
        if "exclusiveMinimum" in schema:
            low = low + (1 if integer else 1e-6)
        if "exclusiveMaximum" in schema:
            high = high - (1 if integer else 1e-6)
        step = schema.get("multipleOf")
        if integer:
            value: float = rng.randint(int(-(-low // 1)), int(high // 1)) if low <= high else low
        else:
            value = round(rng.uniform(low, high), 2)
            value = min(high, max(low, value))
        if step:
            first = -(-low // step) * step
            slots = int((high - first) // step)
            value = first + step * rng.randint(0, max(0, slots))
            if integer:
                value = int(value)
        return value


def _formatted(fmt: str, words: RequestWords, rng: random.Random) -> str | None:
    word = rng.choice(words.words).replace("'", "")
    day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return {
        "date-time": f"{day}T{clock}Z",
        "date": day,
        "time": f"{clock}Z",
        "email": f"{word}@example.com",
        "uri": f"https://example.com/{word}",
        "url": f"https://example.com/{word}",
        "uri-reference": f"/{word}",
        "hostname": f"{word}.example.com",
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "ipv4": ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        "duration": f"PT{rng.randint(1, 59)}M",
    }.get(fmt)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _tag(option: dict[str, Any]) -> str:
    """The words that tell a tagged alternative apart: its const properties, or its title."""
    consts = [
        str(p["const"])
        for p in option.get("properties", {}).values()
        if isinstance(p, dict) and "const" in p
    ]
    enums = [
        str(p["enum"][0])
        for p in option.get("properties", {}).values()
        if isinstance(p, dict) and len(p.get("enum", ())) == 1
    ]
    return " ".join(consts + enums) or str(option.get("title", ""))


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a, **b}
    if "properties" in a and "properties" in b:
        out["properties"] = {**a["properties"], **b["properties"]}
    if "required" in a and "required" in b:
        out["required"] = sorted(set(a["required"]) | set(b["required"]))
    return out


def break_schema(value: Any, schema: dict[str, Any], rng: random.Random) -> Any:
    """A copy of a valid tool input made invalid: a required field dropped or mistyped."""
    if not isinstance(value, dict) or not value:
        return {"unexpected": True}
    broken = dict(value)
    required = [k for k in schema.get("required", []) if k in broken]
    if required and rng.random() < 0.5:
        del broken[rng.choice(required)]
    else:
        key = rng.choice(sorted(broken))
        broken[key] = 12345 if isinstance(broken[key], str) else "not-a-valid-value"
    return broken

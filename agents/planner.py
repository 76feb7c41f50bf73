"""Which agent groups an instruction needs, decided locally from its wording.

The service skips the agents of the groups a plan leaves out. A skipped agent that was
needed spoils the page while an extra one only costs a call, so every hint counts and an
instruction without any hint runs everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from agents import planner_lexicon as lex
from agents import planner_model
from agents.planner_model import features, shipped
from agents.sentence_encoder import bundled_encoder

Group = Literal["layout", "components", "events", "styles", "animation"]
GROUPS: tuple[Group, ...] = ("layout", "components", "events", "styles", "animation")
GROUP_AGENTS: dict[Group, tuple[str, ...]] = {
    "layout": ("layout_analyzer", "layout_generator"),
    "components": ("component_analyzer", "component_generator"),
    "events": ("events_analyzer", "events_generator"),
    "styles": ("styles",),
    "animation": ("animation",),
}
ALL_AGENTS: tuple[str, ...] = (*(a for g in GROUPS for a in GROUP_AGENTS[g]), "review")

L, C, E, S, A = GROUPS
STRONG, WEAK = 1.0, 0.5
Scores = dict[Group, float]


@dataclass(frozen=True)
class Plan:
    """The groups an instruction needs and how sure the planner is of that exact set."""

    needs: tuple[Group, ...]
    confidence: float
    reasons: tuple[tuple[Group, str], ...] = ()
    """Per group kept, what decided it (the words or the score)."""

    def __post_init__(self) -> None:
        if self.needs != tuple(g for g in GROUPS if g in self.needs):
            raise ValueError(f"needs must be distinct groups in pipeline order: {self.needs}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence outside [0, 1]: {self.confidence}")

    @property
    def agents(self) -> tuple[str, ...]:
        return (*(a for g in self.needs for a in GROUP_AGENTS[g]), "review")

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(a for a in ALL_AGENTS if a not in self.agents)

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "needs": list(self.needs),
            "agents": list(self.agents),
            "confidence": round(self.confidence, 3),
        }
        if self.reasons:
            body["reasons"] = dict(self.reasons)
        return body


def _stem(word: str) -> str:
    """A crude suffix stripper, applied alike to lexicon and input ("fading" ~ "fades")."""
    w = word.removesuffix("'s")
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w[:-1] if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou" else w


_GROUP: dict[str, Group] = {g: g for g in GROUPS}
_WEIGHT = {"strong": STRONG, "weak": WEAK}
VAGUE_CONFIDENCE = 0.3
"""The most a plan for a vague instruction ("make it better") is trusted."""


def _words(text: str) -> frozenset[str]:
    return frozenset(map(_stem, text.split()))


def _by_stem(table: dict[str, str]) -> dict[str, str]:
    return {_stem(word): key for key, words in table.items() for word in words.split()}


_CUES = {
    _stem(word): (_GROUP[group], _WEIGHT[strength])
    for (group, strength), words in lex.CUES.items()
    for word in words.split()
}
_NOUNS = _by_stem(lex.NOUNS)
_VERBS = _by_stem(lex.VERBS)
_INTERACTIVE = _words(lex.INTERACTIVE)
_RESIZE = _words(lex.RESIZE)
_VAGUE = _words(lex.VAGUE)
_FILLERS, _STOP, _PLACES, _INSIDE, _DEFINITE, _INDEFINITE, _PRONOUNS, _NEGATORS = (
    frozenset(words.split())
    for words in (
        lex.FILLERS, lex.STOP, lex.PLACES, lex.INSIDE, lex.DEFINITE, lex.INDEFINITE,
        lex.PRONOUNS, lex.NEGATORS,
    )
)  # fmt: skip
_PHRASES = tuple(
    (re.compile(pattern), _GROUP[group], _WEIGHT[strength])
    for pattern, group, strength in lex.PHRASES
)
_NEW_PAGE, _TRIGGER, _EDGE, _URL, _QUOTED, _CLAUSE, _TOKEN = map(
    re.compile, (lex.NEW_PAGE, lex.TRIGGER, lex.EDGE, lex.URL, lex.QUOTED, lex.CLAUSE, lex.TOKEN)
)
_EDITS: dict[tuple[str, str], tuple[Group, ...]] = {
    ("add", "section"): (L, C),
    ("remove", "section"): (L,),
    ("change", "section"): (L, C),
    **{
        (verb, kind): (C,)
        for verb in ("add", "remove", "change", "show", "move")
        for kind in ("component", "feedback")
    },
    ("show", "feedback"): (E,),
}
_KIND_GROUP: dict[str, Group] = {"style": S, "motion": A, "behaviour": E}
_VOCAB = frozenset(
    " ".join([*lex.CUES.values(), *lex.NOUNS.values(), *lex.VERBS.values()]).split()
    + lex.INTERACTIVE.split()
    + lex.EXTRA_VOCABULARY.split()
)


def _slip(typed: str, word: str) -> bool:
    """Whether typed is word with a letter dropped or two swapped (or, if long, one wrong).

    Real words one letter apart mostly differ in their first letter or are short (right and
    bright, short and sort), so those never count as slips.
    """
    if typed[0] != word[0] or typed == word:
        return False
    if len(typed) == len(word) - 1:
        return any(word[:i] + word[i + 1 :] == typed for i in range(len(word)))
    if len(typed) == len(word):
        diff = [i for i in range(len(word)) if typed[i] != word[i]]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and sorted(typed) == sorted(word)
        return swapped or (len(diff) == 1 and len(word) >= 7)
    return len(typed) == len(word) + 1 >= 8 and _slip(word, typed)


def _fix_typo(token: str) -> str:
    """The lexicon word one slip away from an unknown token, if exactly one is."""
    stem = _stem(token)
    if len(token) < 5 or not token.isalpha() or token in _VOCAB:
        return token
    if stem in _CUES or stem in _NOUNS or stem in _VERBS:
        return token
    base, plural = (token[:-1], "s") if token.endswith("s") else (token, "")
    found = {w for w in _VOCAB if abs(len(w) - len(base)) <= 1 and _slip(base, w)}
    return found.pop() + plural if len(found) == 1 else token


def _clauses(instruction: str) -> list[list[str]]:
    """The instruction as clauses of lower-case tokens; quotes and URLs become placeholders."""
    text = _URL.sub(" urlx ", instruction.replace("’", "'"))
    text = _QUOTED.sub(" qqq ", text).lower()
    clauses = ([_fix_typo(t.strip("'-")) for t in _TOKEN.findall(c)] for c in _CLAUSE.split(text))
    return [c for c in clauses if c]


def _kind(tokens: list[str], i: int) -> str | None:
    """What a noun names; a section's name with an article ("the pricing") is the section."""
    pieces = (tokens[i], *tokens[i].split("-")[::-1])
    kind = next(filter(None, (_NOUNS.get(_stem(p)) for p in pieces)), None)
    if kind == "named":
        return "section" if i > 0 and tokens[i - 1] in _DEFINITE else "component"
    return kind


def _head(phrase: list[str]) -> str | None:
    return next(filter(None, (_kind(phrase, i) for i in reversed(range(len(phrase))))), None)


def _noun_phrase(tokens: list[str]) -> list[str]:
    return tokens[: next((i for i, t in enumerate(tokens) if t in _STOP), len(tokens))]


def _cues(part: list[str]) -> Iterator[tuple[int, Group, float]]:
    for i, token in enumerate(part):
        for piece in {token, *token.split("-")} - _PRONOUNS:
            if cue := _CUES.get(_stem(piece)):
                yield i, *cue
    text = " ".join(part)
    for pattern, group, weight in _PHRASES:
        for m in pattern.finditer(text):
            yield text[: m.start()].count(" "), group, weight


def _verb(tokens: list[str]) -> tuple[str, list[str]]:
    """The clause's edit ("add", "remove", "change", "move", "show" or "") and what follows."""
    i = 0
    while i < len(tokens) and (tokens[i] in _FILLERS or tokens[i : i + 2] in lex.WANT_TO):
        i += 2 if tokens[i : i + 2] in lex.WANT_TO else 1
    if tuple(tokens[i : i + 2]) in lex.PHRASAL_REMOVE:
        rest = tokens[i + 2 :]
        return "remove", rest[1:] if rest[:1] == ["of"] else rest
    word, rest = _stem(tokens[i]) if i < len(tokens) else "", tokens[i + 1 :]
    if word in lex.PLACING:
        return lex.PLACING[word][bool(rest) and rest[0] in _DEFINITE], rest
    return _VERBS.get(word, ""), rest


def _added(phrase: list[str]) -> Iterator[Group]:
    """Groups that a new thing described by a noun phrase needs."""
    kind = _head(phrase) or ""
    if kind in _KIND_GROUP:
        yield _KIND_GROUP[kind]
    yield from _EDITS.get(("add", kind), ())
    if any(_stem(t) in _INTERACTIVE for t in phrase):
        yield E


def _after(tokens: list[str], preps: frozenset[str]) -> Iterator[str | None]:
    """What each noun phrase after one of preps ends in, counting section names as sections."""
    for j, token in enumerate(tokens):
        if token in preps and (phrase := _noun_phrase(tokens[j + 1 :])):
            kind = _NOUNS.get(_stem(phrase[-1]))
            yield "section" if kind == "named" else kind


def _structure(tokens: list[str]) -> Iterator[tuple[Group, float]]:
    """Groups implied by how the clause's verb acts on its object ("add a section")."""
    for i, token in enumerate(tokens):
        if _stem(token) in _RESIZE and tokens[i - 1 : i] != ["full"]:
            resized = _head(tokens[:i]) or _head(_noun_phrase(tokens[i + 1 :]))
            yield (L if resized == "section" else S), STRONG
        # "with a switch" and "into a hamburger menu" bring in something new, while
        # "split into two columns" rearranges what is there.
        if token in ("with", "into") and tokens[i + 1 : i + 2] and tokens[i + 1] in _INDEFINITE:
            brought = _noun_phrase(tokens[i + 2 :])
            rearranged = _head(brought) == "section"
            yield from ((g, WEAK) for g in _added(brought) if not (rearranged and g == C))
    verb, rest = _verb(tokens)
    phrase = _noun_phrase(rest)
    tail = rest[len(phrase) :]
    kind, cued = _head(phrase), any(_cues(tokens))
    if verb == "add":
        yield from ((g, STRONG) for g in _added(phrase))
        # Placed between sections rather than inside one, it is a section of its own.
        if "section" in _after(tail, _PLACES) or _EDGE.search(" ".join(tail)):
            yield L, WEAK
    elif verb and kind in _KIND_GROUP:
        yield _KIND_GROUP[kind], STRONG
    elif verb == "move" and (kind == "section" or cued or not kind):
        named = any(_NOUNS.get(_stem(t)) in ("section", "named") for t in tokens)
        yield L, STRONG if named else WEAK
        # Moved into another section, it becomes that section's content.
        if "section" in _after(tail, _INSIDE):
            yield C, WEAK
    elif verb and kind:
        # Changing something to a look ("all buttons to pill shape") is a style edit only.
        target = next((tail[j + 1 :] for j, t in enumerate(tail) if t in ("to", "into")), [])
        restyled = verb == "change" and {g for _, g, _ in _cues(target)} == {S}
        yield from ((g, STRONG) for g in ((S,) if restyled else _EDITS.get((verb, kind), ())))
    # Adding or changing an unnamed thing is most likely content, unless the clause says what.
    if verb in ("add", "remove", "change", "show") and kind is None and not cued:
        yield C, WEAK


def _note(scores: Scores, group: Group, weight: float) -> None:
    scores[group] = max(scores.get(group, 0.0), weight)


def _mute(main: Scores) -> Group | None:
    """The group a trigger clause does not add: a motion played when something happens needs
    no new behaviour, and behaviour started by a hover needs no motion."""
    only = set(main)
    return E if only == {A} else A if only == {E} else None


def _read(instruction: str, has_page: bool | None) -> tuple[Scores, float, bool]:
    """The lexicon's reading: each group it recognises with its weight, how sure it is of
    that set, and whether the instruction is vague ("improve the page")."""
    clauses = _clauses(instruction)
    main: Scores = {}
    trigger: Scores = {}
    negated: Scores = {}
    for tokens in clauses:
        text = " ".join(tokens)
        trigger_at = text[: m.start()].count(" ") if (m := _TRIGGER.search(text)) else len(tokens)
        for part, bucket in ((tokens[:trigger_at], main), (tokens[trigger_at:], trigger)):
            for i, group, weight in _cues(part):
                window = set(part[max(0, i - 3) : i])
                # "no more animations" asks to remove them; "without animations" rules them out.
                ruled_out = bool(window & _NEGATORS) and not window & {"more", "longer"}
                _note(negated if ruled_out else bucket, group, weight)
        for group, weight in _structure(tokens[:trigger_at]):
            _note(main, group, weight)
    new_page = has_page is False or bool(_NEW_PAGE.search(" ".join(map(" ".join, clauses))))
    muted = None if new_page else _mute(main)
    scores = dict(main)
    for group, weight in trigger.items():
        if group != muted:
            _note(scores, group, weight)
    if not scores and not new_page:
        scores = negated  # only ruling something out is asking to remove it
    if new_page:
        scores |= {L: STRONG, C: STRONG, S: STRONG}
        if any(_stem(t) in _INTERACTIVE for tokens in clauses for t in tokens):
            scores[E] = STRONG
    # Nothing to read at all is as vague as an instruction gets.
    vague = not clauses or any(_stem(t) in _VAGUE for tokens in clauses for t in tokens)
    confidence = 0.95 - 0.12 * sum(w < STRONG for w in scores.values()) - 0.2 * vague
    confidence -= 0.1 * bool(negated or muted in trigger) + 0.04 * max(0, len(clauses) - 2)
    return scores, min(0.99, max(0.05, confidence)), vague


def lexicon_plan(instruction: str, *, has_page: bool | None = None) -> Plan:
    """The lexicon's plan: cues, phrases and sentence structure, leaning towards more
    groups when unsure; every group when it recognises none."""
    scores, confidence, vague = _read(instruction, has_page)
    if not scores:
        return Plan(GROUPS, 0.1 if vague else 0.2)
    return Plan(tuple(g for g in GROUPS if g in scores), confidence)


def _verdict(instruction: str, has_page: bool | None = None) -> planner_model.Verdict:
    """What the model's plans take from the lexicon: the groups it names (none when it
    recognises nothing) and whether it found the instruction vague with nothing named."""
    scores, _, vague = _read(instruction, has_page)
    return tuple(g for g in GROUPS if g in scores), vague and not scores


def _features(instruction: str, verdict: planner_model.Verdict | None = None) -> list[str]:
    """The learned model's features: the words, and the lexicon's verdict on them
    (``verdict``: from the wording alone, if already read)."""
    named, vague = verdict or _verdict(instruction)
    found = named or ["vague" if vague else "nothing"]
    new = "new" if _NEW_PAGE.search(instruction.lower()) else "edit"
    return features(instruction, [*found, new], _stem)


def _embed(instruction: str) -> npt.NDArray[np.float64]:
    return bundled_encoder().embed(instruction).astype(np.float64)


def _known(instruction: str) -> float:
    return bundled_encoder().known_share(instruction)


def train_shipped_model() -> None:
    """Train the model on the shipped rows and write it where ``shipped`` finds it."""
    teaching, calibrating = planner_model.training_rows(), planner_model.calibration_rows()
    model = planner_model.train(teaching, calibrating, _features, _verdict, _embed, _known)
    planner_model.save(model, planner_model.rows_digest(teaching, calibrating))


def plan_instruction(instruction: str, *, has_page: bool | None = None) -> Plan:
    """The groups an instruction needs: each group the learned model scores at or above
    its calibrated threshold (a lower one where the lexicon names the group), a new page's
    groups when the model sees a new page, everything when it sees an instruction needing
    every group, the lexicon a vague one or too few of its words are ones the model knows,
    and the likeliest group when nothing else is kept.

    has_page=False means the request carries no page (a new page): then layout, components
    and styles are always included. None or True: decide from the wording only.
    """
    model = shipped(_features, _verdict, _embed, _known)
    wording = _verdict(instruction)
    named, vague = wording if has_page is not False else _verdict(instruction, False)
    feats = _features(instruction, wording)
    probs, known = model.probabilities(feats, _embed(instruction)), _known(instruction)
    plan = planner_model.kept(
        probs[None],
        np.array([[g in named for g in GROUPS]]),
        np.array([vague]),
        np.array([known]),
        model.thresholds,
    )[0]
    if has_page is False:
        plan |= planner_model.NEW_PAGE_NEEDS
    reasons = {
        g: _reason(model, feats, probs, known, i, (named, vague), has_page)
        for i, g in enumerate(GROUPS)
        if plan[i]
    }
    sure = float(np.prod([max(p, 1 - p) for p in probs[: len(GROUPS)]]))
    # A vague instruction runs everything because its wording names nothing, an unread one
    # because the model barely knows its words: however sure the scores, they are a guess.
    guess = vague or known < model.thresholds.known
    confidence = min(VAGUE_CONFIDENCE if guess else 0.99, sure)
    return Plan(tuple(reasons), confidence, tuple(reasons.items()))


def _reason(
    model: planner_model.GroupModel,
    feats: list[str],
    probs: npt.NDArray[np.float64],
    known: float,
    i: int,
    verdict: planner_model.Verdict,
    has_page: bool | None,
) -> str:
    """Why group ``i`` is in the plan: its score, a new page, a vague instruction, wording
    the model barely knows, or, when nothing else is kept, being the likeliest group."""
    named, vague = GROUPS[i] in verdict[0], verdict[1]
    cut = model.thresholds
    threshold = cut.named if named else cut.unnamed
    score = f"score {probs[i]:.2f} vs threshold {threshold:.2f}"
    score += ", named by the lexicon" if named else ""
    if probs[i] >= threshold:
        words = ", ".join(model.reasons(feats, i))
        return f"{score}: {words}" if words else score
    if planner_model.NEW_PAGE_NEEDS[i]:
        if has_page is False:
            return "a new page always needs it"
        if probs[planner_model.NEW_PAGE] >= cut.new_page:
            page = probs[planner_model.NEW_PAGE]
            return f"a new page needs it (new-page score {page:.2f} vs {cut.new_page:.2f})"
    if vague:
        return "a vague instruction: every group runs"
    if known < cut.known:
        return (
            f"{known:.0%} of its words are known to the model, under {cut.known:.0%}: "
            "every group runs"
        )
    if probs[planner_model.EVERY] >= cut.every:
        every = probs[planner_model.EVERY]
        return f"it reads as needing every group (score {every:.2f} vs {cut.every:.2f})"
    return f"the likeliest group, since no other reaches its threshold ({score})"


@dataclass(frozen=True)
class PlannerReport:
    """Plans scored against labelled sets; recall is the share of needed groups kept."""

    n: int
    exact_accuracy: float
    recall: float
    precision: float
    agent_calls_saved: float
    group_recall: dict[Group, float]
    mistakes: tuple[tuple[str, tuple[str, ...], tuple[Group, ...]], ...]


def evaluate(
    rows: Iterable[tuple[str, Sequence[str]]],
    planner: Callable[[str], Plan] = plan_instruction,
) -> PlannerReport:
    """Plan every (instruction, needed groups) row with ``planner`` and score the plans
    against the labels."""
    n = exact_sets = kept = needed = predicted = calls = 0
    hits: dict[Group, list[int]] = {g: [0, 0] for g in GROUPS}
    mistakes = []
    for instruction, needs in rows:
        if unknown := set(needs) - set(GROUPS):
            raise ValueError(f"unknown groups {sorted(unknown)} for {instruction!r}")
        plan = planner(instruction)
        got, want = set(plan.needs), set(needs)
        n, exact_sets, calls = n + 1, exact_sets + (got == want), calls + len(plan.agents)
        kept, needed, predicted = kept + len(got & want), needed + len(want), predicted + len(got)
        for group in GROUPS:
            hits[group][0] += group in want and group in got
            hits[group][1] += group in want
        if got != want:
            mistakes.append((instruction, tuple(needs), plan.needs))
    return PlannerReport(
        n=n,
        exact_accuracy=exact_sets / n if n else 0.0,
        recall=kept / needed if needed else 1.0,
        precision=kept / predicted if predicted else 1.0,
        agent_calls_saved=1 - calls / (len(ALL_AGENTS) * n) if n else 0.0,
        group_recall={g: hit / total for g, (hit, total) in hits.items() if total},
        mistakes=tuple(mistakes),
    )

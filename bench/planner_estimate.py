"""What the planner should score on a split it has never seen, estimated before one is
spent: leave one calibration split out, calibrate on the others, score the one left out.

The calibration rows are the earlier blind test splits, each written before the change it
measured; leaving one out trains and calibrates exactly as ``train-planner`` does on the
rest, so the split left out is as unseen as a new blind split would be. A design change is
judged here, never on the current test split, which is read once, after. Several recall
targets are scored from one fit per split (about 3.5 minutes each on this machine, one
core; ``--jobs`` fits that many splits at once).

    python -m bench.planner_estimate [--targets 0.993,0.995,0.996] [--jobs 2]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from agents import planner, planner_model
from agents.planner import GROUP_AGENTS, GROUPS
from bench import report

AGENTS = 9
COST = np.array([len(GROUP_AGENTS[g]) for g in GROUPS])


@dataclass(frozen=True)
class SplitScore:
    """The plans of one split left out, at one target."""

    split: str
    rows: int
    recall: float
    exact: float
    saved: float


def score(model: planner_model.GroupModel, rows: list[planner_model.Row]) -> tuple[float, ...]:
    """Recall, exact sets and agent calls saved of ``model``'s plans for ``rows``, planned
    as ``plan_instruction`` plans an instruction with no page said either way."""
    texts = [text for text, _ in rows]
    verdicts = [verdict(text) for text in texts]
    probs = np.array([model.probabilities(feats(t), embed(t)) for t in texts])
    named = np.array([[g in groups for g in GROUPS] for groups, _ in verdicts])
    vague = np.array([v for _, v in verdicts], dtype=bool)
    known = np.array([planner._known(t) for t in texts])
    plans = planner_model.kept(probs, named, vague, known, model.thresholds)
    needed = np.array([[g in needs for g in GROUPS] for _, needs in rows])
    recall = (plans & needed).sum() / needed.sum()
    exact = (plans == needed).all(axis=1).mean()
    saved = 1 - ((plans * COST).sum(axis=1) + 1).mean() / AGENTS
    return float(recall), float(exact), float(saved)


@functools.cache
def feats(text: str) -> list[str]:
    return planner._features(text)


@functools.cache
def verdict(text: str) -> planner_model.Verdict:
    return planner._verdict(text)


@functools.cache
def embed(text: str) -> planner_model.Floats:
    return planner._embed(text)


def left_out(name: str, targets: tuple[float, ...]) -> list[SplitScore]:
    """Split ``name``'s scores at each target, the model fitted on everything else."""
    splits = planner_model.calibration_splits()
    held = splits[name]
    rest = [row for other, rows in splits.items() if other != name for row in rows]
    calibrating = planner_model.prepare(
        planner_model.training_rows(), rest, feats, verdict, embed, planner._known
    )
    scores = [SplitScore(name, len(held), *score(calibrating.at(t), held)) for t in targets]
    print(name, scores, flush=True)
    return scores


def estimate(targets: list[float], jobs: int = 1) -> dict[float, list[SplitScore]]:
    """Each target's scores on each calibration split, left out in turn, ``jobs`` splits
    fitted at once (each in its own process, so the numbers do not depend on it)."""
    names = list(planner_model.calibration_splits())
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        per_split = list(pool.map(left_out, names, [tuple(targets)] * len(names)))
    return {t: [scores[i] for scores in per_split] for i, t in enumerate(targets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="0.993,0.995,0.996")
    parser.add_argument("--jobs", type=int, default=1, help="splits fitted at once")
    args = parser.parse_args()
    scores = estimate([float(t) for t in args.targets.split(",")], args.jobs)
    rows = []
    for target, per_split in scores.items():
        recall = [s.recall for s in per_split]
        rows.append(
            [
                f"{target:.3f}" + (" (shipped)" if target == planner_model.RECALL_TARGET else ""),
                f"{np.mean(recall):.3f}",
                f"{min(recall):.3f}",
                f"{np.mean([s.exact for s in per_split]):.3f}",
                f"{np.mean([s.saved for s in per_split]):.1%}",
            ]
        )
    table = report.table(
        ["recall target", "recall", "worst split", "exact-set", "agent calls saved"], rows
    )
    per_split = next(iter(scores.values()))
    names = ", ".join(f"{s.split} ({s.rows})" for s in per_split)
    body = (
        "Each calibration split left out in turn (`python -m bench.planner_estimate`): the "
        "model trained and its thresholds set on the training rows and the other splits, "
        f"then scored on the one left out; means over the {len(per_split)} splits "
        f"({names}). An estimate of the blind split's numbers, made without reading it.\n\n"
        f"{table}"
    )
    report.write_section("planner-estimate", "Planner: leave-one-split-out estimate", body)
    print(body)


if __name__ == "__main__":
    main()

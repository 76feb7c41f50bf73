"""How far claude_sim's token counter is from a real Claude tokenizer.

The reference is the last tokenizer Anthropic published (``tokenizer.json`` inside the
``anthropic`` 0.30 wheel, Claude 2/3 era), run with the ``tokenizers`` package in a
separate virtualenv so the project does not depend on either:

    python3 -m venv /tmp/tokref
    /tmp/tokref/bin/pip install anthropic==0.30.0 tokenizers starlette
    PYTHONPATH=. /tmp/tokref/bin/python -m bench.tokenizer_error
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from bench import report
from claude_facts.tokens import count_text

SHARED = report.ROOT.parent / "shared"


def corpus() -> list[tuple[str, str]]:
    """(kind, text) samples: prose paragraphs, user instructions, JSON schema chunks."""
    samples: list[tuple[str, str]] = []
    for path in sorted((SHARED / "notes").glob("*.md")) + sorted((SHARED / "seed").glob("*.md")):
        samples += [("prose", p) for p in path.read_text().split("\n\n") if len(p) > 80]
    for line in (SHARED / "datasets" / "instructions.jsonl").read_text().splitlines():
        samples.append(("instruction", json.loads(line)["instruction"]))
    schema = (SHARED / "kuberay" / "rayservice.v1.openapi.json").read_text()
    compact = json.dumps(json.loads(schema))[:60_000]
    samples += [("json", compact[i : i + 2_000]) for i in range(0, len(compact), 2_000)]
    return samples


def main() -> None:
    import anthropic  # the 0.30 wheel, which ships the tokenizer file
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(Path(anthropic.__file__).parent / "tokenizer.json"))
    rows = []
    for kind in ("prose", "instruction", "json"):
        errors = []
        ours = theirs = 0
        for k, text in corpus():
            if k != kind:
                continue
            real = len(reference.encode(text).ids)
            mine = count_text(text)
            ours, theirs = ours + mine, theirs + real
            errors.append((mine - real) / real)
        q = statistics.quantiles(errors, n=10)
        rows.append(
            [
                kind,
                len(errors),
                f"{ours / theirs:.3f}",
                f"{statistics.median(errors):+.1%}",
                f"{statistics.mean(abs(e) for e in errors):.1%}",
                f"{q[0]:+.1%} / {q[-1]:+.1%}",
            ]
        )
    body = (
        "`claude_facts.tokens.count_text` against the Claude 2/3 `tokenizer.json` (the last one "
        "Anthropic published) on the shared notes, the instruction dataset and the KubeRay "
        "schema. Newer models' tokenizers count about 30% more for the same text (Anthropic's "
        "model pages), which a gateway learns from reported usage.\n\n"
        + report.table(
            [
                "text",
                "samples",
                "total ours / theirs",
                "median error",
                "mean abs error",
                "p10 / p90",
            ],
            rows,
        )
    )
    report.write_section(
        "tokenizer_error", "claude_sim: token counter against a real tokenizer", body
    )
    print("\n".join(" | ".join(map(str, r)) for r in rows))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

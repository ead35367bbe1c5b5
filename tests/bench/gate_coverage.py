"""The classifier's gate: which mail is read at all, per file.

    ./run python tests/bench/gate_coverage.py [--rules PATH] [--show N] FILE [FILE ...]

Mail with none of ``[settings] job_words`` (and, when short, none of ``short_mail_words``),
and none of the words the model learnt open the gate, is "other" without a rule or the
model looking at it. That keeps a whole inbox cheap, and it is also where a rejection can
be lost for good: no score can rescue mail that is never read. For each labelled .jsonl
file this prints how many rejections the gate never reads; for each .mbox file (ordinary
mail), how many messages it reads; and how many of either only a learnt word opened.
The model's learnt words exclude every word of the ordinary mail it was trained on, so
on that mail they open nothing: score mail the model was not trained on to see what
they cost. ``--show N`` prints the first N unread rejections' subjects and openings, to
see what wording the gate lacks.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from onward.tasks.classify import load_rules
from onward.tasks.classify.evaluate import ORDINARY, REJECTION, iter_labelled
from onward.tasks.classify.reading import _read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--rules", type=Path, default=None, help="classifier rules (TOML)")
    ap.add_argument("--show", type=int, default=0, metavar="N")
    args = ap.parse_args()
    rules = load_rules(args.rules)
    total: Counter[str] = Counter()
    # per file: rejections the gate never reads, or ordinary messages it reads
    gated: Counter[str] = Counter()
    learnt_only: Counter[str] = Counter()
    shown = 0
    for item in iter_labelled(args.files):
        if item.truth not in (REJECTION, ORDINARY):
            continue
        reading = _read(item.message, rules)
        is_read = reading.job_mail
        learnt_only[item.source] += reading.learned_gate_only
        total[item.source] += 1
        if item.truth == REJECTION and not is_read:
            gated[item.source] += 1
            if shown < args.show:
                shown += 1
                opening = " ".join(item.message.new_text.split())[:110]
                print(f"  unread: {item.id}  {item.message.subject!r}  {opening}")
        elif item.truth == ORDINARY and is_read:
            gated[item.source] += 1
    rejections = sum(n for s, n in total.items() if not s.endswith(".mbox"))
    ordinary = sum(n for s, n in total.items() if s.endswith(".mbox"))
    for source in sorted(total):
        what = "ordinary mail read" if source.endswith(".mbox") else "rejections never read"
        print(
            f"{source:<42} {what}: {gated[source]} of {total[source]} "
            f"(opened by a learnt word only: {learnt_only[source]})"
        )
    never = sum(n for s, n in gated.items() if not s.endswith(".mbox"))
    ordinary_read = sum(n for s, n in gated.items() if s.endswith(".mbox"))
    print(
        f"all: rejections never read {never} of {rejections}; "
        f"ordinary read {ordinary_read} of {ordinary}"
    )


if __name__ == "__main__":
    main()

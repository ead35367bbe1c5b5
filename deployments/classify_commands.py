"""``onward classify`` and ``onward eval``: the classifier from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from onward.tasks.errors import ConfigError, MalformedMessageError, OnwardError

SubParsers = argparse._SubParsersAction

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
USER_RULES_FILE = "classifier.toml"


def register(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``classify`` and ``eval`` to the ``onward`` command line."""
    p = subparsers.add_parser(
        "classify",
        help="label messages (rejection, interview, offer, ...) and say why",
        description="Classify .eml files, .mbox files or JSONL rows "
        '{"id","subject","from","body"}; writes one JSON line per message.',
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help=".eml or .mbox files")
    p.add_argument(
        "--jsonl", metavar="FILE", help='JSONL rows {"id","subject","from","body"}; - for stdin'
    )
    _common(p)
    p.set_defaults(func=cmd_classify)

    p = subparsers.add_parser(
        "eval",
        help="precision / recall / F1 for rejections over labelled mail",
        description="Score the classifier on labelled JSONL files (corpus/README.md schema); "
        ".mbox files count as ordinary mail that must not be taken for a rejection.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".jsonl or .mbox files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--mistakes",
        type=_count,
        default=None,
        metavar="N",
        help="list up to N mistakes (text output; default 20; with --leave-one-source-out, "
        "N per fold, none unless asked)",
    )
    p.add_argument(
        "--leave-one-source-out",
        action="store_true",
        help="for each labelled file, fit on the others and score it (generalisation, not fit)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="with --leave-one-source-out: train N folds at once (one process each)",
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser(
        "train",
        help="train the learned half of rejection detection from labelled mail",
        description="Train the classifier's linear model from labelled JSONL files "
        "(corpus/README.md schema) and ordinary mail (.mbox); writes the model as JSON "
        "with what it was trained on. The packaged model is config/classifier_model.json.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".jsonl or .mbox files")
    p.add_argument("--out", type=Path, required=True, metavar="PATH", help="the model file")
    p.add_argument("--rules", type=Path, metavar="PATH", help="classifier rules to train with")
    p.set_defaults(func=cmd_train)


def _count(text: str) -> int:
    """A whole number of at least 0 (argparse type)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return n


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules",
        type=Path,
        metavar="PATH",
        help="your classifier rules (default [classifier] rules_file, else "
        f"$ONWARD_HOME/{USER_RULES_FILE} when present)",
    )
    p.add_argument(
        "--me",
        action="append",
        default=[],
        metavar="ADDR",
        help="an address of yours (repeatable); mail from it is never a rejection",
    )


def _rules_and_me(args: argparse.Namespace) -> tuple[Any, tuple[str, ...]]:
    from onward.tasks.classify import load_rules

    settings = getattr(args, "settings", None)
    rules_file: Path | None = args.rules
    if rules_file is None and settings is not None:
        # The same rules the worker uses: [classifier] rules_file, else the home's file.
        rules_file = settings.classifier_rules_file
        if rules_file is not None and not rules_file.is_file():
            raise ConfigError(f"[classifier] rules_file {rules_file}: no such file")
    elif rules_file is not None and not rules_file.is_file():
        raise ConfigError(f"--rules {rules_file}: no such file")
    mine = tuple(args.me)
    if settings is not None:
        mine += tuple(settings.user.addresses)
    return load_rules(rules_file), mine


def cmd_classify(args: argparse.Namespace) -> int:
    """Write one JSON line per message: label, confidence, reasons, company, role, contact."""
    if not args.files and not args.jsonl:
        return _usage("classify needs FILE arguments or --jsonl FILE (- for stdin)")
    for path in args.files:
        if not path.is_file():
            return _usage(f"{path}: no such file")
        if path.suffix not in (".eml", ".mbox", ".msg", ""):
            return _usage(f"{path}: expected an .eml or .mbox file (JSONL goes after --jsonl)")
    if args.jsonl and args.jsonl != "-" and not Path(args.jsonl).is_file():
        return _usage(f"--jsonl {args.jsonl}: no such file")
    try:
        rules, mine = _rules_and_me(args)
    except ConfigError as exc:
        return _usage(str(exc))

    from onward.tasks.classify import classify

    failed = False
    out = sys.stdout
    for item_id, message, error in _inputs(args):
        if message is None:
            print(f"onward: {item_id}: {error}", file=sys.stderr)
            failed = True
            continue
        verdict = classify(message, rules=rules, user_addresses=mine)
        out.write(json.dumps({"id": item_id, **verdict.to_dict()}, ensure_ascii=False) + "\n")
    out.flush()
    return EXIT_FAILED if failed else EXIT_OK


def _inputs(args: argparse.Namespace) -> Iterator[tuple[str, Any, str | None]]:
    """(id, Message or None, error) for every input, in the order given."""
    from onward.tasks.classify.evaluate import read_mbox
    from onward.tasks.mail.parse import parse_message

    for path in args.files:
        if path.suffix == ".mbox":
            for msg_id, message in read_mbox(path):
                yield msg_id, message, None
            continue
        try:
            yield str(path), parse_message(path.read_bytes()), None
        except (OSError, MalformedMessageError) as exc:
            yield str(path), None, str(exc)
    if args.jsonl:
        if args.jsonl == "-":
            yield from _jsonl_rows(sys.stdin, "stdin")
        else:
            with open(args.jsonl, encoding="utf-8") as stream:
                yield from _jsonl_rows(stream, args.jsonl)


def _jsonl_rows(stream: IO[str], origin: str) -> Iterator[tuple[str, Any, str | None]]:
    from onward.tasks.classify import message_from_text

    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            body = row["body"]
            if not isinstance(body, str):
                raise TypeError("body must be a string")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            yield f"{origin}:{number}", None, f'not a row {{"id","subject","from","body"}} ({exc})'
            continue
        row_id = str(row.get("id") or f"{origin}:{number}")
        yield row_id, message_from_text(row.get("subject"), row.get("from"), body, key=row_id), None


def cmd_eval(args: argparse.Namespace) -> int:
    """Print rejection precision / recall / F1 and the confusion table."""
    for path in args.files:
        if not path.is_file():
            return _usage(f"{path}: no such file")
        if path.suffix not in (".jsonl", ".json", ".mbox"):
            return _usage(f"{path}: expected a labelled .jsonl file or an .mbox file")
    from onward.tasks.classify.evaluate import evaluate, format_report

    if args.leave_one_source_out:
        return _eval_held_out(args)
    try:
        rules, mine = _rules_and_me(args)
        report = evaluate(args.files, rules=rules, user_addresses=mine)
    except ConfigError as exc:
        return _usage(str(exc))
    except (OSError, OnwardError) as exc:
        print(f"onward: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, show_mistakes=20 if args.mistakes is None else args.mistakes))
    return EXIT_OK


def _eval_held_out(args: argparse.Namespace) -> int:
    """``onward eval --leave-one-source-out``: one fold per labelled file."""
    from onward.tasks.classify.holdout import format_folds, leave_one_source_out

    try:
        rules, mine = _rules_and_me(args)
        folds = leave_one_source_out(
            args.files, rules=rules, user_addresses=mine, jobs=max(1, args.jobs)
        )
    except ConfigError as exc:
        return _usage(str(exc))
    except (OSError, OnwardError) as exc:
        print(f"onward: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not folds:
        return _usage("--leave-one-source-out needs labelled .jsonl files")
    ordinary = _ordinary_rows(args.files)
    if args.json:
        rows = [
            {
                "source": f.source,
                "rows": f.rows,
                "rejections": f.rejections,
                "precision": round(f.precision, 4),
                "recall": round(f.recall, 4),
                "false_alarms": f.fp,
                "misses": f.fn,
                "bar": f.bar,
                "ordinary_false_alarms": f.ordinary_false_alarms,
                "mistakes": [m.to_dict() for m in f.mistakes],
            }
            for f in folds
        ]
        print(json.dumps({"folds": rows, "ordinary_rows": ordinary}, indent=2))
    else:
        print(
            format_folds(
                folds, ordinary, learned=rules.model is not None, show_mistakes=args.mistakes or 0
            )
        )
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """Write a model trained on every file given; the same files give the same model."""
    from onward.tasks.classify import load_rules
    from onward.tasks.classify.train import train_from_files

    for path in args.files:
        if not path.is_file():
            return _usage(f"{path}: no such file")
    try:
        model = train_from_files(args.files, load_rules(args.rules))
    except ConfigError as exc:
        return _usage(str(exc))
    args.out.write_text(model.to_json(), encoding="utf-8")
    read = model.provenance.get("examples_read")
    print(
        f"{args.out}: {len(model.weights)} weights from {read} messages read, "
        f"{len(model.gate)} words that open the gate"
    )
    return EXIT_OK


def _ordinary_rows(paths: list[Path]) -> int:
    from onward.tasks.classify.evaluate import read_mbox

    return sum(1 for p in paths if p.suffix == ".mbox" for _ in read_mbox(p))


def _usage(message: str) -> int:
    print(f"onward: {message}", file=sys.stderr)
    return EXIT_USAGE

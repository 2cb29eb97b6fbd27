"""Command line: argument parsing only; the work is done by the library.

    gardener score MODEL [--criterion C] [--keep K] [--json]
    gardener prune MODEL --keep K --output-dir DIR
    gardener push  MODEL --keep 2 4 6 [--dry-run --output-dir DIR]   (= scripts/push_pruned.py)
    gardener finetune MODEL --train-dir DIR --eval-dir DIR --output-dir OUT   (= scripts/finetune.py)
    gardener evaluate MODEL DATA [--output-dir DIR]
    gardener study [MODEL] --output-dir DIR   (= scripts/reproduce.py)

Errors caused by the input print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from ._io import atomic_folder, check_destination
from .errors import GardenerError

logger = logging.getLogger("gardener_hf")

DEFAULT_MODEL = str(Path(__file__).parent / "default_model")
EMBEDDED_NAME = "gardener_hf/default_model"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return value


def _add_source_args(p: argparse.ArgumentParser, revision_flag: str = "--revision") -> None:
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="Hub repo id (e.g. MCG-NJU/videomae-base) or local folder; default: the tiny embedded VideoMAE",
    )
    p.add_argument(revision_flag, dest="revision", default=None, help="Hub revision (branch, tag or commit) of the source model")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the cached `hf auth login`)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or info messages")


def _add_criterion_args(p: argparse.ArgumentParser) -> None:
    from .scoring import available_criteria

    criteria = available_criteria()
    p.add_argument(
        "--criterion",
        default="entropy",
        metavar="NAME",
        help="block score: " + "; ".join(f"{k}: {v}" for k, v in criteria.items()) + " (default: entropy)",
    )
    p.add_argument("--bins", type=_positive_int, default=None, help="histogram bins for --criterion entropy-hist (default 1024)")
    p.add_argument("--seed", type=_positive_int, default=None, help="seed for --criterion random (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gardener", description="Data-free block pruning of Hugging Face ViTs (Gardener).")
    parser.add_argument("--version", action="version", version=f"gardener_hf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score every block from the weights alone and print a table")
    _add_source_args(score)
    _add_criterion_args(score)
    score.add_argument("--keep", type=_positive_int, default=None, help="mark which blocks --keep K would keep")
    score.add_argument("--json", action="store_true", help="print a JSON document instead of a table")

    prune = sub.add_parser("prune", help="prune and save a model folder (no card, no push)")
    _add_source_args(prune)
    _add_criterion_args(prune)
    _add_plan_args(prune, multi=False)
    prune.add_argument("--output-dir", required=True, help="folder to write the pruned model to")
    prune.add_argument("--overwrite", action="store_true", help="replace --output-dir if it exists")

    push = sub.add_parser("push", help="prune, stage with a model card, and push one repo per variant", allow_abbrev=False)
    add_push_args(push)

    # Parsed by finetune.py's HfArgumentParser (every TrainingArguments option); listed here for --help.
    sub.add_parser("finetune", help="finetune a (pruned) VideoMAE on video files with transformers.Trainer", add_help=False)

    # Parsed by gardener_hf.study (its own options); listed here for --help.
    sub.add_parser("study", help="the paper's study on a checkpoint: scores, oracle, rank correlations, pruning sweep", add_help=False)

    evaluate = sub.add_parser("evaluate", help="top-1 / top-5 / mean per-class accuracy of a VideoMAE classifier")
    _add_source_args(evaluate)
    evaluate.add_argument("data", help="videos: a folder with one subfolder per class, or a CSV/JSON list of (path, label)")
    evaluate.add_argument("--output-dir", default=None, help="write eval_results.json and confusion_matrix.png here")
    evaluate.add_argument("--batch-size", type=_positive_int, default=8)
    evaluate.add_argument("--clips", type=_positive_int, default=1, help="clips per video (softmax averaged)")
    evaluate.add_argument("--sampling", default="start", choices=["start", "uniform"], help="where clips are taken")
    evaluate.add_argument("--frame-stride", type=_positive_int, default=4)
    evaluate.add_argument("--num-workers", type=int, default=-1, help="DataLoader workers (default: CPUs - 1, at most 8)")
    evaluate.add_argument("--strict", action="store_true", help="an unreadable video is an error, not skipped")
    return parser


def _add_plan_args(p: argparse.ArgumentParser, *, multi: bool) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--keep",
        type=_positive_int,
        nargs="+" if multi else None,
        help="keep the K best blocks" + (" (several values: one variant each)" if multi else ""),
    )
    group.add_argument("--remove", type=_positive_int, nargs="+", help="0-based indices of blocks to remove")
    group.add_argument("--remove-ratio", type=float, help="fraction of blocks to remove, e.g. 0.5")


def add_push_args(p: argparse.ArgumentParser) -> None:
    _add_source_args(p, revision_flag="--source-revision")
    _add_criterion_args(p)
    _add_plan_args(p, multi=True)
    p.add_argument(
        "--repo-id",
        default=None,
        help="target repo id, or a template with {namespace} {name} {keep} {criterion} "
        "(default: {namespace}/{name}-gardener-keep{keep}, namespace = your Hub user)",
    )
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", dest="push_revision", default=None, help="branch to push to (created if missing; default main)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    p.add_argument("--dry-run", action="store_true", help="stage only (needs --output-dir); nothing is uploaded")
    p.add_argument("--output-dir", default=None, help="where variants are staged (one subfolder per variant)")
    p.add_argument("--overwrite", action="store_true", help="replace existing staged folders")
    p.add_argument("--model-class", default=None, help="transformers class to load with (default: as saved)")
    p.add_argument(
        "--train-dir",
        default=None,
        help="finetune each variant on these videos before pushing (needs --output-dir; any other "
        "option is passed to the finetune, e.g. --num-train-epochs 3 --learning-rate 1e-4)",
    )
    p.add_argument("--eval-dir", default=None, help="evaluate each finetuned variant on these videos (results go in the card)")


def split_foreign_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate the options `parser` knows from the rest (finetune options for `push --train-dir`).

    A foreign option takes at most one value, as every `TrainingArguments` option does
    (`--num-train-epochs 3`, `--bf16`, `--bf16 true`), so it never swallows the model argument
    that follows it. `parse_known_args` cannot do this: it gives a foreign option's value to the
    model positional.
    """
    known = {s for action in parser._actions for s in action.option_strings}
    own: list[str] = []
    foreign: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if arg.startswith("--") and name not in known:
            foreign.append(arg)
            if "=" not in arg and i + 1 < len(argv) and not _looks_like_option(argv[i + 1]):
                foreign.append(argv[i + 1])
                i += 1
        else:
            own.append(arg)
        i += 1
    return own, foreign


def _looks_like_option(arg: str) -> bool:
    if not arg.startswith("-"):
        return False
    try:
        float(arg)
    except ValueError:
        return True
    return False  # a negative number is a value


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    if quiet:
        import transformers
        from huggingface_hub.utils import disable_progress_bars

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        disable_progress_bars()


def _resolve_model(args: argparse.Namespace) -> str:
    if args.model is None:
        logger.info("no model given: using the embedded default %s", DEFAULT_MODEL)
        return DEFAULT_MODEL
    return args.model


def _score_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"bins": args.bins, "seed": args.seed}


def cmd_score(args: argparse.Namespace) -> int:
    from .scoring import score_pretrained

    model_id = _resolve_model(args)
    scores = score_pretrained(
        model_id, args.criterion, revision=args.revision, token=args.token, progress=not args.quiet, **_score_params(args)
    )
    kept = scores.kept_blocks(args.keep) if args.keep is not None else None
    if args.json:
        doc = scores.to_dict()
        if kept is not None:
            doc["keep"] = args.keep
            doc["kept_blocks"] = kept
        print(json.dumps(doc, indent=2))
        return 0
    ranks = scores.ranks()
    header = f"{'block':>5}  {'score':>12}  {'rank':>4}" + ("  status" if kept is not None else "")
    print(f"{model_id}: {scores.criterion} (prunes {scores.prune_first} first)")
    print(header)
    for i, value in enumerate(scores.scores):
        line = f"{i:>5}  {value:>12.6f}  {ranks[i]:>4}"
        if kept is not None:
            line += "  " + ("kept" if i in kept else "pruned")
        print(line)
    print("removal order: " + " ".join(str(b) for b in scores.removal_order()))
    return 0


def _load_and_score(args: argparse.Namespace, model_id: str):
    from .scoring import score_model
    from .surgery import load_model

    model = load_model(model_id, revision=args.revision, token=args.token, model_class=getattr(args, "model_class", None))
    scores = score_model(model, args.criterion, progress=not args.quiet, **_score_params(args))
    scores.source = args.model or EMBEDDED_NAME
    return model, scores


def cmd_prune(args: argparse.Namespace) -> int:
    from .surgery import apply_plan, copy_processor_files, make_plan, save_pruned

    model_id = _resolve_model(args)
    out = check_destination(args.output_dir, args.overwrite)
    model, scores = _load_and_score(args, model_id)
    plan = make_plan(scores, keep=args.keep, remove=args.remove, remove_ratio=args.remove_ratio)
    apply_plan(model, plan)
    with atomic_folder(out, overwrite=args.overwrite) as tmp:
        save_pruned(model, tmp)
        copy_processor_files(model_id, tmp, revision=args.revision, token=args.token)
    logger.info("%s -> %s", plan.describe(), out)
    return 0


def _finetune_variant(args: argparse.Namespace, variant: Any, model_id: str, run_dir: Path):
    """Finetune one pruned variant; returns (finetuned model, card kwargs, plot files, is main process)."""
    from .finetune import finetune_variant

    argv = ["--train-dir", args.train_dir, "--output-dir", str(run_dir), *args.finetune_args]
    if args.eval_dir:
        argv += ["--eval-dir", args.eval_dir]
    if args.quiet:
        argv += ["--disable-tqdm", "true"]
    result, training = finetune_variant(variant, model_id, argv, revision=args.revision, token=args.token)
    extra = {name: result.output_dir / name for name in (training["curve_file"], training["confusion_file"]) if name}
    # RANK too: a process that is not rank 0 of the launch must never stage or push, whatever Trainer thinks.
    is_main = result.is_main_process and os.environ.get("RANK", "0") == "0"
    return result.model, {"training": training}, extra, is_main


def _reproduce_command(args: argparse.Namespace, model_id: str, keep_or_plan: str) -> str:
    parts = ["python scripts/push_pruned.py"] + ([shlex.quote(args.model)] if args.model else [])
    if args.revision:
        parts += ["--source-revision", shlex.quote(args.revision)]
    parts += [keep_or_plan, "--criterion", args.criterion]
    if args.bins is not None:
        parts += ["--bins", str(args.bins)]
    if args.seed is not None:
        parts += ["--seed", str(args.seed)]
    for flag, value in (("--train-dir", getattr(args, "train_dir", None)), ("--eval-dir", getattr(args, "eval_dir", None))):
        if value:
            parts += [flag, shlex.quote(value)]
    parts += [shlex.quote(a) for a in getattr(args, "finetune_args", [])]
    return " ".join(parts)


def cmd_push(args: argparse.Namespace) -> int:
    import copy

    from huggingface_hub import get_token

    from .cards import source_license
    from .hub import DEFAULT_REPO_TEMPLATE, format_repo_id, hub_namespace, push_variant, stage_variant
    from .surgery import apply_plan, make_plan

    model_id = _resolve_model(args)
    if args.dry_run and not args.output_dir:
        raise GardenerError("--dry-run stages variants on disk only: give --output-dir DIR")
    if args.keep is not None:
        keeps: list[int | None] = list(dict.fromkeys(args.keep))
    else:
        keeps = [None]
    template = args.repo_id or DEFAULT_REPO_TEMPLATE
    if len(keeps) > 1 and "{keep}" not in template:
        raise GardenerError("several --keep values need a --repo-id template containing {keep}")

    token = args.token or get_token()
    dry_run = args.dry_run or not token
    if not args.dry_run and not token:
        logger.warning(
            "no Hub token found: staging only. Log in with `hf auth login` (or set HF_TOKEN), then run again to push."
        )
    # Validate what can be validated before the model is loaded.
    from .sources import validate_model_id

    validate_model_id(model_id)
    from .scoring import get_scorer

    get_scorer(args.criterion, **_score_params(args))
    namespace = "local" if dry_run and "{namespace}" in template else None
    if namespace is None and "{namespace}" in template:
        namespace = hub_namespace(token)
    format_repo_id(template, namespace=namespace or "local", source=model_id, keep=1, criterion=args.criterion)  # validate early

    if args.train_dir and not args.output_dir:
        raise GardenerError("--train-dir needs --output-dir (training runs and checkpoints are kept there)")
    if args.finetune_args and not args.train_dir:
        raise GardenerError(f"unrecognized arguments: {' '.join(args.finetune_args)} (finetune options need --train-dir)")
    model, scores = _load_and_score(args, model_id)
    staging_root = Path(args.output_dir) if args.output_dir else None
    license = source_license(model_id, revision=args.revision, token=args.token)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gardener-stage-") as scratch:
        root = staging_root or Path(scratch)
        plans = [make_plan(scores, keep=k, remove=args.remove, remove_ratio=args.remove_ratio) for k in keeps]
        repo_ids = [
            format_repo_id(template, namespace=namespace or "local", source=model_id, keep=p.num_kept, criterion=args.criterion)
            for p in plans
        ]
        for repo_id in repo_ids:  # refuse before staging any variant, so a refusal leaves nothing behind
            check_destination(root / repo_id.split("/")[-1], args.overwrite)
        staged = []
        is_main = os.environ.get("RANK", "0") == "0"  # several processes only under `accelerate launch`
        for plan, repo_id in zip(plans, repo_ids, strict=True):
            folder = root / repo_id.split("/")[-1]
            variant = copy.deepcopy(model)
            apply_plan(variant, plan)
            card_kwargs, extra_files = None, None
            if args.train_dir:
                variant, card_kwargs, extra_files, is_main = _finetune_variant(
                    args, variant, model_id, folder.with_name(folder.name + "-run")
                )
            if args.keep is not None:
                how = f"--keep {plan.num_kept}"
            elif args.remove is not None:
                how = "--remove " + " ".join(map(str, args.remove))
            else:
                how = f"--remove-ratio {args.remove_ratio}"
            command = _reproduce_command(args, model_id, how)
            if not is_main:
                continue
            staged.append(
                stage_variant(
                    variant,
                    folder,
                    repo_id=repo_id,
                    source=model_id,
                    command=command,
                    revision=args.revision,
                    token=args.token,
                    license=license,
                    overwrite=args.overwrite,
                    card_kwargs=card_kwargs,
                    extra_files=extra_files,
                )
            )
            logger.info("%s: %s", repo_id, plan.describe())
            del variant
        if dry_run:
            if staging_root is None:
                raise GardenerError("nothing was pushed and no --output-dir was given")
            for s in staged:
                print(f"staged {s.repo_id} in {s.folder}")
            return 0
        for s in staged:
            url = push_variant(
                s, token=token, private=args.private, revision=args.push_revision, create_pr=args.create_pr
            )
            print(f"pushed {s.repo_id}: {url}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .finetune import evaluate_model
    from .metrics import format_metrics_table

    if args.model is None:
        raise GardenerError("give the model to evaluate (a finetuned VideoMAE classifier)")
    metrics = evaluate_model(
        args.model, args.data, output_dir=args.output_dir, revision=args.revision, token=args.token,
        batch_size=args.batch_size, num_clips=args.clips, sampling=args.sampling, frame_stride=args.frame_stride,
        num_workers=args.num_workers, strict=args.strict, progress=not args.quiet,
    )
    print(format_metrics_table(metrics, metrics["labels"]))
    skipped = metrics["data"]["skipped"]
    if skipped:
        print(f"{len(skipped)} unreadable videos skipped: " + ", ".join(s["path"] for s in skipped))
    if args.output_dir:
        print(f"wrote {Path(args.output_dir) / 'eval_results.json'}")
    return 0


COMMANDS = {"score": cmd_score, "prune": cmd_prune, "push": cmd_push, "evaluate": cmd_evaluate}


def run(args: argparse.Namespace) -> int:
    _setup_logging(args.quiet)
    try:
        return COMMANDS[args.command](args)
    except GardenerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gardener` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["finetune"]:
        from .finetune import finetune_main

        return finetune_main(argv[1:])
    if argv[:1] == ["push"]:
        return push_main(argv[1:], prog="gardener push")
    if argv[:1] == ["study"]:
        from .study import main as study_main

        return study_main(argv[1:], prog="gardener study")
    args = build_parser().parse_args(argv)
    args.finetune_args = []
    return run(args)


def push_main(argv: Sequence[str] | None = None, prog: str = "push_pruned.py") -> int:
    """Entry point of scripts/push_pruned.py and `gardener push`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,  # unknown options go to the finetune; no prefix guessing
        description="Prune a ViT/VideoMAE checkpoint by block entropy and push each variant to the Hub.",
    )
    add_push_args(parser)
    own, extra = split_foreign_options(parser, list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    args.finetune_args = extra
    args.command = "push"
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

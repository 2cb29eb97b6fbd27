"""`gardener push` / `scripts/push_pruned.py`: prune, stage with a model card, push one repo per variant.

Options this command does not know are finetune options (`gardener finetune`'s): with `--train-dir`
every variant is finetuned before it is staged.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import GardenerError
from . import _common

HELP = "prune, stage with a model card, and push one repo per variant"
DESCRIPTION = "Prune a ViT/VideoMAE checkpoint by block entropy and push each variant to the Hub."


def add_push_args(p: argparse.ArgumentParser) -> None:
    _common.add_source_args(p, revision_flag="--source-revision")
    _common.add_criterion_args(p)
    _common.add_plan_args(p, multi=True)
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


def build_parser(prog: str = "gardener push") -> argparse.ArgumentParser:
    p = _common.Parser(
        prog=prog,
        allow_abbrev=False,  # unknown options go to the finetune; no prefix guessing
        description=DESCRIPTION,
    )
    add_push_args(p)
    return p


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


def parse(argv: Sequence[str], prog: str) -> argparse.Namespace:
    parser = build_parser(prog)
    own, foreign = split_foreign_options(parser, list(argv))
    args = parser.parse_args(own)
    args.finetune_args = foreign
    return args


def _command(args: argparse.Namespace) -> str:
    """The card's Reproduce command, `{plan}` standing for each variant's plan options."""
    from ..hub.publish import default_command

    return default_command(
        args.model, revision=args.revision, criterion=args.criterion,
        params={**_common.score_params(args), **_common.calibration_params(args), "protect": args.protect},
        train_data=args.train_dir, eval_data=args.eval_dir, output_dir=args.output_dir, options=args.finetune_args,
    )


def _finetune_settings(args: argparse.Namespace):
    """The finetune of every variant, parsed from the options this command passes through."""
    from .finetune import parse_finetune_args, settings_from

    argv = ["--train-dir", args.train_dir, "--output-dir", str(args.output_dir), *args.finetune_args]
    if args.eval_dir:
        argv += ["--eval-dir", args.eval_dir]
    if args.quiet:
        argv += ["--disable-tqdm", "true"]
    return settings_from(*parse_finetune_args(argv))


def run(args: argparse.Namespace) -> int:
    from ..hub.publish import prune_and_publish

    if args.finetune_args and not args.train_dir:
        raise GardenerError(f"unrecognized arguments: {' '.join(args.finetune_args)} (finetune options need --train-dir)")
    if args.train_dir and not args.output_dir:
        raise GardenerError("--train-dir needs --output-dir (training runs and checkpoints are kept there)")
    if args.dry_run and not args.output_dir:
        raise GardenerError("--dry-run stages variants on disk only: give --output-dir DIR")
    if args.keep is not None and len(set(args.keep)) != len(args.keep):
        raise GardenerError(f"--keep {' '.join(map(str, args.keep))}: a value is given twice (one variant per distinct value)")
    if args.keep is not None and len(set(args.keep)) > 1 and "{keep}" not in (args.repo_id or "{keep}"):
        raise GardenerError("several --keep values need a --repo-id template containing {keep}")
    published = prune_and_publish(
        args.model,
        keep=args.keep,
        remove=args.remove,
        remove_ratio=args.remove_ratio,
        criterion=args.criterion,
        criterion_params=_common.score_params(args),
        **_common.calibration_params(args),
        protect=args.protect,
        repo_id=args.repo_id,
        output_dir=args.output_dir,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        private=args.private,
        revision=args.revision,
        push_revision=args.push_revision,
        create_pr=args.create_pr,
        token=args.token,
        model_class=args.model_class,
        finetune=_finetune_settings(args) if args.train_dir else None,
        command=_command(args),
        progress=not args.quiet,
    )
    for item in published:
        if item.url is None:
            print(f"staged {item.staged.repo_id} in {item.staged.folder}")
        else:
            print(f"pushed {item.staged.repo_id}: {item.url}")
    if published and not args.dry_run and any(item.url is None for item in published):
        raise GardenerError("nothing was pushed: no Hub token. Log in with `hf auth login` (or set HF_TOKEN) and run "
                            "the same command again, or pass --dry-run to stage only")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "gardener push") -> int:
    """Entry point of `gardener push` and scripts/push_pruned.py."""
    import sys

    args = parse(sys.argv[1:] if argv is None else argv, prog)
    _common.setup_logging(args.quiet)
    return _common.run_guarded(lambda: run(args))

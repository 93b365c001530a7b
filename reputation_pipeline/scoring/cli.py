"""``models train`` / ``models eval`` subcommands, hooked into the project CLI
through :func:`register_cli`."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from reputation_pipeline.scoring import numerics
    from reputation_pipeline.scoring.models import DEFAULT_MODELS_DIR

    if importlib.util.find_spec("torch") is None:
        print("models train needs PyTorch, which the CPU install leaves out: scripts/setup.sh --torch "
              "(or pip install 'reputation_pipeline[torch]')", file=sys.stderr)
        return 2
    numerics.pin(args.numerics)  # before anything imports torch

    out = Path(args.out) if args.out else DEFAULT_MODELS_DIR
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.method == "heads":  # the frozen-encoder baseline
        from reputation_pipeline.scoring.train import train

        train(out, data_dir=args.data, cache_dir=args.cache_dir, hidden=128 if args.hidden is None else args.hidden,
              epochs=args.epochs or 30,
              seed=args.seed, threads=args.threads, log=log)
        return 0
    from reputation_pipeline.scoring.finetune import FinetuneConfig, train as finetune

    defaults = FinetuneConfig()
    cfg = FinetuneConfig(
        epochs=args.epochs or defaults.epochs, batch_size=args.batch_size or defaults.batch_size,
        lr=args.lr or defaults.lr, head_lr=args.head_lr or defaults.head_lr, rank=args.rank or defaults.rank,
        alpha=args.alpha or defaults.alpha, head_hidden=args.hidden if args.hidden is not None else defaults.head_hidden,
        features=tuple(args.features.split(",")) if args.features else defaults.features,
        seed=args.seed, limit=args.limit,
        aux_tasks=tuple(x for x in args.aux.split(",") if x) if args.aux is not None else defaults.aux_tasks,
        oversample=tuple(x for x in args.oversample.split(",") if x) if args.oversample is not None else defaults.oversample,
        ema=args.ema if args.ema is not None else defaults.ema,
        label_smoothing=args.label_smoothing if args.label_smoothing is not None else defaults.label_smoothing,
        dev_sources=tuple(x for x in args.dev_sources.split(",") if x) if args.dev_sources is not None
        else defaults.dev_sources,
        distill_tasks=tuple(x for x in args.distill_tasks.split(",") if x) if args.distill_tasks is not None
        else defaults.distill_tasks,
        distill_weight=args.distill_weight if args.distill_weight is not None else defaults.distill_weight,
        distill_temperature=args.distill_temperature or defaults.distill_temperature)
    finetune(out, data_dir=args.data, config=cfg, device=args.device, threads=args.threads,
             calibrate_after=not args.no_calibrate, cache_dir=args.cache_dir, log=log)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from reputation_pipeline.scoring.calibrate import calibrate
    from reputation_pipeline.scoring.models import resolve_ref

    calibrate(Path(resolve_ref(args.model)), data_dir=args.data, threads=args.threads,
              log=lambda m: print(m, flush=True))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from reputation_pipeline.scoring.evaluate import evaluate, evaluate_split

    if (args.split is None) == (args.texts is None or args.labels is None):
        raise SystemExit("models eval: give --texts and --labels, or --split")
    if args.int8:  # the torch engine
        from reputation_pipeline.scoring.models import require_torch

        require_torch("--int8").set_num_threads(args.threads)
    if args.split:
        name, value, info = evaluate_split(args.task, args.split, args.model, data_dir=args.data,
                                           quantize=args.int8, threads=args.threads)
    else:
        name, value, info = evaluate(args.task, args.texts, args.labels, args.model, quantize=args.int8,
                                     threads=args.threads)
    source = f" split={args.split} ({info['source']})" if args.split else ""
    print(f"task={args.task} model={args.model}{source} int8={args.int8} n={info['n']} seconds={info['seconds']}")
    print(f"{name}={value:.3f}")
    return 0


def register_cli(subparsers) -> None:
    """Add ``models train`` and ``models eval`` to an argparse subparsers object.
    Each leaf parser sets ``func`` (call ``args.func(args)``; returns an exit code)."""
    from reputation_pipeline.scoring.data import SEED

    models = subparsers.add_parser("models", help="train / evaluate the scoring models")
    sub = models.add_subparsers(dest="models_command", required=True)
    t = sub.add_parser("train", help="train the default models (LoRA-tuned MiniLM + heads) into default_models/")
    t.add_argument("--out", help="output folder (default: the package's default_models/)")
    t.add_argument("--data", help="labeled data folder (default: ../shared/data or $REPUTATION_SCORING_DATA)")
    t.add_argument("--method", choices=["lora", "heads"], default="lora",
                   help="lora: fine-tune the encoder with adapters (default); heads: frozen encoder baseline")
    t.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    t.add_argument("--epochs", type=int, help="default: 4 (lora) / 30 (heads)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--head-lr", type=float)
    t.add_argument("--rank", type=int)
    t.add_argument("--alpha", type=float)
    t.add_argument("--hidden", type=int, help="head hidden units (0 = linear head)")
    t.add_argument("--features", help="pooled features, e.g. mean:6 or mean:5,mean:6,cls:6")
    t.add_argument("--aux", help="auxiliary TweetEval tasks trained beside the three, e.g. emotion,irony ('' = none)")
    t.add_argument("--oversample", help="task=factor passes per epoch, e.g. offensive=2 ('' = none)")
    t.add_argument("--ema", type=float, help="decay of the weights' moving average kept as the model (0 = off)")
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--dev-sources", help="training files held out as the dev split (selection and calibration), "
                                         "e.g. semeval2017_task4a/twitter-2016dev-A.txt; default: the SemEval 2016 "
                                         "dev sets for sentiment; '' = a seeded 10%% of train for every task")
    t.add_argument("--no-calibrate", action="store_true", help="skip the decision calibration after training")
    t.add_argument("--limit", type=int, default=0, help="cap examples per task (smoke runs)")
    t.add_argument("--distill-weight", type=float,
                   help="weight in (0, 1) of a frozen all-mpnet-base-v2 teacher's soft targets in the distilled "
                        "tasks' loss (default 0.5, as the committed default was trained; 0: no teacher, which otherwise "
                        "needs scripts/setup.sh --teacher)")
    t.add_argument("--distill-tasks", help="analyses the teacher distills into (default sentiment)")
    t.add_argument("--distill-temperature", type=float, help="softmax temperature of the soft targets (default 2)")
    t.add_argument("--cache-dir", help="frozen-encoder feature cache of the heads method and the teacher "
                                       "(default ~/.cache/reputation_pipeline/features)")
    t.add_argument("--seed", type=int, default=SEED)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--numerics", choices=["reproducible", "native"], default="reproducible",
                   help="CPU kernels: reproducible pins them to AVX2, so x86-64 machines with different CPUs pick "
                        "the same kernels (keep --threads equal too); native lets each CPU pick its fastest")
    t.set_defaults(func=_train)
    c = sub.add_parser("calibrate", help="fit a bundle's per-task decision biases on the training dev split (in place)")
    c.add_argument("--model", default="default", help="'default' or a heads bundle folder")
    c.add_argument("--data", help="labeled data folder (default: ../shared/data or $REPUTATION_SCORING_DATA)")
    c.add_argument("--threads", type=int, default=2)
    c.set_defaults(func=_calibrate)
    e = sub.add_parser("eval", help="print a task's metric on TweetEval-format files")
    e.add_argument("--task", required=True, choices=["sentiment", "offensive", "hate"])
    e.add_argument("--texts", type=Path, help="one text per line (TweetEval format)")
    e.add_argument("--labels", type=Path, help="one integer label per line")
    e.add_argument("--split", choices=["val", "dev"],
                   help="instead of --texts/--labels: TweetEval validation, or the dev split the default training "
                        "selects on (sentiment: the newer-data split, the SemEval 2016 dev sets)")
    e.add_argument("--data", help="labeled data folder for --split (default: ../shared/data or $REPUTATION_SCORING_DATA)")
    e.add_argument("--model", default="default", help="'default', a heads bundle, a local model path or hub id")
    e.add_argument("--int8", action="store_true", help="int8 dynamically quantized encoder (optional fast path)")
    e.add_argument("--threads", type=int, default=2)
    e.set_defaults(func=_eval)


def main(argv: list[str] | None = None) -> int:  # python -m reputation_pipeline.scoring.cli models ...
    parser = argparse.ArgumentParser(prog="reputation-pipeline")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

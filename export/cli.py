"""Command line of the offline pipeline (also reachable as ``switchboard pack ...``)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_RUN = Path("runs/default")
DEFAULT_PACK = Path("models/packs/default")
PACK_VERSION = "2.5.0"


def _recipe_args(parser: argparse.ArgumentParser) -> None:
    from export.recipe import Recipe

    defaults = Recipe()
    parser.add_argument("--data", default=defaults.data_dir, help="folder with the public data sets")
    parser.add_argument(
        "--backbone", default="", help="HF checkpoint (path or hub id); default all-MiniLM-L6-v2"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RUN, help="run folder (checkpoint, logs)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument(
        "--ema-decay",
        type=float,
        default=defaults.ema_decay,
        help="average the weights with this decay per step (0: off); evaluation uses the average",
    )
    parser.add_argument(
        "--csv",
        action="append",
        default=[],
        metavar="HEAD=PATH",
        help="your own labelled CSV (text,label) for a head; repeatable",
    )
    parser.add_argument("--no-public-data", action="store_true", help="train on --csv files only")
    parser.add_argument("--tiny", action="store_true", help="a minutes-long smoke recipe")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="where to train (same recipe; a GPU only shortens the run)",
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from export.recipe import Recipe, tiny
    from export.train import train

    recipe = Recipe(
        data_dir=args.data,
        backbone=args.backbone,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        seed=args.seed,
        eval_every=args.eval_every,
        ema_decay=args.ema_decay,
        user_csv=list(args.csv),
        public_data=not args.no_public_data,
    )
    if args.tiny:
        recipe = tiny(recipe)
    summary = train(recipe, args.out, device=args.device)
    if recipe.refit_heads:
        from export.refit import refit_heads

        summary["refit"] = refit_heads(args.out, recipe)
        (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("best_step", "best_score", "train_seconds")}))
    return 0


def _cmd_refit(args: argparse.Namespace) -> int:
    from export.recipe import Recipe
    from export.refit import refit_heads

    summary = json.loads((args.run / "train_summary.json").read_text())
    recipe = Recipe(**{**summary["recipe"], "refit_heads": True})
    summary["refit"] = refit_heads(args.run, recipe)
    summary["recipe"] = recipe.to_dict()  # the refit's own settings (head layers, memory) included
    (args.run / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["refit"]))
    return 0


def _cmd_onnx(args: argparse.Namespace) -> int:
    from export.onnx_export import export_checkpoint

    result = export_checkpoint(args.run / "checkpoint", args.run / "onnx", tolerance=args.tolerance)
    print(json.dumps(result))
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    import onnx

    from export.mix import dataset_counts
    from export.pack import EMBEDDING_DIM, EMBEDDING_OUTPUT, build_pack, output_width, provenance
    from export.quantize import quantize
    from export.recipe import Recipe, build_data

    summary = json.loads((args.run / "train_summary.json").read_text())
    recipe = Recipe(**summary["recipe"])
    fp32 = args.run / "onnx" / "model.fp32.onnx"
    int8 = args.run / "onnx" / "model.int8.onnx"
    quant = quantize(fp32, int8, args.preset)
    graph_outputs = list(onnx.load(str(fp32), load_external_data=False).graph.output)
    inputs = (
        json.loads((args.run / "onnx" / "inputs.json").read_text())
        if (args.run / "onnx" / "inputs.json").exists()
        else ["input_ids", "attention_mask", "token_type_ids"]
    )
    manifest = build_pack(
        int8,
        args.run / "onnx" / "tokenizer.json",
        args.pack,
        inputs=inputs,
        max_length=args.max_length,
        name=args.name,
        version=args.version,
        recipe={**summary["recipe"], "backbone": summary["backbone"]},
        sources=provenance(dataset_counts(build_data(recipe)), Path(recipe.data_dir)),
        quantization=quant,
        outputs=[o.name for o in graph_outputs],
        embedding_dim=output_width(graph_outputs, EMBEDDING_OUTPUT) or EMBEDDING_DIM,
    )
    print(
        json.dumps(
            {"pack": str(args.pack), "files": {k: v.bytes for k, v in manifest.files.items()}, **quant}
        )
    )
    return 0


def _cmd_served_head(args: argparse.Namespace) -> int:
    import msgspec

    from export.pack import LABELS
    from export.recipe import Recipe, build_data
    from export.served_head import ServedHeadError, calibration_requests, refit_served_head
    from models.manifest import read_manifest, write_manifest

    summary = json.loads((args.run / "train_summary.json").read_text())
    recipe = Recipe(**summary["recipe"])
    manifest = read_manifest(args.pack)
    graph = manifest.graphs["multitask"]
    mix = build_data(recipe)
    fp32 = args.run / "onnx" / "model.fp32.onnx"
    try:
        report = refit_served_head(
            args.pack / graph.file,
            args.pack / graph.tokenizer,
            graph.max_length,
            [s for group in mix.train.values() for s in group],
            calibration_requests(mix.val, recipe.seed),
            fp32=fp32 if fp32.exists() else None,
            old_labels=manifest.heads["intent"].labels,
        )
    except ServedHeadError as exc:
        if args.command != "build":
            print(f"served-head: {exc}", file=sys.stderr)
            return 1
        # A refit that chose an intent memory keeps it: the memory was fitted to blend with that head.
        report = {"skipped": str(exc)}
    if "skipped" not in report:
        # The head's columns follow the taxonomy's intents (a merge or a new intent changes them).
        heads = dict(manifest.heads)
        heads["intent"] = msgspec.structs.replace(heads["intent"], labels=list(LABELS["intent"]))
        manifest = msgspec.structs.replace(manifest, heads=heads)
        if args.version:
            manifest = msgspec.structs.replace(manifest, version=args.version)
    write_manifest(args.pack, manifest)  # the graph's new hash
    summary["served_head"] = report
    (args.run / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(report))
    return 0


def _cmd_prototypes(args: argparse.Namespace) -> int:
    from export.prototypes import write_prototypes
    from export.recipe import Recipe

    summary = json.loads((args.run / "train_summary.json").read_text())
    print(json.dumps(write_prototypes(args.pack, Recipe(**summary["recipe"]))))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from export.evaluate import evaluate

    results = evaluate(args.run, args.pack, compare_presets=args.presets, limit=args.limit)
    print(
        json.dumps(
            {
                "headline": results["headline"],
                "agreement": results["agreement_int8_vs_fp32"],
                "temperatures": results["calibration"]["temperatures"],
            },
            indent=2,
        )
    )
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from export.card import write_card
    from models.manifest import read_manifest, write_manifest

    results = json.loads((args.run / "evaluation.json").read_text())
    manifest = read_manifest(args.pack)
    path = write_card(args.pack, manifest, results)
    write_manifest(args.pack, manifest)  # the card's new hash
    print(json.dumps({"card": str(path)}))
    return 0


def _cmd_hf(args: argparse.Namespace) -> int:
    from export.hf import export_hf

    mapping = dict(item.split("=", 1) for item in args.label_map)
    if args.out.resolve() != args.pack.resolve():
        # never edit the source pack (by default the committed one) in place
        shutil.copytree(args.pack, args.out, dirs_exist_ok=True)
    manifest = export_hf(
        args.checkpoint,
        args.head,
        args.out,
        label_map=mapping,
        kind=args.kind,
        max_length=args.max_length,
        preset=args.preset,
    )
    print(json.dumps({"pack": str(args.out), "head": args.head, "labels": manifest.heads[args.head].labels}))
    return 0


def _cmd_fuse(args: argparse.Namespace) -> int:
    from export.fuse import FuseError, fuse_pack

    try:
        report = fuse_pack(args.pack, version=args.version, tolerance=args.tolerance)
    except FuseError as exc:
        print(f"fuse: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def _cmd_fewshot(args: argparse.Namespace) -> int:
    from export.fewshot import fewshot_report

    print(json.dumps(fewshot_report(args.pack, Path(args.data), reference=not args.no_reference), indent=2))
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from export.similarity import similarity_map

    print(json.dumps(similarity_map(args.old, args.new, Path(args.data), args.values), indent=2))
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    """train -> onnx -> quantize -> served head -> prototypes -> evaluate in one command (the reproducible
    pack build)."""
    if _cmd_train(args) != 0:
        return 1
    args.run = args.out
    args.max_length = args.serve_max_length  # training length is spent; the pack's own from here
    args.tolerance = 1e-4
    args.presets = False
    args.limit = None
    for step in (_cmd_onnx, _cmd_quantize, _cmd_served_head, _cmd_prototypes, _cmd_evaluate):
        if step(args) != 0:
            return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="fine-tune the shared encoder with its four heads")
    _recipe_args(p_train)
    p_train.set_defaults(func=_cmd_train)

    from export.quantize import PRESETS

    p_build = sub.add_parser(
        "build", help="train, export, quantize and evaluate: the whole pack in one command"
    )
    _recipe_args(p_build)
    p_build.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_build.add_argument("--preset", choices=sorted(PRESETS), default="portable")
    p_build.add_argument("--name", default="switchboard-default")
    p_build.add_argument("--version", default=PACK_VERSION)
    p_build.add_argument("--serve-max-length", type=int, default=128, help="serving truncation length")
    p_build.set_defaults(func=_cmd_build)

    p_refit = sub.add_parser(
        "refit", help="refit intent, act and emotion heads on the frozen encoder (train runs it)"
    )
    p_refit.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_refit.set_defaults(func=_cmd_refit)

    p_onnx = sub.add_parser(
        "onnx", help="export the checkpoint to one ONNX graph and check it against PyTorch"
    )
    p_onnx.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_onnx.add_argument("--tolerance", type=float, default=1e-4)
    p_onnx.set_defaults(func=_cmd_onnx)

    p_quant = sub.add_parser("quantize", help="dynamic int8 quantization and pack assembly")
    p_quant.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_quant.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_quant.add_argument("--preset", choices=sorted(PRESETS), default="portable")
    p_quant.add_argument("--max-length", type=int, default=128, help="serving truncation length")
    p_quant.add_argument("--name", default="switchboard-default")
    p_quant.add_argument("--version", default=PACK_VERSION)
    p_quant.set_defaults(func=_cmd_quantize)

    p_served = sub.add_parser(
        "served-head",
        help="refit the intent head on the int8 graph's own pooled vectors (build runs it after quantize)",
    )
    p_served.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_served.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_served.add_argument("--version", default=None, help="the refitted pack's version (default: unchanged)")
    p_served.set_defaults(func=_cmd_served_head)

    p_proto = sub.add_parser(
        "prototypes", help="each built-in intent's centroid and k-means centres in the pack's embedding"
    )
    p_proto.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_proto.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_proto.set_defaults(func=_cmd_prototypes)

    p_eval = sub.add_parser("evaluate", help="metrics, calibration, figures and model card")
    p_eval.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_eval.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_eval.add_argument("--presets", action="store_true", help="also compare every quantization preset")
    p_eval.add_argument("--limit", type=int, default=None, help="cap each validation set (smoke runs)")
    p_eval.set_defaults(func=_cmd_evaluate)

    p_card = sub.add_parser(
        "card", help="rewrite MODEL_CARD.md from the run's evaluation.json (after editing export/card.py)"
    )
    p_card.add_argument("--run", type=Path, default=DEFAULT_RUN)
    p_card.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_card.set_defaults(func=_cmd_card)

    p_fuse = sub.add_parser(
        "fuse", help="rebuild a pack's int8 graph with fused attention (only if the outputs stay equal)"
    )
    p_fuse.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_fuse.add_argument("--version", default=None, help="the rebuilt pack's version (default: unchanged)")
    p_fuse.add_argument("--tolerance", type=float, default=1e-5, help="largest output difference allowed")
    p_fuse.set_defaults(func=_cmd_fuse)

    p_few = sub.add_parser("fewshot", help="few-shot contact reasons on the pack's sentence embedding")
    p_few.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p_few.add_argument("--data", default="../shared/data")
    p_few.add_argument("--no-reference", action="store_true", help="skip the pretrained fp32 reference")
    p_few.set_defaults(func=_cmd_fewshot)

    p_sim = sub.add_parser(
        "similarity", help="carry cosine constants from one pack's sentence embedding to another's"
    )
    p_sim.add_argument("values", type=float, nargs="+", help="cosines measured on --from's embedding")
    p_sim.add_argument("--from", dest="old", type=Path, required=True, help="pack they were measured on")
    p_sim.add_argument("--to", dest="new", type=Path, default=DEFAULT_PACK, help="pack to carry them to")
    p_sim.add_argument("--data", default="../shared/data")
    p_sim.set_defaults(func=_cmd_similarity)

    p_hf = sub.add_parser("hf", help="serve one head from a Hugging Face sequence-classification checkpoint")
    p_hf.add_argument("checkpoint", help="local path, or hub id where a hub is reachable")
    p_hf.add_argument("--head", required=True, choices=["sentiment", "emotion", "intent"])
    p_hf.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="pack to start from (not modified)")
    p_hf.add_argument("--out", type=Path, required=True, help="folder of the new mixed pack")
    p_hf.add_argument("--label-map", action="append", default=[], metavar="OLD=NEW")
    p_hf.add_argument("--kind", choices=["softmax", "sigmoid"], default=None)
    p_hf.add_argument("--max-length", type=int, default=128)
    p_hf.add_argument("--preset", choices=sorted(PRESETS), default="portable")
    p_hf.set_defaults(func=_cmd_hf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return int(args.func(args))

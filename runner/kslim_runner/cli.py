"""The `kslim` command line. Subcommands import their heavy parts lazily, so `kslim validate`
works without Paddle installed.

Exit codes are kslim_api.contract's (docs/contracts.md): 0 success, 1 internal error, 2 user error
(bad file, bad spec, bad data, bad arguments), 3 quality gate, 4 device.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kslim", description="Compress PaddlePaddle detection models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "validate", help="check a CompressionJob file (or a PaddleDetection slim config) offline"
    )
    p.add_argument("file", help="CompressionJob YAML, or a slim config with --slim-config")
    p.add_argument(
        "--slim-config", action="store_true", help="the file is a bare PaddleDetection slim config"
    )
    p.add_argument(
        "--allow-service-account",
        action="append",
        default=[],
        metavar="NAME",
        help="a spec.template.serviceAccountName the installation allows (its allowedServiceAccounts)",
    )

    p = sub.add_parser("run", help="run a CompressionJob file locally (no cluster)")
    p.add_argument("file", help="CompressionJob YAML")
    p.add_argument("--output", help="output directory (default: spec.output or ./output/<name>)")

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="write a synthetic COCO dataset (real JPEGs + instances JSON)")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--images", type=int, default=200, help="number of images")
    p.add_argument("--size", type=int, default=160, help="image side, pixels")
    p.add_argument("--classes", type=int, default=3, help="number of shape classes")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--max-objects", type=int, default=6, help="at most this many objects per image")
    p.add_argument(
        "--object-side",
        default="0.1,0.5",
        help="smallest,largest object side as shares of the image side (the quick start's: 0.2,0.5)",
    )
    p.add_argument("--no-clutter", action="store_true", help="no distractor lines, arcs and specks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "validate":
        from kslim_api.validate import validate_command

        return validate_command(
            args.file, slim_config=args.slim_config, allowed_service_accounts=args.allow_service_account
        )
    if args.command == "run":
        from kslim_runner.run import run_command

        return run_command(args.file, output=args.output)
    if args.command == "data" and args.data_command == "synth":
        from kslim_runner.data.synth import synth_command

        return synth_command(
            out=args.out,
            images=args.images,
            size=args.size,
            classes=args.classes,
            seed=args.seed,
            max_objects=args.max_objects,
            object_side=args.object_side,
            clutter=not args.no_clutter,
        )
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())

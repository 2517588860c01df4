"""kslim's own PaddleDetection-format configs against PaddleDetection's: the same model, parameter
for parameter.

    python bench/zoo_fidelity.py --configs /path/to/PaddleDetection/configs

For every pair in bench/zoo_rows.py's SAME_MODEL, builds both models (3 classes, 96 px) and compares
their state_dict keys and shapes (a PaddleDetection checkpoint loads into kslim's config as is) and
Paddle's generated parameter names (PaddleDetection's prune configs' conv2d_N.w_0 lists name the
same layers). Prints a table; exit 1 if any pair differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zoo_rows import KSLIM_CONFIGS, SAME_MODEL


def signature(config: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """({state_dict key: shape}, {state_dict key: Paddle name}) of the model a config builds."""
    from kslim_runner.api import ZooSource, build_model

    model = build_model(ZooSource(str(config), config.stem, 3, 96))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    names = {k: p.name for k, p in model.named_parameters()}
    return shapes, names


def compare(ppdet: Path, kslim: Path) -> dict[str, Any]:
    theirs, their_names = signature(ppdet)
    ours, our_names = signature(kslim)
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    renamed = sorted(k for k in their_names if our_names.get(k) != their_names[k])
    return {"params": len(theirs), "differ": differ, "renamed": renamed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", required=True, help="a PaddleDetection 2.6 configs/ tree")
    args = ap.parse_args(argv)
    import kslim_runner  # noqa: F401  (zlib before paddle)

    print("| PaddleDetection config | kslim config | tensors | same keys and shapes | same Paddle names |")
    print("|---|---|---|---|---|")
    ok = True
    for ppdet_path, name in SAME_MODEL.items():
        theirs, ours = Path(args.configs) / ppdet_path, KSLIM_CONFIGS / f"{name}.yml"
        if not theirs.is_file() or not ours.is_file():
            print(f"| {ppdet_path} | {name} | – | missing: {theirs if not theirs.is_file() else ours} | – |")
            ok = False
            continue
        r = compare(theirs, ours)
        same = "yes" if not r["differ"] else f"no: {r['differ'][0]} (+{len(r['differ']) - 1})"
        names = "yes" if not r["renamed"] else f"no: {r['renamed'][0]} (+{len(r['renamed']) - 1})"
        ok = ok and not r["differ"] and not r["renamed"]
        print(f"| {ppdet_path} | {name} | {r['params']} | {same} | {names} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

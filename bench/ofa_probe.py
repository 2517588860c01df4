"""Can PaddleSlim 2.6's OFA (paddleslim.nas.ofa) give a deployable sub-network of a PaddleDetection
PicoDet on this stack? The steps PaddleDetection's slim: OFA takes (ppdet/slim/ofa.py), with a search
space like configs/slim/ofa/ofa_picodet_demo.yml's (ESNet blocks at expand ratio 0.5 or 1), on a
tiny PicoDet (kslim's PicoDet-M config at ESNet scale 0.25, 96 px), then what PaddleDetection never
does: export the smallest sub-network (OFA.export), run it, export it as an inference model. Prints
each stage's outcome and writes bench/results/ofa_probe.json. Measured 2026-12-07: everything up to
OFA.export works; the exported sub-network has its convs cut but not their batch norms, and its
forward fails; hence kslim refuses slim: OFA (kslim_api/slimconfig_sparsify.py)."""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import kslim_runner  # noqa: F401  (before paddle)
import paddle
from kslim_runner.api import SHORTHAND_DIR, ZooSource, build_model, export_model, sample_inputs
from paddle import nn
from paddleslim.nas.ofa import OFA, RunConfig, utils
from paddleslim.nas.ofa.convert_super import Convert, supernet

SIZE = 96
TINY = "_BASE_: ['{base}']\nESNet: {{scale: 0.25}}\nCSPPAN: {{out_channels: 32}}\n"
#: The demo's search space: ESNet's blocks at expand ratio 0.5 or 1, neck and head skipped.
SAME_SPACE_BLOCKS = ("2_2", "2_3", "3_2", "3_3", "3_4", "3_5", "3_6", "3_7", "4_2", "4_3")
RESULT = Path(__file__).parent / "results" / "ofa_probe.json"


def mismatched_norms(model: nn.Layer) -> list[str]:
    """Batch norms whose width differs from the conv right before them."""
    out, prev = [], None
    for name, layer in model.named_sublayers():
        if isinstance(layer, nn.Conv2D):
            prev = layer.weight.shape[0]
        elif (
            isinstance(layer, nn.BatchNorm2D | nn.BatchNorm)
            and prev is not None
            and layer.weight.shape[0] != prev
        ):
            out.append(f"{name}: {layer.weight.shape[0]} for {prev} channels")
    return out


def main() -> int:
    stages: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "picodet_tiny.yml"
        cfg.write_text(TINY.format(base=SHORTHAND_DIR / "picodet_esnet_m.yml"))
        src = ZooSource(str(cfg), "picodet_tiny", 3, SIZE)
        paddle.seed(0)
        model = build_model(src)
        state = copy.deepcopy(model.state_dict())
        skip = [n for n, _ in model.named_sublayers() if n.startswith(("neck.", "head."))]
        layers = {f"backbone.{b}._conv_pw._conv": {"expand_ratio": [0.5, 1]} for b in SAME_SPACE_BLOCKS}
        try:
            supermodel = Convert(supernet(expand_ratio=[0.5, 1])).convert(model)
            ofa = OFA(supermodel, run_config=RunConfig(skip_layers=skip, ofa_layers=layers))
            ofa.set_epoch(0)
            ofa.set_task("expand_ratio")
            ofa._clear_search_space(input_spec=[sample_inputs(SIZE)])  # as ppdet/slim/ofa.py
            ofa._build_ss = True
            ofa.tokenize()
            utils.set_state_dict(ofa.model, state)
            stages["supernet"] = f"ok: {len(ofa._ofa_layers)} searchable layers"
            smallest = {k: {"expand_ratio": 0.5} for k in ofa._ofa_layers}
            shapes = [{k: list(v.shape) for k, v in sample_inputs(SIZE).items()}]
            sub = ofa.export(
                smallest, input_shapes=shapes, input_dtypes=["float32"], origin_model=build_model(src)
            )
            stages["OFA.export"] = "ok"
            bad = mismatched_norms(sub)
            stages["batch norms not cut"] = bad[:3] + ([f"... {len(bad)} in all"] if len(bad) > 3 else [])
            sub.eval()
            with paddle.no_grad():
                sub(sample_inputs(SIZE))
            stages["sub-network forward"] = "ok"
            export_model(sub, Path(tmp) / "sub", ["a", "b", "c"])
            stages["inference export"] = "ok"
        except Exception as e:  # the probe reports where it stops
            text = str(e).strip().splitlines()
            stages["failed"] = f"{type(e).__name__}: {text[-1][:300] if text else ''}"
    RESULT.write_text(json.dumps(stages, indent=2) + "\n")
    print(json.dumps(stages, indent=2))
    return 0 if "failed" not in stages else 1


if __name__ == "__main__":
    sys.exit(main())

"""QAT of a tiny PP-YOLOE+ (kslim's PP-YOLOE+ s config, width and size shrunk): its export loads in
Paddle Inference, fp32 and oneDNN int8. The RepVGG blocks are quantized in their deploy form (their
branch form traced `if self.alpha` into conditional blocks, and the quantized save then wrote a
.pdiparams the program could not load), and the fp32 DFL projection (whole-number weights) does not
pass for an int8 weight in oneDNN's int8 pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from zoo_helpers import SHORTHANDS

pytestmark = pytest.mark.slow

SIZE = 64


def _run(model_dir: Path, precision: str) -> list[np.ndarray]:
    from kslim_runner.measure.predictor import PredictorOptions, create_predictor
    from kslim_runner.measure.program import model_files

    predictor = create_predictor(model_files(model_dir), PredictorOptions(precision=precision, threads=1))
    feeds = {
        "image": np.random.default_rng(0).random((1, 3, SIZE, SIZE), dtype=np.float32),
        "im_shape": np.full((1, 2), SIZE, dtype=np.float32),
        "scale_factor": np.ones((1, 2), dtype=np.float32),
    }
    for name in predictor.get_input_names():
        predictor.get_input_handle(name).copy_from_cpu(feeds[name])
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def test_qat_ppyoloe_export_loads_in_paddle_inference(tmp_path: Path) -> None:
    import paddle
    from kslim_api.v1alpha1 import QATStep
    from kslim_runner.methods.qat import export_quantized, quant_config, quantize
    from kslim_runner.zoo.build import build_model
    from kslim_runner.zoo.config import ZooSource
    from paddle.base import core

    config = tmp_path / "ppyoloe_tiny.yml"
    config.write_text(f"_BASE_: ['{SHORTHANDS / 'ppyoloe_plus_crn_s.yml'}']\nwidth_mult: 0.125\n")
    paddle.seed(0)
    det = build_model(ZooSource(str(config), "ppyoloe_tiny", 3, SIZE))
    wrapper, quanter = quantize(det, quant_config(QATStep()))
    from ppdet.modeling.backbones.cspresnet import RepVggBlock

    rep = [layer for layer in det.sublayers() if isinstance(layer, RepVggBlock)]
    assert rep and all(hasattr(b, "conv") and not hasattr(b, "conv1") for b in rep)  # deploy form
    names = list(det.state_dict())
    before = {k: v.numpy().copy() for k, v in det.state_dict().items()}

    out = export_quantized(wrapper, quanter, tmp_path / "qat", ["a", "b", "c"])

    program = core.ProgramDesc((out / "model.pdmodel").read_bytes())
    assert program.num_blocks() == 1  # no conditional blocks
    after = det.state_dict()
    assert list(after) == names and all(np.array_equal(after[k].numpy(), v) for k, v in before.items())
    for precision in ("fp32", "int8"):
        boxes, num = _run(out, precision)[:2]
        assert boxes.ndim == 2 and boxes.shape[1] == 6 and np.isfinite(boxes).all() and num.shape == (1,)

"""A quantized export whose concat joins a conv+BN+ReLU output with signed inputs (PP-YOLO's CoordConv
on ResNet) runs in Paddle Inference's oneDNN int8: kslim marks that concat to stay fp32. Without the
mark oneDNN refuses it ("could not create a primitive descriptor for a concat primitive"), which
is how examples/ppdet-ppyolo-r50vd-pact.yaml failed its evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
from kslim_runner.measure.predictor import PredictorOptions, create_predictor
from kslim_runner.measure.program import model_files
from kslim_runner.methods.int8_concat import keep_mixed_sign_concats_fp32
from kslim_runner.methods.quant_check import require_quantized
from paddle import nn

SIZE = 16


class CoordNet(nn.Layer):
    """conv+BN+ReLU (oneDNN fuses it and writes unsigned int8), then two concats: with coordinate
    channels in [-1, 1] (mixed signs: must stay fp32) and with itself (all unsigned: stays int8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
        self.bn = nn.BatchNorm2D(8)
        self.coord_conv = nn.Conv2D(10, 8, 1)
        self.pair_conv = nn.Conv2D(16, 8, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = nn.functional.relu(self.bn(self.conv(x)))
        b, h, w = paddle.shape(y)[0], y.shape[2], y.shape[3]
        gx = (paddle.arange(w, dtype="float32") / (w - 1) * 2 - 1).reshape([1, 1, 1, w]).expand([b, 1, h, w])
        gy = (paddle.arange(h, dtype="float32") / (h - 1) * 2 - 1).reshape([1, 1, h, 1]).expand([b, 1, h, w])
        coords = self.coord_conv(paddle.concat([y, gx, gy], axis=1))
        return coords + self.pair_conv(paddle.concat([y, y], axis=1))


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CoordNet after PaddleSlim QAT (kslim's settings: onnx_format), exported."""
    from paddleslim import QAT

    paddle.seed(0)
    net = CoordNet()
    quanter = QAT(
        config={
            "weight_quantize_type": "channel_wise_abs_max",
            "activation_quantize_type": "moving_average_abs_max",
            "quantizable_layer_type": ["Conv2D"],
            "onnx_format": True,
        }
    )
    quanter.quantize(net)
    net.train()
    for _ in range(3):  # moving-average activation scales
        net(paddle.rand([2, 3, SIZE, SIZE]))
    net.eval()
    out = tmp_path_factory.mktemp("coordnet")
    spec = [paddle.static.InputSpec([None, 3, SIZE, SIZE], "float32", "x")]
    try:
        quanter.save_quantized_model(net, str(out / "model"), input_spec=spec)
    finally:
        paddle.disable_static()
    return out


def run(model_dir: Path, x: np.ndarray, precision: str) -> np.ndarray:
    predictor = create_predictor(model_files(model_dir), PredictorOptions(precision=precision, threads=1))
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def test_the_mixed_sign_concat_is_kept_fp32_and_the_model_runs_in_int8(quantized: Path) -> None:
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    with pytest.raises(RuntimeError, match="concat primitive"):  # Paddle 2.6.2's oneDNN int8, unmarked
        run(quantized, x, "int8")

    assert keep_mixed_sign_concats_fp32(quantized) == ["concat_0.tmp_0"]  # not the all-ReLU concat
    assert keep_mixed_sign_concats_fp32(quantized) == ["concat_0.tmp_0"]  # again: the same, harmless
    int8 = run(quantized, x, "int8")
    fp32 = run(quantized, x, "fp32")
    assert int8.shape == (2, 8, SIZE, SIZE)
    assert np.abs(int8 - fp32).max() <= 0.1 * np.abs(fp32).max()  # int8 rounding, not garbage
    assert require_quantized(quantized, "qat").quantized_ops == 3  # every conv still int8

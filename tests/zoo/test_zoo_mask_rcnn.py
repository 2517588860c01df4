"""Mask R-CNN (kslim's own config in PaddleDetection's format, made tiny) through a whole
CompressionJob: QAT, the quantized export run in Paddle Inference with int8, box AP and mask AP
scored by pycocotools on the synthetic shapes' polygons. And a mask model on data without
segmentations ends with exit 2 and one line naming the file and the field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kslim_api.contract import EXIT_OK
from kslim_runner.run import run_command
from support.runs import run_fails
from zoo_helpers import SHORTHANDS, SIZE, zoo_job

pytestmark = pytest.mark.slow

#: ResNet-18 and narrow heads, few proposals: the R50-FPN config's structure at test size.
TINY = """\
_BASE_: ['../_base_/mask_rcnn.yml']
ResNet: {depth: 18, variant: b, norm_type: bn, freeze_norm: false, freeze_at: -1, return_idx: [0, 1, 2, 3]}
FPN: {out_channel: 32}
RPNHead:
  train_proposal: {pre_nms_top_n: 300, post_nms_top_n: 100}
  test_proposal: {pre_nms_top_n: 300, post_nms_top_n: 100}
BBoxAssigner: {batch_size_per_im: 64}
TwoFCHead: {out_channel: 64}
MaskFeat: {num_convs: 1, out_channel: 32}
BBoxPostProcess: {nms: {keep_top_k: 10}}  # masks are made and pasted per detection: few
"""
CONFIG = "configs/mask_rcnn/mask_rcnn_r18_tiny.yml"
#: Loads an exported model in Paddle Inference and runs one image: prints the outputs' shapes.
FRESH_PREDICTOR = f"""
import json, sys
import numpy as np
from paddle import inference
d = sys.argv[1]
config = inference.Config(d + "/model.pdmodel", d + "/model.pdiparams")
config.disable_gpu()
predictor = inference.create_predictor(config)
feeds = {{"image": np.random.rand(1, 3, {SIZE}, {SIZE}).astype("float32"),
          "im_shape": np.array([[{SIZE}, {SIZE}]], "float32"), "scale_factor": np.ones((1, 2), "float32")}}
for name in predictor.get_input_names():
    predictor.get_input_handle(name).reshape(list(feeds[name].shape))
    predictor.get_input_handle(name).copy_from_cpu(feeds[name])
predictor.run()
outs = [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]
print(json.dumps([list(outs[0].shape), outs[1].tolist(), list(outs[2].shape)]))
"""


def mask_tree(root: Path) -> Path:
    """root/configs/{_base_/mask_rcnn.yml, mask_rcnn/mask_rcnn_r18_tiny.yml}: the model config."""
    (root / "configs" / "_base_").mkdir(parents=True, exist_ok=True)
    shutil.copy(SHORTHANDS / "_mask_rcnn.yml", root / "configs" / "_base_" / "mask_rcnn.yml")
    model = root / CONFIG
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text(TINY)
    return model


@pytest.fixture(scope="session")
def mask_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle
    from kslim_runner.zoo.build import build_model
    from kslim_runner.zoo.config import ZooSource

    root = tmp_path_factory.mktemp("mask-weights")
    paddle.seed(0)
    model = build_model(ZooSource(str(mask_tree(root)), "tiny", 3, SIZE))
    path = root / "mask_rcnn.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path


@pytest.fixture
def mask_job(tmp_path: Path, zoo_data: Path, mask_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(tmp_path / "termination-log"))
    monkeypatch.setenv("KSLIM_NO_TQDM", "1")
    shutil.copytree(zoo_data, tmp_path / "data")
    (tmp_path / "weights").mkdir()
    shutil.copy(mask_weights, tmp_path / "weights" / "ppdet.pdparams")
    mask_tree(tmp_path)
    job = zoo_job([{"qat": {"fineTune": {"iterations": 2}}}], config={"uri": f"file://{CONFIG}"})
    job["spec"]["evaluation"]["batchSize"] = 2
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def test_mask_rcnn_qat_reports_box_and_mask_ap(mask_job: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_command(str(mask_job), output=str(out)) == EXIT_OK
    report = json.loads((out / "report.json").read_text())
    base, qat = report["rows"]
    for row in (base, qat):
        assert row["gflops"] > 0 and row["params"] > 0
        assert 0.0 <= row["ap"] <= 1.0 and 0.0 <= row["maskAp"] <= 1.0
        assert row["evaluation"]["images"] == 8
    assert qat["cost"]["quantized"] and "int8" in qat["latencyMs"]
    assert qat["evaluation"]["precision"] == "int8"
    state = json.loads((out / "state.json").read_text())
    infer = yaml.safe_load((out / state["rows"][1]["export_dir"] / "infer_cfg.yml").read_text())
    assert infer["arch"] == "RCNN" and infer["mask"] is True
    assert [op["type"] for op in infer["Preprocess"]][-1] == "PadStride"
    assert "| Mask AP |" in (out / "report.md").read_text()
    # the quantized export runs in a fresh process, where nothing of the export's Python side is set
    code = subprocess.run(
        [sys.executable, "-c", FRESH_PREDICTOR, str(out / state["rows"][1]["export_dir"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert code.returncode == 0, code.stderr[-2000:]
    boxes, num, masks = json.loads(code.stdout.strip().splitlines()[-1])
    assert boxes[1] == 6 and masks[0] == boxes[0] == sum(num) and masks[1:] == [SIZE, SIZE]


def test_a_mask_model_on_boxes_only_data_fails_naming_the_file(
    mask_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    annotations = tmp_path / "data" / "train" / "annotations.json"
    doc = json.loads(annotations.read_text())
    for ann in doc["annotations"]:
        del ann["segmentation"]
    annotations.write_text(json.dumps(doc))
    line = run_fails(mask_job, tmp_path / "out", capsys)
    assert str(annotations) in line and "segmentation" in line and "gt_poly" in line


def test_an_export_with_no_detections_runs_and_reports_none(tmp_path: Path, zoo_data: Path) -> None:
    """No image of a batch has a detection (a score threshold above every score): each gets its
    placeholder box and mask, labelled -1, so evaluation counts no detection. The export used to
    make one stand-in mask per batch, not per image, and failed at two empty images ("The 0th
    element of 'shape' for expand_v2 op must be greater than 0", in mask pasting)."""
    import numpy as np
    import paddle
    from kslim_runner.data.coco import load_coco
    from kslim_runner.measure.coco_eval import evaluate_model
    from kslim_runner.measure.predictor import PredictorOptions, create_predictor, run_detector_masks
    from kslim_runner.measure.program import model_files
    from kslim_runner.zoo.build import build_model
    from kslim_runner.zoo.config import ZooSource
    from kslim_runner.zoo.export import export_model

    config = mask_tree(tmp_path)
    config.write_text(TINY.replace("nms: {keep_top_k: 10}", "nms: {keep_top_k: 10, score_threshold: 1.1}"))
    paddle.seed(0)
    model = build_model(ZooSource(str(config), "tiny", 3, SIZE))
    out = export_model(model, tmp_path / "export", ["a", "b", "c"])

    predictor = create_predictor(model_files(out), PredictorOptions(threads=1))
    image = np.random.default_rng(0).random((3, 3, SIZE, SIZE), dtype=np.float32)
    image[0] = 0.0  # a blank image too
    boxes, num, masks = run_detector_masks(
        predictor, image, np.full((3, 2), SIZE, "float32"), np.ones((3, 2), "float32")
    )
    assert num.tolist() == [1, 1, 1] and boxes[:, 0].tolist() == [-1.0, -1.0, -1.0]
    assert masks is not None and masks.shape == (3, SIZE, SIZE)

    val = load_coco(zoo_data / "val" / "annotations.json", zoo_data / "val" / "images", 3)
    result = evaluate_model(out, val, batch_size=4, score_threshold=0.0, opts=PredictorOptions(threads=1))
    assert result.images == 8 and result.detections == 0
    assert result.ap == 0.0 and result.maskAp == 0.0

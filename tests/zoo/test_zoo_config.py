"""PaddleDetection configs as the runner reads them: _BASE_ includes, errors that name the file and
the key, the job's overrides, PaddleDetection's parameter names, weights checks, and one config at a
time in ppdet's global workspace."""

from __future__ import annotations

from pathlib import Path

import paddle
import pytest
from kslim_runner.errors import UserError
from kslim_runner.zoo.build import build_model, load_weights
from kslim_runner.zoo.config import ZooSource, download_fields, fit_config, read_tree, shorthand_config
from zoo_helpers import SIZE, config_tree


def _source(path: Path, classes: int = 3, size: int = SIZE) -> ZooSource:
    return ZooSource(str(path), path.stem, classes, size)


def test_base_includes_resolve_relative_to_each_file_and_the_file_wins(tmp_path: Path) -> None:
    model = config_tree(tmp_path, model_extra="YOLOv3Loss: {ignore_thresh: 0.5}\n")
    cfg = read_tree(model)
    assert cfg["architecture"] == "YOLOv3"  # from the base, one folder up
    assert cfg["MobileNet"]["scale"] == 0.25
    assert cfg["YOLOv3Loss"] == {"ignore_thresh": 0.5, "downsample": [32, 16, 8], "label_smooth": False}


def test_missing_base_names_the_entry_and_the_including_file(tmp_path: Path) -> None:
    model = tmp_path / "m.yml"
    model.write_text("_BASE_: ['../nowhere/base.yml']\narchitecture: YOLOv3\n")
    with pytest.raises(UserError, match=r"m.yml: _BASE_ entry '../nowhere/base.yml' not found") as e:
        read_tree(model)
    assert e.value.reason == "DataNotFound"


def test_missing_config_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope.yml not found"):
        fit_config(_source(tmp_path / "nope.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("architecture: [YOLOv3\n")
    with pytest.raises(UserError, match=r"bad.yml is not valid YAML"):
        fit_config(_source(bad))


def test_unknown_architecture_and_module_are_refused(tmp_path: Path) -> None:
    model = config_tree(tmp_path, model_extra="architecture: YOLOv9000\n")
    with pytest.raises(UserError, match=r"architecture YOLOv9000 is not a class PaddleDetection 2.6 knows"):
        fit_config(_source(model))
    model = config_tree(tmp_path, model_extra="YOLOv3: {backbone: MobileNetV99}\n")
    with pytest.raises(
        UserError, match=r"YOLOv3.backbone is MobileNetV99, which PaddleDetection 2.6 does not"
    ):
        fit_config(_source(model))


def test_job_overrides_classes_sizes_norm_and_downloads(tmp_path: Path) -> None:
    extra = "norm_type: sync_bn\npretrain_weights: https://example.invalid/MobileNetV1_pretrained.pdparams\n"
    model = config_tree(tmp_path, model_extra=extra)
    cfg, notes = fit_config(_source(model, classes=5, size=128))
    assert cfg["num_classes"] == 5
    assert cfg["norm_type"] == "bn" and any("sync_bn" in n for n in notes)
    assert "pretrain_weights" not in cfg
    train = cfg["TrainReader"]["batch_transforms"][0]["BatchRandomResize"]
    assert train["target_size"] == [128]
    assert cfg["EvalReader"]["sample_transforms"][1]["Resize"]["target_size"] == [128, 128]
    assert cfg["TestReader"]["inputs_def"]["image_shape"] == [3, 128, 128]
    assert download_fields(model) == {
        "pretrain_weights": "https://example.invalid/MobileNetV1_pretrained.pdparams"
    }


def test_keep_ratio_resizes_keep_the_configs_proportion(tmp_path: Path) -> None:
    extra = (
        "EvalReader:\n  sample_transforms:\n  - Decode: {}\n"
        "  - Resize: {target_size: [800, 1333], keep_ratio: true}\n"
    )
    cfg, _ = fit_config(_source(config_tree(tmp_path, model_extra=extra), size=320))
    assert cfg["EvalReader"]["sample_transforms"][1]["Resize"]["target_size"] == [320, 533]


def test_model_has_paddledetection_names_the_same_on_every_build(tmp_path: Path) -> None:
    source = _source(config_tree(tmp_path))
    first = build_model(source)
    keys = list(first.state_dict())
    assert "backbone.conv1._conv.weight" in keys
    assert "neck.yolo_block.0.conv_module.conv0.conv.weight" in keys
    assert "yolo_head.yolo_output.2.bias" in keys
    assert first.state_dict()["yolo_head.yolo_output.0.weight"].shape[0] == 3 * (5 + 3)
    # prune configs name Paddle's generated names; they must not drift with what was built before
    build_model(_source(shorthand_config("yolov3_darknet53")))
    again = build_model(source)
    assert [p.name for p in again.parameters()] == [p.name for p in first.parameters()]
    assert again.parameters()[0].name == "conv2d_0.w_0"


def test_configs_do_not_leak_into_each_other(tmp_path: Path) -> None:
    """ppdet merges every config into one global dict; a teacher's settings must not reach the student."""
    source = _source(config_tree(tmp_path))
    alone = {k: list(v.shape) for k, v in build_model(source).state_dict().items()}
    build_model(ZooSource(str(shorthand_config("yolov3_mobilenet_v3")), "v3", 7, 160, 0.5))
    after = {k: list(v.shape) for k, v in build_model(source).state_dict().items()}
    assert after == alone


def test_weights_mismatch_names_the_first_bad_key_and_shapes(tmp_path: Path) -> None:
    source = _source(config_tree(tmp_path))
    model = build_model(source)
    other = build_model(_source(config_tree(tmp_path), classes=4))
    path = tmp_path / "four-classes.pdparams"
    paddle.save(other.state_dict(), str(path))
    with pytest.raises(UserError, match=r"yolo_head.yolo_output.0.weight has shape \[27, ") as e:
        load_weights(model, path)
    assert "check model.numClasses" in str(e.value) and e.value.reason == "BadWeights"
    state = model.state_dict()
    state.pop("backbone.conv1._conv.weight")
    paddle.save(state, str(path))
    with pytest.raises(UserError, match=r"backbone.conv1._conv.weight is missing \(1 of "):
        load_weights(model, path)


def test_width_only_for_mobilenet_shorthands() -> None:
    with pytest.raises(UserError, match=r"model.width applies to MobileNet backbones"):
        fit_config(ZooSource(str(shorthand_config("yolov3_darknet53")), "d53", 3, 96, 0.5))
    with pytest.raises(UserError, match=r"unknown architecture yolov9; shorthands: .*yolov3_mobilenet_v1"):
        shorthand_config("yolov9")


def test_ssd_priors_and_target_classes_follow_the_job() -> None:
    ssd, _ = fit_config(ZooSource(str(shorthand_config("ssd_mobilenet_v1")), "ssd", 3, 150))
    prior = ssd["SSDHead"]["anchor_generator"]
    assert prior["base_size"] == 150 and prior["min_sizes"][0] == 30.0  # 60 px of 300 -> 30 px of 150
    assert prior["max_sizes"][:2] == [[], 75.0]
    ppyolo, _ = fit_config(ZooSource(str(shorthand_config("ppyolo_mbv3_large")), "pp", 5, SIZE))
    gt2yolo = [
        op["Gt2YoloTarget"] for op in ppyolo["TrainReader"]["batch_transforms"] if "Gt2YoloTarget" in op
    ]
    assert gt2yolo and all(args.get("num_classes", 5) == 5 for args in gt2yolo)


def test_an_input_size_off_the_stride_is_checked_by_building_the_model() -> None:
    from kslim_runner.zoo.build import check_input_size

    check_input_size(ZooSource(str(shorthand_config("ssd_mobilenet_v1")), "ssd", 3, 100))
    with pytest.raises(
        UserError, match=r"model.inputSize 100 does not fit the model of .*use a multiple of 32"
    ):
        check_input_size(ZooSource(str(shorthand_config("yolov3_mobilenet_v1")), "v1", 3, 100, 0.25))


@pytest.mark.parametrize(
    "config", ["ppyolo_mbv3_large", "ppyolo_r50vd_dcn", "ppyolov2_r50vd_dcn", "ssd_mobilenet_v1"]
)
def test_kslim_configs_build_the_parameters_paddledetections_slim_configs_name(config: str) -> None:
    """kslim's configs build the same parameters as PaddleDetection 2.6's own (bench/zoo_fidelity.py
    compares keys, shapes and Paddle names against a PaddleDetection checkout); here, without one:
    the convs the seed's prune configs name are neck convs of kslim's model."""
    model = build_model(_source(shorthand_config(config)))
    names = {p.name: k for k, p in model.named_parameters()}
    assert names["conv2d_0.w_0"].startswith("backbone.")
    if config == "ppyolo_mbv3_large":  # configs/slim/prune/ppyolo_mbv3_large_prune_fpgm.yml
        assert all(names[f"conv2d_{i}.w_0"].startswith("neck.") for i in range(62, 68))
    if config == "ppyolo_r50vd_dcn":  # configs/slim/prune/ppyolo_r50vd_prune_fpgm.yml
        assert all(names[f"conv2d_{i}.w_0"].startswith("neck.") for i in (56, 61, 63, 68, 70, 75))


def test_the_api_packages_list_of_ppdet_classes_is_ppdets() -> None:
    """kslim_api keeps ppdet's registered class names as data (it must not import Paddle); this
    catches a PaddleDetection upgrade that changes them."""
    from kslim_api.ppdet_modules import PPDET_CLASSES
    from kslim_runner.zoo import lib

    lib.ppdet()
    assert lib._PRISTINE is not None
    actual = {k for k, v in lib._PRISTINE.items() if hasattr(v, "schema")}
    assert actual == PPDET_CLASSES, (
        f"regenerate api/kslim_api/ppdet_modules.py: {sorted(actual ^ PPDET_CLASSES)}"
    )

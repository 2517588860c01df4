"""PaddleDetection slim configs -> strategy steps: each slim kind, and every way a config can be wrong."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from api_cases import valid_job
from kslim_api.slimconfig import SlimConfigError, convert_slim_config
from kslim_api.validate import InvalidJobError, load_job, load_slim_config

PRUNER = """
pretrain_weights: https://example.com/models/yolov3_mobilenet_v1_voc.pdparams
weight_type: resume
slim: Pruner
Pruner:
  criterion: {criterion}
  pruned_params: ['conv2d_27.w_0', 'conv2d_28.w_0', 'conv2d_29.w_0']
  pruned_ratios: [0.1, 0.25, 0.3]
  print_params: False
"""

QAT = """
pretrain_weights: pvc://models/yolov3_mobilenet_v1_coco.pdparams
slim: QAT
QAT:
  quant_config: {
    'weight_quantize_type': 'channel_wise_abs_max', 'activation_quantize_type': 'moving_average_abs_max',
    'weight_bits': 8, 'activation_bits': 8, 'dtype': 'int8', 'window_size': 10000, 'moving_rate': 0.9,
    'quantizable_layer_type': ['Conv2D', 'Linear']}
  print_model: True
"""

QAT_PACT = """
pretrain_weights: pvc://models/ppyolo_r50vd.pdparams
slim: QAT
QAT:
  quant_config: {
    'activation_preprocess_type': 'PACT', 'weight_quantize_type': 'abs_max',
    'activation_quantize_type': 'moving_average_abs_max', 'quantizable_layer_type': ['Conv2D']}
  print_model: False
epoch: 50
LearningRate:
  base_lr: 0.0005
"""

PTQ = """
weights: s3://models/yolov3_darknet53_coco.pdparams
slim: PTQ
PTQ:
  ptq_config: {'activation_quantizer': 'HistQuantizer', 'upsample_bins': 127, 'hist_percent': 0.999}
  quant_batch_num: 10
  fuse: True
"""

DISTILL = """
_BASE_: [
  '../../yolov3/yolov3_r34_270e_coco.yml',
]
pretrain_weights: https://example.com/models/yolov3_r34_270e_coco.pdparams
slim: Distill
distill_loss: DistillYOLOv3Loss
DistillYOLOv3Loss:
  weight: 1000
"""

DISTILL_PRUNE = (
    DISTILL.replace("slim: Distill", "slim: DistillPrune")
    + """
pruner: Pruner
Pruner:
  criterion: l1_norm
  pruned_params: ['conv2d_27.w_0', 'conv2d_28.w_0']
  pruned_ratios: [0.5, 0.7]
"""
)

PRUNER_QAT = """
pretrain_weights: pvc://models/yolov3_mobilenet_v1_voc.pdparams
slim: PrunerQAT
PrunerQAT:
  criterion: fpgm
  pruned_params: ['conv2d_27.w_0']
  pruned_ratios: [0.2]
  print_prune_params: False
  quant_config: {'weight_quantize_type': 'channel_wise_abs_max', 'weight_bits': 8, 'activation_bits': 8}
  print_qat_model: True
"""


UNSTRUCTURED = """
pretrain_weights: pvc://models/picodet_m_320_coco.pdparams
slim: UnstructuredPruner
UnstructuredPruner:
  stable_epochs: 0
  pruning_epochs: 150
  tunning_epochs: 150
  pruning_steps: 300
  ratio: 0.75
  initial_ratio: 0.15
  prune_params_type: conv1x1_only
"""


def test_unstructured_pruner_becomes_a_sparsify_step_with_its_gmp_schedule() -> None:
    conv = convert_slim_config(UNSTRUCTURED)
    (step,) = conv.steps
    sp = step.sparsify
    assert sp is not None and sp.ratio == "0.75" and sp.params_type == "conv1x1" and sp.local_sparsity
    assert sp.gmp is not None and (sp.gmp.unit, sp.gmp.stable, sp.gmp.pruning, sp.gmp.tuning) == (
        "epochs",
        0,
        150,
        150,
    )
    assert (sp.gmp.pruning_steps, sp.gmp.initial_ratio) == (300, "0.15")
    assert conv.weights == "pvc://models/picodet_m_320_coco.pdparams" and not conv.notes
    epoch = convert_slim_config(UNSTRUCTURED + "epoch: 20\n").steps[0].sparsify
    assert epoch is not None and epoch.fine_tune.epochs == 20


def test_ofa_is_refused_in_one_line_naming_what_fails(tmp_path: Path) -> None:
    path = tmp_path / "ofa.yml"
    path.write_text("slim: OFA\nOFA: {ofa_config: {task: expand_ratio, expand_ratio: [0.5, 1]}}\n")
    with pytest.raises(InvalidJobError) as exc:
        load_slim_config(str(path))
    problem = str(exc.value)
    assert len(exc.value.errors) == 1 and "\n" not in problem
    assert "OFA.export" in problem and "batch norms" in problem and "measured" in problem


@pytest.mark.parametrize("criterion", ["l1_norm", "fpgm"])
def test_pruner_becomes_a_prune_step_with_per_parameter_ratios(criterion: str) -> None:
    conv = convert_slim_config(PRUNER.format(criterion=criterion))
    (step,) = conv.steps
    assert step.prune is not None
    assert step.prune.criterion == criterion
    assert step.prune.ratios == {"conv2d_27.w_0": "0.1", "conv2d_28.w_0": "0.25", "conv2d_29.w_0": "0.3"}
    assert conv.weights is None, "an http(s) URL is not downloaded: a note, and model.weights decides"
    assert any(n.startswith("pretrain_weights: https://") and "downloads nothing" in n for n in conv.notes)
    assert any("print_params" in n for n in conv.notes) and any("weight_type" in n for n in conv.notes)


def test_qat_becomes_a_qat_step() -> None:
    conv = convert_slim_config(QAT)
    (step,) = conv.steps
    assert step.qat is not None
    assert step.qat.pact is False and step.qat.weight_pact is False
    assert step.qat.weight_quantize_type == "channel_wise_abs_max"
    assert step.qat.moving_rate == "0.9" and step.qat.window_size == 10000
    assert step.qat.quantizable_layer_types == ["Conv2D", "Linear"]
    assert conv.weights == "pvc://models/yolov3_mobilenet_v1_coco.pdparams"


def test_qat_with_pact_and_training_budget() -> None:
    conv = convert_slim_config(QAT_PACT)
    (step,) = conv.steps
    assert step.qat is not None and step.qat.pact is True
    assert step.qat.weight_quantize_type == "abs_max" and step.qat.quantizable_layer_types == ["Conv2D"]
    assert step.qat.fine_tune.epochs == 50 and step.qat.fine_tune.learning_rate == "0.0005"


def test_weight_pact() -> None:
    conv = convert_slim_config(
        QAT.replace("'weight_bits'", "'weight_preprocess_type': 'PACT', 'weight_bits'")
    )
    assert conv.steps[0].qat is not None and conv.steps[0].qat.weight_pact is True


def test_ptq_becomes_a_ptq_step() -> None:
    conv = convert_slim_config(PTQ)
    (step,) = conv.steps
    assert step.ptq is not None
    assert (step.ptq.algo, step.ptq.hist_percent, step.ptq.batch_num) == ("hist", "0.999", 10)
    assert step.ptq.weight_quantize_type == "channel_wise_abs_max"
    assert conv.weights == "s3://models/yolov3_darknet53_coco.pdparams" and conv.weights_key == "weights"
    assert any("upsample_bins" in n for n in conv.notes)


@pytest.mark.parametrize(("quantizer", "algo"), [("KLQuantizer", "KL"), ("AbsmaxQuantizer", "abs_max")])
def test_ptq_quantizers(quantizer: str, algo: str) -> None:
    conv = convert_slim_config(PTQ.replace("HistQuantizer", quantizer))
    assert conv.steps[0].ptq is not None and conv.steps[0].ptq.algo == algo


def test_distill_names_the_teacher_from_base_and_its_weights() -> None:
    conv = convert_slim_config(DISTILL)
    (step,) = conv.steps
    assert step.distill is not None
    assert step.distill.teacher.architecture.value == "yolov3_resnet34"
    assert step.distill.teacher.weights is None, "an http(s) URL is a note, not teacher weights"
    assert any("pretrain_weights: https://" in n for n in conv.notes)
    assert step.distill.loss == "yolov3" and step.distill.weight == "1000"
    assert conv.weights is None, "in a distill config pretrain_weights are the teacher's, not the student's"


def test_distill_prune_prunes_first_then_distills_without_an_extra_fine_tune() -> None:
    conv = convert_slim_config(DISTILL_PRUNE)
    assert [s.method for s in conv.steps] == ["prune", "distill"]
    prune = conv.steps[0].prune
    assert prune is not None and prune.criterion == "l1_norm" and prune.fine_tune.iterations == 0
    assert prune.ratios == {"conv2d_27.w_0": "0.5", "conv2d_28.w_0": "0.7"}


def test_pruner_qat() -> None:
    conv = convert_slim_config(PRUNER_QAT)
    assert [s.method for s in conv.steps] == ["prune", "qat"]
    assert conv.steps[0].prune is not None and conv.steps[0].prune.fine_tune.iterations == 0
    assert len(conv.notes) == 2


def problems(text: str) -> list[str]:
    with pytest.raises(SlimConfigError) as info:
        convert_slim_config(textwrap.dedent(text))
    return info.value.problems


def test_unsupported_keys_are_named_never_ignored() -> None:
    found = problems(
        QAT_PACT.replace("'PACT',", "'PACT', 'for_tensorrt': True,")
        + "\nOptimizerBuilder: {optimizer: {type: SGD}}\nLearningRate2: 1\n"
    )
    assert any(p.startswith("QAT.quant_config.for_tensorrt:") for p in found)
    assert any(p.startswith("OptimizerBuilder.optimizer.type: 'SGD'") for p in found)
    assert any(
        p.startswith("LearningRate2: unknown section") and "nearest known key: LearningRate" in p
        for p in found
    )


def test_tagged_yaml_is_read_and_the_scheduler_is_named() -> None:
    found = problems(QAT + "LearningRate:\n  base_lr: 0.001\n  schedulers:\n  - !OneCycle\n    gamma: 0.1\n")
    assert found == [
        "LearningRate.schedulers[0]: 'OneCycle' is not supported "
        "(!PiecewiseDecay, !CosineDecay, !LinearWarmup)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slim: OFA\n", "OFA.export cuts a PicoDet sub-network's convs but not their batch norms"),
        ("slim: UnstructuredPruner\n", "UnstructuredPruner: required with slim: UnstructuredPruner"),
        (UNSTRUCTURED.replace("ratio: 0.75", "ratio: 1.5"), "UnstructuredPruner.ratio: 1.5 is not a ratio"),
        (UNSTRUCTURED.replace("conv1x1_only", "conv3x3_only"), "UnstructuredPruner.prune_params_type"),
        (UNSTRUCTURED.replace("  initial_ratio: 0.15\n", ""), "UnstructuredPruner.initial_ratio: required"),
        (UNSTRUCTURED + "  local_sparsity: false\n", "UnstructuredPruner.local_sparsity: not supported"),
        (UNSTRUCTURED.replace("pruning_steps: 300", "pruning_steps: -1"), "pruning_steps: -1 is not a whole"),
        ("Pruner: {}\n", "slim: None is not supported"),
        ("slim: [\n", "not valid YAML: line 2"),
        ("- slim: QAT\n", "must be a YAML mapping"),
        ("slim: QAT\n", "QAT: required with slim: QAT"),
        ("slim: QAT\nQAT: {quant_config: {weight_bits: 4}}\n", "weightBits"),
        ("slim: QAT\nQAT: {quant_config: {dtype: uint8}}\n", "QAT.quant_config.dtype"),
        ("slim: QAT\nQAT: {quant_config: {activation_preprocess_type: LSQ}}\n", "activation_preprocess_type"),
        (PRUNER.format(criterion="l2_norm"), "Pruner.criterion: 'l2_norm' is not supported"),
        (PRUNER.format(criterion="fpgm").replace("0.3]", "1.0]"), "Pruner.pruned_ratios[2]"),
        (PRUNER.format(criterion="fpgm").replace(", 0.3]", "]"), "one ratio per pruned_params entry (3)"),
        (PRUNER.format(criterion="fpgm").replace("conv2d_29", "conv2d_28"), "Pruner.pruned_params[2]"),
        (PRUNER.format(criterion="fpgm").replace("https://", "ftp://"), "pretrain_weights: 'ftp://"),
        (PRUNER.format(criterion="fpgm") + "QAT: {quant_config: {}}\n", "QAT: not read with slim: Pruner"),
        (PRUNER.format(criterion="fpgm") + "distill_loss: DistillYOLOv3Loss\n", "distill_loss: only read"),
        (PTQ.replace("HistQuantizer", "MSEQuantizer"), "PTQ.ptq_config.activation_quantizer: 'MSEQuantizer'"),
        (PTQ.replace("fuse: True", "fuse: False"), "PTQ.fuse: False is not supported"),
        (PTQ + "  output_dir: out\n", "PTQ.output_dir"),
        (PTQ + "epoch: 3\n", "PTQ does not train"),
        (DISTILL.replace("yolov3_r34", "ppyoloe_plus_crn_l"), "_BASE_: '../../yolov3/ppyoloe_plus_crn_l"),
        (DISTILL.replace("DistillYOLOv3Loss\n", "FGDFeatureLoss\n", 1), "distill_loss: 'FGDFeatureLoss'"),
        (DISTILL + "slim_method: CWD\n", "does not go with slim_method: CWD; it takes CWDFeatureLoss"),
        (DISTILL + "weights: pvc://models/student.pdparams\n", "weights: not read with distillation"),
        (DISTILL.replace("weight: 1000", "weight: 1000\n  alpha: 2"), "DistillYOLOv3Loss.alpha"),
        (
            DISTILL_PRUNE.replace("pruner: Pruner", "pruner: UnstructuredPruner"),
            "pruner: 'UnstructuredPruner'",
        ),
    ],
)
def test_bad_slim_configs_say_which_key(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


# --- in a job -----------------------------------------------------------------------------------------


def slim_job(text: str, **model: object) -> dict[str, object]:
    doc = valid_job()
    spec = doc["spec"]
    del spec["strategy"]
    spec["slimConfig"] = textwrap.dedent(text)
    spec["model"].update(model)
    return doc


def test_job_with_slim_config_resolves_steps_and_weights() -> None:
    doc = slim_job(QAT)
    del doc["spec"]["model"]["weights"]  # type: ignore[index]
    spec = load_job(doc).spec
    assert [s.method for s in spec.resolved_steps()] == ["qat"]
    weights = spec.resolved_weights()
    assert weights is not None and weights.uri == "pvc://models/yolov3_mobilenet_v1_coco.pdparams"


def test_job_weights_win_when_they_agree_and_conflicts_are_errors() -> None:
    load_job(slim_job(QAT, weights={"uri": "pvc://models/yolov3_mobilenet_v1_coco.pdparams"}))
    with pytest.raises(InvalidJobError) as info:
        load_job(slim_job(QAT))  # valid_job() has other weights
    (err,) = info.value.errors
    assert err.path == "spec.slimConfig" and "disagree" in err.message


def test_job_with_bad_slim_config_reports_each_problem_at_slim_config() -> None:
    with pytest.raises(InvalidJobError) as info:
        load_job(slim_job("slim: QAT\nQAT: {quant_config: {dtype: uint8, foo: 1}}\n"))
    assert [e.path for e in info.value.errors] == ["spec.slimConfig", "spec.slimConfig"]
    assert "QAT.quant_config.dtype" in info.value.errors[0].message
    assert "QAT.quant_config.foo" in info.value.errors[1].message


def test_inference_model_job_accepts_only_a_ptq_slim_config() -> None:
    inference = {"architecture": None, "weights": None, "inferenceModel": {"uri": "pvc://models/ppyolo"}}
    doc = slim_job(PTQ.replace("weights: s3://models/yolov3_darknet53_coco.pdparams\n", ""), **inference)
    model = doc["spec"]["model"]  # type: ignore[index]
    for key in ("architecture", "weights"):
        del model[key]
    load_job(doc)
    doc["spec"]["slimConfig"] = QAT  # type: ignore[index]
    with pytest.raises(InvalidJobError) as info:
        load_job(doc)
    messages = [str(e) for e in info.value.errors]
    assert any("spec.slimConfig: slimConfig is slim: QAT" in m for m in messages), messages
    assert any("pretrain_weights" in m for m in messages), messages


# --- training sections, module overrides, runtime keys (issue 18) ------------------------------------

QAT_TRAINING = """\
pretrain_weights: pvc://models/ppyolo_r50vd.pdparams
slim: QAT
QAT:
  quant_config: {'weight_quantize_type': 'channel_wise_abs_max', 'activation_preprocess_type': 'PACT'}
  print_model: True
epoch: 50
snapshot_epoch: 8
worker_num: 4
TrainReader:
  batch_size: 96
  shuffle: True
  batch_transforms:
  - PadBatch: {pad_to_stride: 32}
LearningRate:
  base_lr: 0.0005
  schedulers:
  - !PiecewiseDecay
    gamma: 0.1
    milestones: [30, 45]
  - !LinearWarmup
    start_factor: 0.
    steps: 1000
OptimizerBuilder:
  clip_grad_by_norm: 35.
  optimizer: {momentum: 0.9, type: Momentum}
  regularizer: {factor: 0.0005, type: L2}
PPYOLOFPN:
  coord_conv: true
  drop_block: false
"""


def _fine_tune(text: str) -> Any:
    step = convert_slim_config(text).steps[-1]
    body = step.qat or step.distill or step.prune
    assert body is not None
    return body.fine_tune


def test_epoch_and_train_reader_batch_size() -> None:
    ft = _fine_tune(QAT_TRAINING)
    assert ft.epochs == 50 and ft.batch_size == 96


def test_piecewise_decay_and_linear_warmup() -> None:
    ft = _fine_tune(QAT_TRAINING)
    assert ft.learning_rate == "0.0005"
    assert (ft.lr_schedule, ft.decay_epochs, ft.decay_gamma) == ("piecewise", [30, 45], "0.1")
    assert (ft.warmup_iterations, ft.warmup_start_factor) == (1000, "0.0")


def test_cosine_decay_notes_its_span() -> None:
    text = QAT + "LearningRate:\n  base_lr: 0.024\n  schedulers:\n  - !CosineDecay\n    max_epochs: 300\n"
    conv = convert_slim_config(text)
    ft = _fine_tune(text)
    assert ft.lr_schedule == "cosine" and ft.decay_epochs is None and ft.learning_rate == "0.024"
    assert any(
        n.startswith("LearningRate.schedulers[0] !CosineDecay.max_epochs: 300 ignored") for n in conv.notes
    )


def test_gamma_list_of_powers_is_one_factor() -> None:
    text = (
        QAT + "LearningRate:\n  schedulers:\n  - !PiecewiseDecay {gamma: [0.1, 0.01], milestones: [8, 11]}\n"
    )
    assert _fine_tune(text).decay_gamma == "0.1"
    bad = QAT + "LearningRate:\n  schedulers:\n  - !PiecewiseDecay {gamma: [0.1, 0.5], milestones: [8, 11]}\n"
    assert any("gamma" in p for p in problems(bad))


def test_use_warmup_false_turns_warmup_off() -> None:
    text = QAT + "LearningRate:\n  schedulers:\n  - !PiecewiseDecay {milestones: [3], use_warmup: false}\n"
    assert _fine_tune(text).warmup_iterations == 0


def test_no_schedulers_is_a_note() -> None:
    conv = convert_slim_config(QAT + "LearningRate: {base_lr: 0.01}\n")
    assert any(n.startswith("LearningRate: no schedulers given") for n in conv.notes)


def test_optimizer_builder_momentum_l2_and_clip() -> None:
    ft = _fine_tune(QAT_TRAINING)
    assert (ft.optimizer, ft.momentum, ft.weight_decay, ft.grad_clip_norm) == (
        "momentum",
        "0.9",
        "0.0005",
        "35.0",
    )


def test_adamw_weight_decay() -> None:
    ft = _fine_tune(QAT + "OptimizerBuilder: {optimizer: {type: AdamW, weight_decay: 0.05}}\n")
    assert (ft.optimizer, ft.weight_decay) == ("adamw", "0.05")


def test_module_overrides_and_reader_overrides_travel_for_the_model() -> None:
    conv = convert_slim_config(QAT_TRAINING)
    assert conv.override_target == "model"
    assert conv.model_overrides == {
        "PPYOLOFPN": {"coord_conv": True, "drop_block": False},
        "TrainReader": {"batch_transforms": [{"PadBatch": {"pad_to_stride": 32}}]},
    }
    assert any(n.startswith("PPYOLOFPN: merged over the model config") for n in conv.notes)


def test_runtime_and_reader_keys_are_notes() -> None:
    notes = convert_slim_config(QAT_TRAINING).notes
    for key in ("snapshot_epoch: ignored", "worker_num: ignored", "TrainReader.shuffle: ignored"):
        assert any(n.startswith(key) for n in notes), key


def test_unknown_section_names_the_nearest_key() -> None:
    found = problems(QAT + "PPYOLOFNP: {coord_conv: true}\n")
    assert found == [
        "PPYOLOFNP: unknown section: not a slim setting kslim reads nor a module PaddleDetection 2.6.0 "
        "registers; nearest known key: PPYOLOFPN"
    ]


def test_slim_method_paddledetection_does_not_have() -> None:
    (found,) = problems("slim: QATT\n")
    assert "not a PaddleDetection 2.6.0 slim method" in found and "nearest known key: QAT" in found


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("epoch: 0\n", "epoch: 0"),
        ("TrainReader: {batch_size: -1}\n", "TrainReader.batch_size"),
        ("LearningRate:\n  schedulers:\n  - !LinearWarmup {start_factor: 2}\n", "start_factor: 2"),
        ("LearningRate:\n  schedulers:\n  - !PiecewiseDecay {milestones: [45, 30]}\n", "milestones"),
        ("OptimizerBuilder: {optimizer: {type: Momentum, momentum: 1.5}}\n", "momentum: 1.5"),
        ("OptimizerBuilder: {regularizer: {type: L1, factor: 0.1}}\n", "regularizer.type: 'L1'"),
        ("PPYOLOFPN: 3\n", "PPYOLOFPN: a module override is a mapping"),
    ],
)
def test_bad_training_sections_name_the_key(extra: str, key: str) -> None:
    assert any(key in p for p in problems(QAT + extra))


def test_teacher_base_becomes_a_teacher_config_next_to_the_slim_config() -> None:
    text = DISTILL.replace("yolov3_r34_270e_coco", "gfl_r101vd_fpn_mstrain_2x_coco").replace(
        "../../yolov3/", "../../gfl/"
    )
    conv = convert_slim_config(text, "pvc://models/configs/slim/distill/my_distill.yml")
    teacher = conv.steps[0].distill.teacher  # type: ignore[union-attr]
    assert teacher.config is not None
    assert teacher.config.uri == "pvc://models/configs/gfl/gfl_r101vd_fpn_mstrain_2x_coco.yml"
    assert conv.bases == ("pvc://models/configs/gfl/gfl_r101vd_fpn_mstrain_2x_coco.yml",)


def test_overrides_are_refused_for_a_built_in_architecture() -> None:
    with pytest.raises(InvalidJobError) as info:
        load_job(slim_job(QAT + "PPYOLOFPN: {coord_conv: true}\n", weights=None))
    assert any("model.architecture" in str(e) for e in info.value.errors)


#: Representative slim configs in PaddleDetection's format (written for these tests).
REAL_FORMAT = {
    "yolov3_mbv3_qat.yml": QAT_TRAINING.replace("PPYOLOFPN", "YOLOv3FPN"),
    "picodet_qat.yml": QAT.replace(
        "pvc://models/yolov3_mobilenet_v1_coco.pdparams", "https://x.example/p.pdparams"
    )
    + "TrainReader:\n  batch_size: 48\nLearningRate:\n  base_lr: 0.024\n  schedulers:\n"
    "  - !CosineDecay\n    max_epochs: 300\n  - !LinearWarmup\n    start_factor: 0.1\n    steps: 300\n",
    "prune.yml": PRUNER.format(criterion="fpgm"),
    "ptq.yml": PTQ,
    "distill_prune.yml": DISTILL_PRUNE,
    "prune_qat.yml": PRUNER_QAT,
}


@pytest.mark.parametrize("name", sorted(REAL_FORMAT))
def test_representative_real_format_configs_convert(name: str) -> None:
    assert convert_slim_config(REAL_FORMAT[name]).steps


PPDET_CONFIGS = os.environ.get("KSLIM_PPDET_CONFIGS")
#: PaddleDetection 2.6.0's slim configs kslim does not convert yet: the parts of issue 18 that add
#: PPYOLOEDistill (its depth_mult/width_mult/for_distill/architecture keys) remove their files from
#: here as they land.
#: Refused on purpose, with the one line that says why (measured: the exported OFA sub-network
#: does not run; bench/ofa_probe.py).
PPDET_REFUSED = {"ofa/ofa_picodet_demo.yml": "slim: 'OFA' is not supported: PaddleSlim 2.6's OFA.export"}


@pytest.mark.skipif(not PPDET_CONFIGS, reason="set KSLIM_PPDET_CONFIGS to a PaddleDetection configs/ tree")
def test_every_paddledetection_slim_config_converts() -> None:
    root = Path(PPDET_CONFIGS or "") / "slim"
    files = sorted(root.rglob("*.yml"))
    assert files, f"no slim configs under {root}"
    failed = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            load_slim_config(str(path))
        except InvalidJobError as exc:
            if not (rel in PPDET_REFUSED and PPDET_REFUSED[rel] in str(exc)):
                failed[rel] = str(exc)
    assert not failed, failed


def test_shared_global_keys_and_architecture_are_overrides_of_the_teacher() -> None:
    """PP-YOLOE+ distillation configs set ppdet's shared globals (width_mult, for_distill) and the
    root class at the top level; they reach the teacher config as PaddleDetection merges them."""
    conv = convert_slim_config(
        textwrap.dedent(
            """\
            _BASE_: ['pvc://models/configs/ppyoloe/ppyoloe_plus_crn_l_80e_coco.yml']
            depth_mult: 1.0
            width_mult: 0.75
            for_distill: true
            architecture: PPYOLOE
            find_unused_parameters: true
            slim: Distill
            slim_method: PPYOLOEDistill
            distill_loss: DistillPPYOLOELoss
            DistillPPYOLOELoss: {loss_weight: {logits: 4.0, feat: 1.0}}
            """
        )
    )
    assert conv.override_target == "teacher"
    assert {
        k: conv.model_overrides[k] for k in ("depth_mult", "width_mult", "for_distill", "architecture")
    } == {
        "depth_mult": 1.0,
        "width_mult": 0.75,
        "for_distill": True,
        "architecture": "PPYOLOE",
    }
    assert any(n.startswith("find_unused_parameters: ignored") for n in conv.notes), conv.notes


def test_an_architecture_ppdet_does_not_register_is_refused() -> None:
    with pytest.raises(SlimConfigError, match="architecture: 'PPYOLOX' is not a class PaddleDetection"):
        convert_slim_config("slim: QAT\nQAT: {quant_config: {}}\narchitecture: PPYOLOX\n")

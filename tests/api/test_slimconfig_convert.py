"""PaddleDetection slim configs -> strategy steps: each slim kind, and every way a config can be wrong."""

from __future__ import annotations

import textwrap

import pytest
from api_cases import valid_job
from kslim_api.slimconfig import SlimConfigError, convert_slim_config
from kslim_api.validate import InvalidJobError, load_job

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


@pytest.mark.parametrize("criterion", ["l1_norm", "fpgm"])
def test_pruner_becomes_a_prune_step_with_per_parameter_ratios(criterion: str) -> None:
    conv = convert_slim_config(PRUNER.format(criterion=criterion))
    (step,) = conv.steps
    assert step.prune is not None
    assert step.prune.criterion == criterion
    assert step.prune.ratios == {"conv2d_27.w_0": "0.1", "conv2d_28.w_0": "0.25", "conv2d_29.w_0": "0.3"}
    assert conv.weights == "https://example.com/models/yolov3_mobilenet_v1_voc.pdparams"
    assert conv.weights_key == "pretrain_weights"
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
    assert step.distill.teacher.weights is not None
    assert step.distill.teacher.weights.uri == "https://example.com/models/yolov3_r34_270e_coco.pdparams"
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
        + "\nOptimizerBuilder: {optimizer: {type: Momentum}}\nLearningRate2: 1\n"
    )
    assert any(p.startswith("QAT.quant_config.for_tensorrt:") for p in found)
    assert any(p.startswith("OptimizerBuilder:") for p in found)
    assert any(p.startswith("LearningRate2:") for p in found)


def test_tagged_yaml_is_read_and_the_scheduler_is_named() -> None:
    found = problems(
        QAT + "LearningRate:\n  base_lr: 0.001\n  schedulers:\n  - !PiecewiseDecay\n    gamma: 0.1\n"
    )
    assert found == [
        "LearningRate.schedulers: not supported by kslim's slimConfig (kslim uses warm-up + cosine decay; "
        "set spec.train)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slim: OFA\n", "slim: 'OFA' is not supported"),
        ("slim: UnstructuredPruner\n", "slim: 'UnstructuredPruner' is not supported"),
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
        (DISTILL.replace("yolov3_r34", "ppyoloe_plus_crn_l"), "_BASE_: teacher config 'ppyoloe_plus_crn_l"),
        (DISTILL.replace("DistillYOLOv3Loss\n", "FGDFeatureLoss\n", 1), "distill_loss: 'FGDFeatureLoss'"),
        (DISTILL + "slim_method: CWD\n", "slim_method: 'CWD'"),
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

"""PaddleDetection's distillation slim configs (slim_method PPYOLOEDistill, CWD, FGD, LD) convert
into a distill step with the loss and its settings; a key kslim does not know is refused by name."""

from __future__ import annotations

import pytest
from kslim_api.slimconfig import SlimConfigError, convert_slim_config

BASE = "_BASE_: ['pvc://models/configs/{}']\n"
CWD = (
    BASE.format("retinanet/retinanet_r101_fpn_2x_coco.yml")
    + """slim: Distill
slim_method: CWD
distill_loss: CWDFeatureLoss
distill_loss_name: ['cls_f_4', 'cls_f_3', 'cls_f_2', 'cls_f_1', 'cls_f_0']
CWDFeatureLoss:
  student_channels: 80
  teacher_channels: 80
  tau: 2.0
  weight: 5.0
"""
)
FGD = (
    BASE.format("retinanet/retinanet_r101_fpn_2x_coco.yml")
    + """slim: Distill
slim_method: FGD
distill_loss: FGDFeatureLoss
distill_loss_name: ['neck_f_2', 'neck_f_1', 'neck_f_0']
FGDFeatureLoss: {student_channels: 256, teacher_channels: 256, temp: 0.5, alpha_fgd: 0.001,
                 beta_fgd: 0.0005, gamma_fgd: 0.0005, lambda_fgd: 0.000005}
"""
)
PPYOLOE = (
    BASE.format("ppyoloe/ppyoloe_plus_crn_l_80e_coco.yml")
    + """slim: Distill
slim_method: PPYOLOEDistill
distill_loss: DistillPPYOLOELoss
DistillPPYOLOELoss:
  loss_weight: {'logits': 4.0, 'feat': 1.0}
  logits_distill: True
  logits_loss_weight: {'class': 1.0, 'iou': 2.5, 'dfl': 0.5}
  logits_ld_distill: True
  logits_ld_params: {'weight': 20000, 'T': 10}
  feat_distill: True
  feat_distiller: 'cwd'
  feat_distill_place: 'neck_feats'
  teacher_width_mult: 1.0
  student_width_mult: 0.75
  feat_out_channels: [768, 384, 192]
"""
)
LD = BASE.format("gfl/gfl_r101vd_fpn_mstrain_2x_coco.yml") + "slim: Distill\nslim_method: LD\n"


def _step(text: str):
    conv = convert_slim_config(text)
    (step,) = conv.steps
    assert step.distill is not None and step.distill.teacher.config is not None
    return step.distill, conv.notes


def test_cwd_keeps_its_settings_and_counts_the_levels() -> None:
    d, notes = _step(CWD)
    assert d.loss == "cwd" and d.cwd is not None
    assert (d.cwd.tau, d.cwd.weight, d.cwd.levels) == ("2.0", "5.0", 5)
    assert sum("kslim reads the channels" in n for n in notes) == 2


def test_fgd_keeps_its_weights() -> None:
    d, _ = _step(FGD)
    assert d.loss == "fgd" and d.fgd is not None
    assert (d.fgd.alpha_fgd, d.fgd.lambda_fgd, d.fgd.levels) == ("0.001", "0.000005", 3)


def test_ppyoloe_keeps_every_weight() -> None:
    d, notes = _step(PPYOLOE)
    p = d.ppyoloe
    assert d.loss == "ppyoloe" and p is not None
    assert (p.logits_weight, p.class_weight, p.iou_weight, p.ld_weight, p.ld_temperature) == (
        "4.0",
        "1.0",
        "2.5",
        "20000",
        "10",
    )
    assert p.feat_distiller == "cwd" and p.logits_ld_distill
    assert sum("kslim reads the channels" in n for n in notes) == 3


def test_ld_has_no_loss_section() -> None:
    d, _ = _step(LD)
    assert d.loss == "ld" and d.loss_settings() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CWD.replace("tau: 2.0", "tau: 2.0\n  temperature: 3"), "CWDFeatureLoss.temperature: not a setting"),
        (FGD.replace("temp: 0.5", "temp: 0.5, sigma: 1"), "FGDFeatureLoss.sigma: not a setting"),
        (PPYOLOE.replace("'dfl': 0.5", "'dfl': 0.5, 'l1': 1"), "DistillPPYOLOELoss.logits_loss_weight.l1"),
        (
            PPYOLOE.replace("feat_distiller: 'cwd'", "feat_distiller: 'kl'"),
            "DistillPPYOLOELoss.feat_distiller: 'kl'",
        ),
        (
            PPYOLOE.replace("logits_distill: True", "logits_distill: yes please"),
            "logits_distill: 'yes please'",
        ),
        (CWD.replace("slim_method: CWD", "slim_method: KD"), "slim_method: 'KD' is not a PaddleDetection"),
        (
            CWD.replace("distill_loss: CWDFeatureLoss", "distill_loss: FGDFeatureLoss"),
            "does not go with slim_method: CWD",
        ),
        (LD + "distill_loss: CWDFeatureLoss\n", "not read with slim_method: LD"),
        (LD + "CWDFeatureLoss: {tau: 1}\n", "CWDFeatureLoss: not read with distill_loss None"),
        (CWD.replace("distill_loss_name: [", "distill_loss_name: ['cls_f_4', "), "lists a name twice"),
        (
            CWD.replace("slim: Distill", "slim: DistillPrune"),
            "slim_method: CWD is read with slim: Distill only",
        ),
    ],
)
def test_bad_distill_keys_are_named(text: str, expected: str) -> None:
    with pytest.raises(SlimConfigError) as info:
        convert_slim_config(text)
    assert any(expected in p for p in info.value.problems), info.value.problems

"""Distillation losses for YOLOv3 students, and the training wrapper that owns the student and its
feature adapters (the teacher stays outside it: it is frozen and never saved with the student).

yolov3 (PaddleDetection's DistillYOLOv3Loss, same terms and reductions, so its configs' weight,
usually 1000, means the same): per level, with the teacher's objectness sigmoid(t_obj) as weight,
  box: mean((BCE(s_x, sigmoid(t_x)) + BCE(s_y, sigmoid(t_y)) + |s_w - t_w| + |s_h - t_h|) * sigmoid(t_obj))
  cls: mean(BCE(s_cls, sigmoid(t_cls)) * sigmoid(t_obj))
  obj: mean(BCE(s_obj, t_obj > 0))
feature: per neck level, the student's map through a 1x1 adapter conv (to the teacher's channels)
and the teacher's map, each normalised per channel (zero mean, unit variance), mean squared
difference; times FEATURE_SCALE so that one `weight` serves both terms.

The student is a built-in detector (DistillStudent, batches of tensors) or a PaddleDetection
YOLOv3-family model (methods/distill_zoo.ZooDistillStudent, batches as dicts from its config's
reader); DistillLoss and DistillTask serve both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import nn

from kslim_runner.methods.distill_zoo import ZooDistillStudent, teacher_maps
from kslim_runner.models.base import Detector
from kslim_runner.train import distributed
from kslim_runner.train.loop import Forward

#: Feature term scale: with DistillYOLOv3Loss's usual weight (1000) the normalised MSE counts once.
FEATURE_SCALE = 1e-3
ANCHORS_PER_LEVEL = 3


def neck_and_heads(det: Detector, image: paddle.Tensor) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
    """A YOLOv3's neck feature maps and head outputs for one batch."""
    feats = det.neck(det.backbone(image))
    return feats, [det.heads[i](feats[i]) for i in range(len(feats))]


def _split(out: paddle.Tensor, num_classes: int) -> paddle.Tensor:
    n, _, h, w = out.shape
    return out.reshape([n, ANCHORS_PER_LEVEL, 5 + num_classes, h, w])


def yolov3_distill_loss(
    student: Sequence[paddle.Tensor], teacher: Sequence[paddle.Tensor], num_classes: int
) -> paddle.Tensor:
    """Sum over levels of the box, class and objectness terms (unweighted)."""
    total = paddle.zeros([1])
    for s_out, t_out in zip(student, teacher, strict=True):
        s, t = _split(s_out, num_classes), _split(t_out.detach(), num_classes)
        t_conf = F.sigmoid(t[:, :, 4])

        def soft_bce(i: int, s: paddle.Tensor = s, t: paddle.Tensor = t) -> paddle.Tensor:
            return F.binary_cross_entropy_with_logits(s[:, :, i], F.sigmoid(t[:, :, i]), reduction="none")

        box = soft_bce(0) + soft_bce(1) + (s[:, :, 2] - t[:, :, 2]).abs() + (s[:, :, 3] - t[:, :, 3]).abs()
        cls = F.binary_cross_entropy_with_logits(s[:, :, 5:], F.sigmoid(t[:, :, 5:]), reduction="none")
        obj_target = (t[:, :, 4] > 0).astype("float32")
        obj = F.binary_cross_entropy_with_logits(s[:, :, 4], obj_target, reduction="none")
        total = total + (box * t_conf).mean() + (cls * t_conf.unsqueeze(2)).mean() + obj.mean()
    return total


def channel_norm(x: paddle.Tensor) -> paddle.Tensor:
    """Each channel to zero mean and unit variance over the batch and positions."""
    mean = x.mean(axis=[0, 2, 3], keepdim=True)
    std = x.std(axis=[0, 2, 3], keepdim=True)
    return (x - mean) / (std + 1e-6)


def feature_distill_loss(student: Sequence[paddle.Tensor], teacher: Sequence[paddle.Tensor]) -> paddle.Tensor:
    """student: the student's neck maps through their adapters (the teacher's channels)."""
    total = paddle.zeros([1])
    for s, t in zip(student, teacher, strict=True):
        total = total + ((channel_norm(s) - channel_norm(t.detach())) ** 2).mean()
    return total * FEATURE_SCALE


class DistillStudent(Detector):
    """What the training loop trains: the student and the feature adapters (their parameters go to
    the optimizer, EMA and checkpoints). Its forward gives the student's neck maps (through the
    adapters when there are any) and head outputs, what the distillation terms compare; every
    parameter is used inside forward, as DataParallel requires. Its loss is the student's
    detection loss."""

    def __init__(self, student: Detector, teacher_channels: Sequence[int] | None) -> None:
        super().__init__()
        self.config = student.config
        self.student = student
        self.teacher_channels = list(teacher_channels) if teacher_channels else None
        channels = student.neck.out_channels
        # named apart in a scope of their own: the student's parameters are conv2d_0.w_0... (built
        # in a fresh scope too), and the optimizer keys its moments by parameter name
        with paddle.utils.unique_name.guard("distill_adapter_"):
            self.adapters = nn.LayerList(
                [nn.Conv2D(cs, ct, 1) for cs, ct in zip(channels, teacher_channels or [], strict=False)]
            )

    def forward(self, image: paddle.Tensor) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
        feats, outs = neck_and_heads(self.student, image)
        if len(self.adapters):
            feats = [adapter(f) for adapter, f in zip(self.adapters, feats, strict=True)]
        return feats, outs

    def loss(  # type: ignore[override]
        self,
        outputs: tuple[list[paddle.Tensor], list[paddle.Tensor]],
        gt_box: paddle.Tensor,
        gt_label: paddle.Tensor,
    ) -> paddle.Tensor:
        return self.student.loss(outputs[1], gt_box, gt_label)


TEACHER_WEIGHTS = f"{distributed.PREFIX}teacher.pdparams"


class DistillLoss:
    """The training loop's loss: the student's detection loss + weight x the distillation terms
    (`kind`: yolov3, feature or yolov3+feature). The teacher runs in eval mode without gradients."""

    def __init__(self, teacher: Detector, kind: str, weight: float) -> None:
        teacher.eval()
        for p in teacher.parameters():
            p.stop_gradient = True
        self.teacher, self.kind, self.weight = teacher, kind, weight
        self.terms = set(kind.split("+"))

    def __call__(self, detector: Detector, batch: Any, forward: Forward | None = None) -> paddle.Tensor:
        if isinstance(batch, dict):  # a PaddleDetection student: its reader's batch, its own loss
            assert isinstance(detector, ZooDistillStudent)
            s_feats, s_outs, total = (forward or detector)(batch)
            t_feats, t_outs = teacher_maps(self.teacher, batch)
        else:
            assert isinstance(detector, DistillStudent)
            image, gt_box, gt_label = batch[0], batch[1], batch[2]
            s_feats, s_outs = (forward or detector)(image)
            with paddle.no_grad():
                t_feats, t_outs = neck_and_heads(self.teacher, image)
            total = detector.student.loss(s_outs, gt_box, gt_label)
        extra = paddle.zeros([1])
        if "yolov3" in self.terms:
            extra = extra + yolov3_distill_loss(s_outs, t_outs, self.teacher.config.num_classes)
        if "feature" in self.terms:
            extra = extra + feature_distill_loss(s_feats, t_feats)
        return total + self.weight * extra.squeeze()

    def worker_task(self, wrapper: Detector, workdir: Path) -> DistillTask | None:
        """How a data-parallel worker rebuilds the student wrapper and this loss (the teacher's
        weights go to workdir); None when the student or teacher is not a rebuildable detector."""
        if not isinstance(wrapper, DistillStudent | ZooDistillStudent):
            return None
        tasks = distributed.pair_tasks(wrapper.student, self.teacher, workdir / TEACHER_WEIGHTS)
        if tasks is None:
            return None
        return DistillTask(*tasks, wrapper.teacher_channels, self.kind, self.weight)


@dataclass(frozen=True)
class DistillTask:
    """A data-parallel worker's recipe for distillation (train/distributed.py's WorkerTask)."""

    student: distributed.DetectionTask
    teacher: distributed.DetectionTask
    teacher_channels: list[int] | None
    kind: str
    weight: float

    def build(self, workdir: Path) -> tuple[Detector, DistillLoss]:
        teacher = self.teacher.build_trained(workdir / TEACHER_WEIGHTS)
        wrap = ZooDistillStudent if self.student.zoo else DistillStudent
        wrapper = wrap(self.student.build_detector(), self.teacher_channels)
        return wrapper, DistillLoss(teacher, self.kind, self.weight)

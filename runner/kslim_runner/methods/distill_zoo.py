"""Distillation between PaddleDetection models of the YOLOv3 family: architecture `YOLOv3` with a
`YOLOv3Head` (YOLOv3 on any backbone, PP-YOLO, PP-YOLOv2). The distillation terms
(methods/distill_loss.py) compare per-level head outputs [N, A*(5+C), H, W] and neck maps, so
student and teacher must predict the same anchors per level at the same strides; a pair that does
not is refused up front (`check_pair`).

The student's detection loss is its own: the head's loss (YOLOv3Loss, with its IoU/IoU-aware terms
when the config has them) on the head outputs and the reader's targets, what `model(batch)["loss"]`
computes, from one forward pass that also gives the maps the distillation terms need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import paddle
from kslim_api.contract import Reason
from paddle import nn

from kslim_runner.errors import UserError
from kslim_runner.zoo.build import refusing_unfit_size

#: The architecture and head these losses understand.
ARCHITECTURE, HEAD = "YOLOv3", "YOLOv3Head"


def family_problem(model: Any) -> str | None:
    """Why this PaddleDetection model cannot be distilled here (None when it can)."""
    arch = type(model).__name__
    head = type(getattr(model, "yolo_head", None)).__name__
    if arch != ARCHITECTURE or head != HEAD:
        return (
            f"it is a {arch} with a {head}; distill compares YOLOv3 head outputs (architecture "
            f"{ARCHITECTURE} with a {HEAD}: YOLOv3, PP-YOLO, PP-YOLOv2)"
        )
    if getattr(model, "for_mot", False):
        return "it is a tracking (for_mot) YOLOv3"
    if getattr(model, "data_format", "NCHW") != "NCHW":
        return f"its data_format is {model.data_format}; distill runs NCHW models"
    return None


def neck_maps(model: Any, batch: dict[str, Any]) -> list[paddle.Tensor]:
    """The neck's feature maps (one per head level, deepest first) of a ppdet YOLOv3."""
    return list(model.neck(model.backbone(batch)))


def raw_head_outputs(model: Any, feats: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
    """The head's 1x1 output convs on the neck maps: what YOLOv3Head hands its loss."""
    return [conv(f) for conv, f in zip(model.yolo_head.yolo_outputs, feats, strict=True)]


def distill_outputs(model: Any, outs: Sequence[paddle.Tensor]) -> list[paddle.Tensor]:
    """Head outputs as the distillation terms read them, [N, A*(5+C), H, W]: an IoU-aware head's
    leading A IoU channels are left out."""
    head = model.yolo_head
    if not getattr(head, "iou_aware", False):
        return list(outs)
    return [out[:, len(anchors) :] for out, anchors in zip(outs, head.anchors, strict=True)]


def neck_channels(model: Any) -> list[int]:
    """The channels of each neck map as the head receives them (a pruned neck's too)."""
    return [int(conv.weight.shape[1]) for conv in model.yolo_head.yolo_outputs]


@paddle.no_grad()
def teacher_maps(teacher: Any, batch: dict[str, Any]) -> tuple[list[paddle.Tensor], list[paddle.Tensor]]:
    """(neck maps, head outputs) of the frozen teacher on the student's batch."""
    feats = neck_maps(teacher, batch)
    return feats, distill_outputs(teacher, raw_head_outputs(teacher, feats))


def check_pair(student: Any, teacher: Any, student_name: str, teacher_name: str) -> None:
    """A UserError unless both models are YOLOv3-family and their head outputs line up (levels,
    anchors per level, classes, strides: compared on one image at the job's input size)."""
    for model, what, name in ((student, "student", student_name), (teacher, "teacher", teacher_name)):
        problem = family_problem(model)
        if problem is not None:
            raise UserError(
                f"distill cannot use the {what} {name}: {problem}", reason=Reason.TEACHER_MISMATCH
            )
    s_anchors = [len(a) for a in student.yolo_head.anchors]
    t_anchors = [len(a) for a in teacher.yolo_head.anchors]
    if s_anchors != t_anchors:
        raise UserError(
            f"the teacher {teacher_name} has {t_anchors} anchors per level, the student {student_name} "
            f"{s_anchors}; DistillYOLOv3Loss compares them anchor by anchor: use a teacher with the "
            "student's anchor masks",
            reason=Reason.TEACHER_MISMATCH,
        )
    size = student.config.input_size
    batch = {"image": paddle.zeros([1, 3, size, size])}
    shapes = []
    for model, name in ((student, student_name), (teacher, teacher_name)):
        model.eval()
        with refusing_unfit_size(f"{name} does not run at input size {size}"), paddle.no_grad():
            feats = neck_maps(model, batch)
            outs = distill_outputs(model, raw_head_outputs(model, feats))
        shapes.append([list(o.shape) for o in outs])
    if shapes[0] != shapes[1]:
        raise UserError(
            f"the teacher {teacher_name}'s head outputs are {shapes[1]} at input {size}, the student "
            f"{student_name}'s {shapes[0]}; distill needs the same levels, strides and classes",
            reason=Reason.TEACHER_MISMATCH,
        )


class ZooDistillStudent(nn.Layer):
    """What the training loop trains for a PaddleDetection student: the student and the feature
    adapters (1x1 convs from its neck channels to the teacher's). forward(batch) runs the student
    once in training mode and returns (neck maps, through the adapters when there are any; head
    outputs as the distillation terms read them; the student's own detection loss). Every parameter
    is used in forward, as DataParallel requires."""

    def __init__(self, student: nn.Layer, teacher_channels: Sequence[int] | None) -> None:
        super().__init__()
        self.config = student.config
        self.student = student
        self.teacher_channels = list(teacher_channels) if teacher_channels else None
        channels = neck_channels(student)
        # a scope of their own: the student's parameters are conv2d_N.w_0 (ppdet builds in a fresh
        # scope) and the optimizer keys its moments by parameter name
        with paddle.utils.unique_name.guard("distill_adapter_"):
            self.adapters = nn.LayerList(
                [nn.Conv2D(cs, ct, 1) for cs, ct in zip(channels, teacher_channels or [], strict=False)]
            )

    def forward(
        self, batch: dict[str, Any]
    ) -> tuple[list[paddle.Tensor], list[paddle.Tensor], paddle.Tensor]:
        model = self.student
        feats = neck_maps(model, batch)
        outs = raw_head_outputs(model, feats)
        # YOLOv3._forward in training mode, from the outputs we keep: the head's loss on the targets
        losses = model.yolo_head.loss(outs, batch, model.yolo_head.anchors)
        if len(self.adapters):
            feats = [adapter(f) for adapter, f in zip(self.adapters, feats, strict=True)]
        return feats, distill_outputs(model, outs), losses["loss"]

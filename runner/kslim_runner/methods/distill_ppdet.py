"""PaddleDetection's own distillations (distill.loss ppyoloe, cwd, fgd, ld), run with ppdet 2.6's
classes by import: DistillPPYOLOELoss, CWDFeatureLoss, FGDFeatureLoss, and LDGFLHead's loss with
the teacher's soft targets. What kslim adds is the glue PaddleDetection's DistillModel subclasses
do through its global config (which kslim keeps to one model at a time, zoo/lib.py): running the
frozen teacher and the student on one batch and summing the terms as those classes do.

The layer the training loop trains is PairedStudent: the student plus the loss modules (their
align/attention convs; frozen at their seeded initialisation because PaddleDetection's DistillModel
hands only the student's parameters to the optimizer). The teacher is held outside its sublayers,
so it is never trained, averaged or saved with the student. Its forward(batch) returns the total
loss, so a data-parallel wrapper sees every term.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle
from paddle import nn

from kslim_runner.methods.distill_kinds import feature_maps, ppyoloe_channels
from kslim_runner.train import distributed

#: PPYOLOEDistillModel scales the summed detection and distillation losses by this (its `alpha`).
PPYOLOE_ALPHA = 0.125
#: What the teacher's PP-YOLOE head leaves for the student: its task-aligned label assignment.
ASSIGNED = ("assigned_labels", "assigned_bboxes", "assigned_scores", "mask_positive")
TEACHER_WEIGHTS = f"{distributed.PREFIX}kind-teacher.pdparams"


def _f(value: Any) -> float:
    return float(value)


def build_terms(kind: str, settings: Any, student: Any, teacher: Any) -> nn.Layer:
    """The kind's loss modules for this pair, with the channels measured on the two models."""
    from kslim_runner.zoo.lib import ppdet

    ppdet()
    from ppdet.slim import distill_loss as dl

    if kind == "ppyoloe":
        feat = settings.feat_distill and float(settings.feat_weight) > 0
        s_ch, t_ch = ppyoloe_channels(student, teacher, settings.feat_distill_place) if feat else ([1], [1])
        loss = dl.DistillPPYOLOELoss(
            loss_weight={"logits": _f(settings.logits_weight), "feat": _f(settings.feat_weight)},
            logits_distill=settings.logits_distill,
            logits_loss_weight={
                "class": _f(settings.class_weight),
                "iou": _f(settings.iou_weight),
                "dfl": _f(settings.dfl_weight),
            },
            logits_ld_distill=settings.logits_ld_distill,
            logits_ld_params={"weight": _f(settings.ld_weight), "T": _f(settings.ld_temperature)},
            feat_distill=settings.feat_distill,
            feat_distiller=settings.feat_distiller,
            feat_distill_place=settings.feat_distill_place,
            # the class derives each level's channels as int(c * mult): the teacher's exact, and the
            # student's by one ratio (ppyoloe_channels checked that it gives each level's exactly)
            teacher_width_mult=1.0,
            student_width_mult=s_ch[0] / t_ch[0],
            feat_out_channels=t_ch,
        )
        # it keeps its feature modules in a plain list: registered here, they are saved with the
        # wrapper and handed to data-parallel workers like every other parameter
        loss.feature_modules = nn.LayerList(getattr(loss, "distill_feat_loss_modules", []))
        return loss
    if kind == "ld":
        return nn.LayerList()  # LD's terms are the student's LDGFLHead losses
    s_maps, t_maps = feature_maps(student, teacher)
    levels = settings.levels or len(s_maps)
    terms = nn.LayerDict()
    if kind == "cwd":
        args = {"normalize": settings.normalize, "tau": _f(settings.tau), "weight": _f(settings.weight)}
        terms["neck"] = nn.LayerList(
            [dl.CWDFeatureLoss(s, t, **args) for s, t in zip(s_maps[:levels], t_maps[:levels], strict=True)]
        )
        if type(student).__name__ == "GFL":  # CWDDistillModel's GFL branch also compares class scores
            classes = student.head.cls_out_channels
            terms["cls"] = nn.LayerList([dl.CWDFeatureLoss(classes, classes, **args) for _ in range(levels)])
        return terms
    terms["neck"] = nn.LayerList(
        [
            dl.FGDFeatureLoss(
                s,
                t,
                normalize=settings.normalize,
                loss_weight=_f(settings.weight),
                temp=_f(settings.temp),
                alpha_fgd=_f(settings.alpha_fgd),
                beta_fgd=_f(settings.beta_fgd),
                gamma_fgd=_f(settings.gamma_fgd),
                lambda_fgd=_f(settings.lambda_fgd),
            )
            for s, t in zip(s_maps[:levels], t_maps[:levels], strict=True)
        ]
    )
    return terms


# --- one training step per kind -------------------------------------------------------------------------


def _total(losses: dict[str, paddle.Tensor]) -> paddle.Tensor:
    """A head's loss dict summed, as PaddleDetection's GFL and LD models sum it."""
    return paddle.add_n([v for k, v in losses.items() if k != "loss"])


def _ppyoloe_step(student: Any, teacher: Any, terms: Any, batch: dict[str, Any]) -> paddle.Tensor:
    s_head, t_head = student.yolo_head, teacher.yolo_head
    place = getattr(terms, "feat_distill_place", "neck_feats")  # set only when the feature term is on
    for head in (s_head, t_head):  # a stale assignment from the last step must never be reused
        for name in ASSIGNED:
            if hasattr(head, name):
                delattr(head, name)
        head.distill_pairs = {}
    with paddle.no_grad():
        t_body = teacher.backbone(batch)
        t_neck = teacher.neck(t_body)
        # the head's training pass (losses, assignment, the pairs the loss reads) on the teacher's
        # eval-mode features: its batch-norm statistics stay the trained ones
        t_head.forward_train(t_neck, batch)
        t_head.distill_pairs[place] = t_body if place == "backbone_feats" else t_neck
    if hasattr(t_head, ASSIGNED[0]):  # the student learns against the teacher's assignment
        for name in ASSIGNED:
            setattr(s_head, name, getattr(t_head, name))
            delattr(t_head, name)
    s_body = student.backbone(batch)
    s_neck = student.neck(s_body)
    det = s_head(s_neck, batch)["loss"]
    s_head.distill_pairs[place] = s_body if place == "backbone_feats" else s_neck
    for name in ASSIGNED:
        if hasattr(s_head, name):
            delattr(s_head, name)
    student.inputs = batch  # the feature term reads the boxes from here
    logits, feat = terms(teacher, student)
    return PPYOLOE_ALPHA * (det + logits + feat)


def _necks(student: Any, teacher: Any, batch: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    s_neck = student.neck(student.backbone(batch))
    with paddle.no_grad():
        t_neck = teacher.neck(teacher.backbone(batch))
    return list(s_neck), list(t_neck)


def _class_scores(model: Any, neck: Any) -> paddle.Tensor:
    """A GFL head's class score map of one neck level (what CWD compares besides the neck maps)."""
    return model.head.gfl_head_cls(model.head.conv_feat(neck)[0])


def _cwd_step(student: Any, teacher: Any, terms: Any, batch: dict[str, Any]) -> paddle.Tensor:
    s_neck, t_neck = _necks(student, teacher, batch)
    if "cls" not in terms:  # RetinaNet
        total = student.head(s_neck, batch)["loss"]
    else:  # GFL
        total = _total(student.head.get_loss(student.head(s_neck), batch))
        for i, cwd in enumerate(terms["cls"]):
            with paddle.no_grad():
                t_cls = _class_scores(teacher, t_neck[i])
            total = total + cwd(_class_scores(student, s_neck[i]), t_cls)
    for i, cwd in enumerate(terms["neck"]):
        total = total + cwd(s_neck[i], t_neck[i])
    return total


def _fgd_step(student: Any, teacher: Any, terms: Any, batch: dict[str, Any]) -> paddle.Tensor:
    s_neck, t_neck = _necks(student, teacher, batch)
    total = student.head(s_neck, batch)["loss"]
    for i, fgd in enumerate(terms["neck"]):
        total = total + fgd(s_neck[i], t_neck[i], batch)
    return total


def _ld_step(student: Any, teacher: Any, terms: Any, batch: dict[str, Any]) -> paddle.Tensor:
    s_neck, t_neck = _necks(student, teacher, batch)
    with paddle.no_grad():
        soft_labels, soft_targets = teacher.head(t_neck)  # raw maps: the teacher's head is in train mode
    return _total(student.head.get_loss(student.head(s_neck), batch, soft_labels, soft_targets))


STEPS = {"ppyoloe": _ppyoloe_step, "cwd": _cwd_step, "fgd": _fgd_step, "ld": _ld_step}


def freeze_teacher(teacher: Any, kind: str) -> None:
    """The teacher never trains and runs in eval mode; LD reads its head's raw (training-mode) maps,
    which a GFL head gives only in train mode (its norms are group norms: no statistics move)."""
    teacher.eval()
    for p in teacher.parameters():
        p.stop_gradient = True
    if kind == "ld":
        teacher.head.train()
    if kind == "ppyoloe":
        teacher.yolo_head.for_distill = True  # the head records the pairs DistillPPYOLOELoss reads


class PairedStudent(nn.Layer):
    """What the training loop trains for a PaddleDetection kind: the student and the kind's loss
    modules; forward(batch) is the whole loss."""

    def __init__(self, student: nn.Layer, teacher: nn.Layer, kind: str, settings: Any) -> None:
        super().__init__()
        self.config = student.config
        self.student = student
        self.kind, self.settings = kind, settings
        freeze_teacher(teacher, kind)
        self._teacher = (teacher,)  # a tuple attribute: not a sublayer
        if kind == "ppyoloe":
            student.yolo_head.for_distill = True
        # a scope and seed of their own: the same names and initial weights in every process
        with paddle.utils.unique_name.guard("distill_terms_"):
            paddle.seed(0)
            self.terms = build_terms(kind, settings, student, teacher)
        for p in self.terms.parameters():
            p.stop_gradient = True

    @property
    def teacher(self) -> nn.Layer:
        return self._teacher[0]

    @property
    def teacher_channels(self) -> None:
        return None

    def forward(self, batch: dict[str, Any]) -> paddle.Tensor:
        return STEPS[self.kind](self.student, self.teacher, self.terms, batch)


class KindLoss:
    """The training loop's loss for PairedStudent: its forward is the whole loss."""

    def __call__(self, detector: Any, batch: Any, forward: Any = None) -> paddle.Tensor:
        return (forward or detector)(batch).reshape([])

    def worker_task(self, wrapper: Any, workdir: Path) -> KindTask | None:
        """How a data-parallel worker rebuilds the pair (the teacher's weights go to workdir)."""
        tasks = distributed.pair_tasks(wrapper.student, wrapper.teacher, workdir / TEACHER_WEIGHTS)
        if tasks is None:
            return None
        return KindTask(*tasks, wrapper.kind, wrapper.settings)


@dataclass(frozen=True)
class KindTask:
    """A data-parallel worker's recipe for a PaddleDetection kind (train/distributed.py's WorkerTask)."""

    student: distributed.DetectionTask
    teacher: distributed.DetectionTask
    kind: str
    settings: Any

    def build(self, workdir: Path) -> tuple[PairedStudent, KindLoss]:
        teacher = self.teacher.build_trained(workdir / TEACHER_WEIGHTS)
        return PairedStudent(self.student.build_detector(), teacher, self.kind, self.settings), KindLoss()

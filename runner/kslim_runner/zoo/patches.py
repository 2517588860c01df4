"""Our own fixes to ppdet 2.6.0 for paddle 2.6, applied once when ppdet is imported (`zoo.lib.ppdet`).

Since paddle 2.5, indexing one element of a tensor (`paddle.shape(x)[0]`, `bbox_num[i]`,
`scale_factor[i][0]`) gives a 0-D tensor, where paddle 2.4 gave shape [1]. ppdet 2.6's R-CNN family
builds its per-image box counts (`rois_num`, `bbox_num`) by concatenating such elements, and
`paddle.concat` of 0-D tensors fails ("The axis is expected to be in range of [0, 0)"); traced for
export, the counts come out 0-D and the next `rois_num[i]` fails instead. PaddleDetection 2.7.0
fixed it by slicing (`[0:1]`) instead of indexing in the functions patched here.

Setting FLAGS_set_to_1d (paddle's switch back to 1-element results) is not a fix: the exported
program then fails in a fresh Paddle Inference predictor, where the flag is not set.

Each fix below replaces one ppdet function or method with a version written for kslim; the paths
kslim never takes (ONNX and EdgeBoard exports) are left to the originals.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np
import paddle

_APPLIED = False


def apply() -> None:
    """Apply every fix (idempotent); ppdet must be importable."""
    global _APPLIED
    if _APPLIED:
        return
    _fix_rpn_proposals()
    _fix_proposal_targets()
    _fix_faster_rcnn_target_bbox_forward()
    _fix_cascade_rois()
    _fix_bbox_get_pred()
    _fix_mask_rcnn_masks_per_box()
    _fix_csppan_scales()
    _APPLIED = True


# --- counts as 1-D tensors ---------------------------------------------------------------------------------


def count(x: Any) -> Any:
    """Rows of `x` as a shape-[1] int32 tensor (what `paddle.shape(x)[0]` was before paddle 2.5)."""
    return paddle.shape(x)[0:1]


@paddle.jit.not_to_static
def concat_counts(xs: Any, axis: int = 0, name: str | None = None) -> Any:
    """paddle.concat that reads 0-D tensors (single elements indexed out since paddle 2.5) as [1]."""
    if isinstance(xs, list | tuple):
        xs = [
            x.reshape([1]) if isinstance(x, paddle.Tensor | paddle.static.Variable) and x.ndim == 0 else x
            for x in xs
        ]
    return paddle.concat(xs, axis=axis, name=name)


class _PaddleWithCountConcat(types.ModuleType):
    """`paddle` as a function of ppdet sees it, with `concat` reading 0-D elements as shape [1]."""

    concat = staticmethod(concat_counts)

    def __getattr__(self, name: str) -> Any:
        return getattr(paddle, name)


_PADDLE_WITH_COUNT_CONCAT = _PaddleWithCountConcat("paddle")


def with_count_concat(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` itself, running with `concat_counts` as its `paddle.concat`. For training-time (dygraph)
    functions whose only 0-D problem is concatenating a Python list of per-image counts."""
    glob = dict(fn.__globals__, paddle=_PADDLE_WITH_COUNT_CONCAT)
    new = types.FunctionType(fn.__code__, glob, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__doc__, new.__module__, new.__qualname__ = fn.__doc__, fn.__module__, fn.__qualname__
    new.__wrapped__ = fn  # type: ignore[attr-defined]
    return new


# --- the fixes ---------------------------------------------------------------------------------------------


def _fix_rpn_proposals() -> None:
    """RPNHead._gen_proposal: rois_num collected `paddle.shape(rois)[0]` per image (0-D) and concatenated
    them; traced for export the result is 0-D and RCNNBox's `rois_num[i]` fails. Fixed in
    PaddleDetection 2.7.0 (rpn_head.py). Ours: each image's proposals over all FPN levels, the
    post_nms_top_n best kept, counted as shape [1]."""
    from ppdet.modeling.proposal_generator.rpn_head import RPNHead

    original = RPNHead._gen_proposal

    def _gen_proposal(self: Any, scores: list, bbox_deltas: list, anchors: list, inputs: dict) -> Any:
        if self.export_onnx:
            return original(self, scores, bbox_deltas, anchors, inputs)
        proposals = self.train_proposal if self.training else self.test_proposal
        im_shape = inputs["im_shape"]
        per_image_rois = []
        per_image_num = []
        batch = paddle.slice(paddle.shape(im_shape), [0], [0], [1])
        for i in range(batch):  # each image on its own: proposals are ranked within an image
            level_rois = []
            level_scores = []
            # (no strict=: paddle's dy2static zip does not take it)
            for level_score, level_delta, level_anchor in zip(scores, bbox_deltas, anchors):  # noqa: B905
                rois_l, scores_l, _, top_n = proposals(
                    scores=level_score[i : i + 1],
                    bbox_deltas=level_delta[i : i + 1],
                    anchors=level_anchor,
                    im_shape=im_shape[i : i + 1],
                )
                level_rois.append(rois_l)
                level_scores.append(scores_l)
            if len(scores) > 1:
                rois_i = paddle.concat(level_rois)
                scores_i = paddle.concat(level_scores).flatten()
                if paddle.shape(scores_i)[0].cast("int32") > top_n:
                    _, best = paddle.topk(scores_i, top_n)
                    rois_i = paddle.gather(rois_i, best)
            else:
                rois_i = level_rois[0]
            per_image_rois.append(rois_i)
            per_image_num.append(paddle.shape(rois_i)[0:1])  # the fix: [0:1], not [0]
        return per_image_rois, paddle.concat(per_image_num)

    RPNHead._gen_proposal = _gen_proposal


def _fix_proposal_targets() -> None:
    """generate_proposal_target, libra_generate_proposal_target, generate_mask_target (training
    only): each appends `paddle.shape(sampled)[0]` per image to a list and concatenates it (fails
    on 0-D). Fixed in PaddleDetection 2.7.0 (target.py). Ours: the same functions with a concat that
    reads the 0-D counts as [1]; target_layer imported them by name, so both bindings change."""
    from ppdet.modeling.proposal_generator import target, target_layer

    for name in ("generate_proposal_target", "libra_generate_proposal_target", "generate_mask_target"):
        fixed = with_count_concat(getattr(target, name))
        setattr(target, name, fixed)
        setattr(target_layer, name, fixed)


def _fix_faster_rcnn_target_bbox_forward() -> None:
    """FasterRCNN.target_bbox_forward (label co-tuning, `cot`): rois_num from a list of 0-D
    `paddle.shape(roi)[0]`. Fixed in PaddleDetection 2.7.0 (faster_rcnn.py)."""
    from ppdet.modeling.architectures.faster_rcnn import FasterRCNN

    FasterRCNN.target_bbox_forward = with_count_concat(FasterRCNN.target_bbox_forward)


def _fix_cascade_rois() -> None:
    """CascadeHead._get_rois_from_boxes: the next stage's rois_num from 0-D counts. Fixed in
    PaddleDetection 2.7.0 (cascade_head.py). Ours: clip each image's boxes to it (in training, drop
    empty ones, keeping at least the first box), counted as shape [1]."""
    from ppdet.modeling.bbox_utils import clip_bbox, nonempty_bbox
    from ppdet.modeling.heads.cascade_head import CascadeHead

    def _get_rois_from_boxes(self: Any, boxes: list, im_shape: Any) -> Any:
        rois = []
        for i, image_boxes in enumerate(boxes):
            clipped = clip_bbox(image_boxes, im_shape[i])
            if self.training:
                keep = nonempty_bbox(clipped)
                if keep.shape[0] == 0:
                    keep = paddle.zeros([1], dtype="int32")
                clipped = paddle.gather(clipped, keep)
            rois.append(clipped)
        return rois, paddle.concat([count(r) for r in rois])

    CascadeHead._get_rois_from_boxes = _get_rois_from_boxes


def _fix_bbox_get_pred() -> None:
    """BBoxPostProcess.get_pred (R-CNN inference and export): concatenates `bbox_num[i]` and
    `scale_factor[i][0]` elements (0-D). Fixed in PaddleDetection 2.7.0 (post_process.py). Ours:
    an image without detections gets one placeholder box, so every image has a row (ppdet's box
    [0, 0, 0, 0, 1, 1]: label 0, score 0, which a score threshold of 0 would keep, so its output
    row is labelled -1); boxes are scaled back to the original image, clipped to it, and empty
    boxes labelled -1. `origin_shape_list` (one [h, w] per box) is kept for
    MaskPostProcess, which pastes the masks at that size."""
    from ppdet.modeling.post_process import BBoxPostProcess

    original = BBoxPostProcess.get_pred

    def get_pred(self: Any, bboxes: Any, bbox_num: Any, im_shape: Any, scale_factor: Any) -> Any:
        if self.export_onnx or self.export_eb:
            return original(self, bboxes, bbox_num, im_shape, scale_factor)
        placeholder = paddle.to_tensor(np.array([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0]], dtype="float32"))
        placeholder_num = paddle.to_tensor(np.array([1], dtype="int32"))
        kept_boxes = []
        kept_num = []
        kept_real = []  # 1 for a detection, 0 for a placeholder
        start = 0
        for i in range(bbox_num.shape[0]):
            if bbox_num[i] == 0:
                boxes_i = placeholder
                num_i = placeholder_num
                real_i = paddle.zeros([1, 1], dtype="float32")
            else:
                boxes_i = bboxes[start : start + bbox_num[i], :]
                num_i = bbox_num[i : i + 1]  # the fix: [i:i + 1], not [i]
                real_i = paddle.ones_like(boxes_i[:, 0:1])
                start += bbox_num[i]
            kept_boxes.append(boxes_i)
            kept_num.append(num_i)
            kept_real.append(real_i)
        bboxes = paddle.concat(kept_boxes)
        bbox_num = paddle.concat(kept_num)
        real = paddle.concat(kept_real) > 0.5

        origin = paddle.floor(im_shape / scale_factor + 0.5)  # [h, w] of each original image
        shapes = []
        scales = []
        for i in range(bbox_num.shape[0]):
            n = bbox_num[i : i + 1]
            sy, sx = scale_factor[i, 0:1], scale_factor[i, 1:2]
            shapes.append(paddle.expand(origin[i : i + 1, :], [n, 2]))
            scales.append(paddle.expand(paddle.concat([sx, sy, sx, sy]), [n, 4]))
        self.origin_shape_list = paddle.concat(shapes)
        per_box_scale = paddle.concat(scales)

        h, w = self.origin_shape_list[:, 0:1], self.origin_shape_list[:, 1:2]
        limit = paddle.concat([w, h, w, h], axis=1)
        xyxy = paddle.maximum(paddle.minimum(bboxes[:, 2:] / per_box_scale, limit), paddle.zeros_like(limit))
        nonempty = paddle.logical_and(xyxy[:, 2:3] > xyxy[:, 0:1], xyxy[:, 3:4] > xyxy[:, 1:2])
        keep = paddle.logical_and(nonempty, real)
        label = paddle.where(keep, bboxes[:, 0:1], paddle.full_like(bboxes[:, 0:1], -1.0))
        return bboxes, paddle.concat([label, bboxes[:, 1:2], xyxy], axis=1), bbox_num

    BBoxPostProcess.get_pred = get_pred


def _fix_mask_rcnn_masks_per_box() -> None:
    """MaskRCNN inference ran the mask head on the NMS output and only then let get_pred add a
    placeholder box for each image without detections, so masks and boxes disagreed in number
    whenever an image had none. The mask head makes one stand-in mask when the whole batch has no
    box, which covers a single empty image; with two empty images, or an empty one beside others,
    MaskPostProcess took the wrong image's masks or none, and the exported model failed in
    paste_mask ("The 0th element of 'shape' for expand_v2 op must be greater than 0"). Ours runs
    the mask head on get_pred's boxes (placeholders included, in the input image's scale, as the
    NMS output is), as ppdet's CascadeRCNN already does: one mask per output box, always."""
    from ppdet.modeling.architectures.mask_rcnn import MaskRCNN

    original = MaskRCNN._forward

    def _forward(self: Any) -> Any:
        if self.training:
            return original(self)
        feats = self.backbone(self.inputs)
        if self.neck is not None:
            feats = self.neck(feats)
        rois, rois_num, _ = self.rpn_head(feats, self.inputs)
        head_out, feat_func = self.bbox_head(feats, rois, rois_num, None)
        im_shape, scale_factor = self.inputs["im_shape"], self.inputs["scale_factor"]
        post = self.bbox_post_process
        nms_boxes, nms_num, nms_keep_idx = post(head_out, (rois, rois_num), im_shape, scale_factor)
        boxes, bbox_pred, bbox_num = post.get_pred(nms_boxes, nms_num, im_shape, scale_factor)
        mask_out = self.mask_head(feats, boxes, bbox_num, self.inputs, feat_func=feat_func)
        mask_pred = self.mask_post_process(mask_out, bbox_pred, bbox_num, post.get_origin_shape())
        if self.use_extra_data:
            return bbox_pred, bbox_num, mask_pred, {"scores": head_out[1], "nms_keep_idx": nms_keep_idx}
        return bbox_pred, bbox_num, mask_pred

    MaskRCNN._forward = _forward


# --- a shared default list ------------------------------------------------------------------------------


def _fix_csppan_scales() -> None:
    """CSPPAN (PicoDet's neck) with num_features 4 appends a level to its `spatial_scales` argument,
    whose default is one list shared by every build: the second PicoDet built in a process gets five
    scales for four maps and fails its export ("assert len(inputs) == len(self.in_channels)"). Ours
    hands each build its own copy."""
    from ppdet.modeling.necks.csp_pan import CSPPAN

    original = CSPPAN.__init__

    def __init__(
        self: Any, *args: Any, spatial_scales: Any = (0.125, 0.0625, 0.03125), **kwargs: Any
    ) -> None:
        original(self, *args, spatial_scales=list(spatial_scales), **kwargs)

    CSPPAN.__init__ = __init__

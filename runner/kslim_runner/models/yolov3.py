"""YOLOv3 (Redmon & Farhadi 2018): a backbone's C3/C4/C5, the YOLOv3 FPN neck, one 1x1 head per
scale, paddle.vision.ops.yolo_loss for training, yolo_box + matrix_nms for inference."""

from __future__ import annotations

import paddle
from paddle import nn
from paddle.vision import ops

from kslim_runner.models.backbones import BACKBONES
from kslim_runner.models.base import Detector, DetectorConfig, PostprocessConfig
from kslim_runner.models.layers import ConvBN, make_divisible
from kslim_runner.models.registry import register_detector

#: COCO anchors of YOLOv3 at 608 px, scaled to the input size.
ANCHORS_608 = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
ANCHOR_MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))  # for strides 32, 16, 8
STRIDES = (32, 16, 8)
OBJ_PRIOR_BIAS = -4.6  # sigmoid(-4.6) ~ 0.01: few objects per cell at the start


def scaled_anchors(input_size: int) -> list[list[int]]:
    s = input_size / 608
    return [[max(2, round(w * s)), max(2, round(h * s))] for w, h in ANCHORS_608]


class YoloDetBlock(nn.Layer):
    """Five alternating 1x1/3x3 convs (the route) and a 3x3 conv (the tip) feeding the head."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.conv0 = ConvBN(cin, c, 1, act="leaky")
        self.conv1 = ConvBN(c, c * 2, 3, act="leaky")
        self.conv2 = ConvBN(c * 2, c, 1, act="leaky")
        self.conv3 = ConvBN(c, c * 2, 3, act="leaky")
        self.route = ConvBN(c * 2, c, 1, act="leaky")
        self.tip = ConvBN(c, c * 2, 3, act="leaky")

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        route = self.route(self.conv3(self.conv2(self.conv1(self.conv0(x)))))
        return route, self.tip(route)


class YoloV3FPN(nn.Layer):
    """Top-down: C5 -> block -> upsample + C4 -> block -> upsample + C3 -> block. Channels 512/256/128
    times the width."""

    def __init__(self, in_channels: list[int], width: float) -> None:
        super().__init__()
        blocks, transitions = [], []
        cin_prev = 0
        self.out_channels = []
        for i, cin in enumerate(reversed(in_channels)):
            c = make_divisible(512 * width / 2**i)
            blocks.append(YoloDetBlock(cin + cin_prev, c))
            self.out_channels.append(c * 2)
            if i < len(in_channels) - 1:
                transitions.append(ConvBN(c, c // 2, 1, act="leaky"))
                cin_prev = c // 2
        self.blocks = nn.LayerList(blocks)
        self.transitions = nn.LayerList(transitions)

    def forward(self, feats: list[paddle.Tensor]) -> list[paddle.Tensor]:
        outs = []
        route = None
        for i, feat in enumerate(reversed(feats)):
            if route is not None:
                feat = paddle.concat([route, feat], axis=1)
            route, tip = self.blocks[i](feat)
            outs.append(tip)
            if i < len(self.transitions):
                route = nn.functional.interpolate(
                    self.transitions[i](route), scale_factor=2.0, mode="nearest"
                )
        return outs


class YoloV3(Detector):
    infer_arch = "YOLO"

    def __init__(self, config: DetectorConfig, backbone: str, post: PostprocessConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.post = post or PostprocessConfig()
        self.backbone = BACKBONES[backbone](config.width)
        self.neck = YoloV3FPN(self.backbone.out_channels, config.width)
        na, nc = 3, config.num_classes
        self.heads = nn.LayerList([nn.Conv2D(c, na * (5 + nc), 1) for c in self.neck.out_channels])
        for head in self.heads:
            bias = head.bias.numpy()
            bias.reshape(na, 5 + nc)[:, 4] = OBJ_PRIOR_BIAS
            head.bias.set_value(bias)
        anchors = scaled_anchors(config.input_size)
        self.level_anchors = [[v for a in mask for v in anchors[a]] for mask in ANCHOR_MASKS]
        self.anchors_flat = [v for a in anchors for v in a]

    def forward(self, image: paddle.Tensor) -> list[paddle.Tensor]:
        feats = self.neck(self.backbone(image))
        # indices, not zip(): dy2static's zip does not take strict=
        return [self.heads[i](feats[i]) for i in range(len(feats))]

    def loss(
        self, outputs: list[paddle.Tensor], gt_box: paddle.Tensor, gt_label: paddle.Tensor
    ) -> paddle.Tensor:
        levels = [
            ops.yolo_loss(
                outputs[i],
                gt_box,
                gt_label,
                anchors=self.anchors_flat,
                anchor_mask=list(ANCHOR_MASKS[i]),
                class_num=self.config.num_classes,
                ignore_thresh=0.7,
                downsample_ratio=STRIDES[i],
                use_label_smooth=False,
            )
            for i in range(len(outputs))  # indices, not zip(strict=): also traceable by to_static
        ]
        return paddle.add_n(levels).mean()

    def postprocess(
        self, outputs: list[paddle.Tensor], im_shape: paddle.Tensor, scale_factor: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        origin = paddle.floor(im_shape / scale_factor + 0.5).astype("int32")
        boxes, scores = [], []
        for i in range(len(outputs)):
            b, s = ops.yolo_box(
                outputs[i],
                origin,
                anchors=self.level_anchors[i],
                class_num=self.config.num_classes,
                conf_thresh=self.post.conf_threshold,
                downsample_ratio=STRIDES[i],
                clip_bbox=True,
            )
            boxes.append(b)
            scores.append(s)
        res = ops.matrix_nms(  # (out, rois_num, index) in every mode of paddle 2.6
            paddle.concat(boxes, axis=1),
            paddle.concat(scores, axis=1).transpose([0, 2, 1]),
            score_threshold=self.post.score_threshold,
            post_threshold=self.post.score_threshold,
            nms_top_k=self.post.nms_top_k,
            keep_top_k=self.post.keep_top_k,
            use_gaussian=False,
            background_label=-1,
            normalized=False,
            return_index=False,
            return_rois_num=True,
        )
        return res[0], res[1]


@register_detector("yolov3_mobilenet_v1")
def yolov3_mobilenet_v1(config: DetectorConfig) -> Detector:
    return YoloV3(config, "mobilenet_v1")


@register_detector("yolov3_mobilenet_v3")
def yolov3_mobilenet_v3(config: DetectorConfig) -> Detector:
    return YoloV3(config, "mobilenet_v3")


@register_detector("yolov3_darknet53")
def yolov3_darknet53(config: DetectorConfig) -> Detector:
    return YoloV3(config, "darknet53")

"""Exporting a PaddleDetection model as PaddleDetection's `tools/export_model.py` would: inputs
`image`, `im_shape`, `scale_factor` (those the program uses), post-processing and NMS inside the
program, `infer_cfg.yml` from the config's TestReader. The label list is the dataset's. Written to
a temporary folder and renamed, so a half-written export is never seen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paddle
import yaml
from kslim_api.contract import Reason
from paddle import nn
from paddle.static import InputSpec

from kslim_runner.errors import UserError
from kslim_runner.zoo.config import ZooSource, fit_config
from kslim_runner.zoo.lib import activate, ppdet

MODEL_FILE = "model.pdmodel"
PARAMS_FILE = "model.pdiparams"
INFER_CFG = "infer_cfg.yml"

#: save(layer, path_prefix, input_spec): paddle.jit.save by default; QAT passes its quanter's save.
SaveFn = Callable[[nn.Layer, str, list[Any]], None]


def image_shape(cfg: dict[str, Any]) -> list[Any]:
    """[None, 3, H, W] from TestReader.inputs_def.image_shape (-1 = any size, as PaddleDetection)."""
    shape = ((cfg.get("TestReader") or {}).get("inputs_def") or {}).get("image_shape") or [3, -1, -1]
    return [None, *list(shape)[-3:]]


def _check_exportable(arch: str) -> None:
    ppdet()
    from ppdet.engine.export_utils import TRT_MIN_SUBGRAPH

    # PaddleDetection exits the whole process for an architecture it cannot describe in infer_cfg.yml
    if not any(name in arch for name in TRT_MIN_SUBGRAPH) and arch not in ("PPYOLOEWithAuxHead",):
        raise UserError(
            f"PaddleDetection 2.6 cannot export architecture {arch} (no infer_cfg.yml description)",
            reason=Reason.BAD_CONFIG,
        )


def convert_to_deploy(model: nn.Layer) -> None:
    """Re-parameterised blocks (PP-YOLOE's RepVGG blocks) in their deploy form, once: one conv in
    place of the branches. Done before quantizing too, as PaddleDetection's QAT does: the branch form
    traces its `if self.alpha` (a tensor) into conditional blocks, which PaddleSlim's quantized save
    cannot write consistently (the .pdiparams then does not match the program). A parameter a
    converted block keeps but no longer uses (RepVGG's alpha) is frozen, so training and DataParallel
    see only parameters the forward uses."""
    if getattr(model, "_kslim_deploy_form", False):
        return
    # layers made here are named outside build_model's unique-name scope: a prefix keeps them from
    # reusing the model's names (conv2d_N.w_0), which the traced program would then share between
    # two different weights
    with paddle.utils.unique_name.guard("deploy_"):
        for layer in model.sublayers():
            if hasattr(layer, "convert_to_deploy"):
                layer.convert_to_deploy()
                for param in layer.parameters(include_sublayers=False):
                    param.stop_gradient = True
    model._kslim_deploy_form = True


def prepare_for_export(model: nn.Layer) -> None:
    """What PaddleDetection sets before tracing: deploy forms of re-parameterised blocks, post-processing
    and NMS in the graph."""
    model.eval()
    if hasattr(model, "deploy"):
        model.deploy = True
    convert_to_deploy(model)
    if hasattr(model, "export_post_process"):
        model.export_post_process = True
    if hasattr(model, "export_nms"):
        model.export_nms = True
    if hasattr(model, "fuse_norm"):
        model.fuse_norm = False


def infer_cfg(source: ZooSource, cfg: dict[str, Any], model: nn.Layer, labels: list[str], tmp: Path) -> dict:
    ppdet()
    from ppdet.data.source.dataset import ImageFolder
    from ppdet.engine.export_utils import _dump_infer_config

    cfg = dict(cfg, metric="COCO", TestDataset=ImageFolder())
    cfg.setdefault("TestReader", cfg.get("EvalReader"))
    activate(cfg)
    from ppdet.core.workspace import global_config

    path = tmp / INFER_CFG
    _dump_infer_config(global_config, str(path), image_shape(cfg), model)
    doc = yaml.safe_load(path.read_text())
    doc["label_list"] = list(labels)
    doc["kslim"] = {
        "architecture": source.architecture,
        "config": Path(source.config).name,
        "numClasses": source.num_classes,
        "inputSize": source.input_size,
    }
    return doc


def _jit_save(layer: nn.Layer, prefix: str, spec: list[Any]) -> None:
    paddle.jit.save(layer, prefix, input_spec=spec)


def export_model(
    model: nn.Layer,
    out_dir: Path,
    labels: list[str],
    *,
    save: SaveFn | None = None,
) -> Path:
    """Write out_dir/{model.pdmodel, model.pdiparams, infer_cfg.yml} for a model built from a
    ZooSource (its `config`); `save` replaces paddle.jit.save (QAT's quantized save)."""
    ppdet()
    from ppdet.engine.export_utils import _prune_input_spec

    source: ZooSource = model.config
    cfg, _ = fit_config(source)
    _check_exportable(cfg["architecture"])
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    was_training = model.training
    prepare_for_export(model)
    shape = image_shape(cfg)
    meta = infer_cfg(source, cfg, model, labels, tmp)
    spec = [
        {
            "image": InputSpec(shape=shape, name="image"),
            "im_shape": InputSpec(shape=[shape[0], 2], name="im_shape"),
            "scale_factor": InputSpec(shape=[shape[0], 2], name="scale_factor"),
        }
    ]
    try:
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        pruned = _prune_input_spec(spec, static.forward.main_program, static.forward.outputs)
        (save or _jit_save)(static if save is None else model, str(tmp / "model"), pruned)
    finally:
        paddle.disable_static()
        if was_training:
            model.train()
    (tmp / INFER_CFG).write_text(yaml.safe_dump(meta, sort_keys=False))
    for junk in tmp.glob("*.pdiparams.info"):
        junk.unlink()
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir

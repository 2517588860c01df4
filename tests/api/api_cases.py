"""Valid and invalid CompressionJobs shared by the pure schema tests and the API-server tests.

Each bad spec is one mistake applied to a valid job, with the field the error must name. The same
table runs against pydantic (`kslim validate`) and against the real API server, so the two agree.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
COCO = {
    "format": "coco",
    "train": {"images": "pvc://coco/train2017", "annotations": "pvc://coco/annotations/train.json"},
    "val": {"images": "pvc://coco/val2017", "annotations": "pvc://coco/annotations/val.json"},
}


def valid_job(name: str = "valid") -> dict[str, Any]:
    """A small job every check accepts (pvc URIs, as on a real cluster)."""
    return {
        "apiVersion": "kslim.dev/v1alpha1",
        "kind": "CompressionJob",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "architecture": "yolov3_mobilenet_v1",
                "weights": {"uri": "pvc://models/yolov3_mbv1.pdparams"},
                "numClasses": 80,
                "inputSize": 320,
            },
            "dataset": copy.deepcopy(COCO),
            "strategy": [{"prune": {"criterion": "fpgm", "ratio": "0.3"}}],
            "benchmark": {"device": "cpu", "precisions": ["fp32"]},
            "output": {"uri": "pvc://artifacts/jobs"},
            "resources": {"gpus": 0},
        },
    }


def load_example(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """doc["a"]["b"][0]["c"] = value for "a.b.0.c" (missing dicts are created)."""
    *parents, leaf = dotted.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


def del_path(doc: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    del node[leaf]


Mutation = Callable[[dict[str, Any]], None]


def sets(**changes: Any) -> Mutation:
    """Set dotted paths (use __ for dots in keyword names): sets(spec__model__numClasses=0)."""

    def apply(doc: dict[str, Any]) -> None:
        for key, value in changes.items():
            set_path(doc, key.replace("__", "."), value)

    return apply


def drops(*paths: str) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        for path in paths:
            del_path(doc, path)

    return apply


def both(*mutations: Mutation) -> Mutation:
    def apply(doc: dict[str, Any]) -> None:
        for m in mutations:
            m(doc)

    return apply


@dataclass(frozen=True)
class BadSpec:
    id: str
    mutate: Mutation
    field: str
    """The field the error must name (API server and kslim validate)."""
    server_only: bool = False
    """A rule only the API server enforces (see docs/api.md, "who checks what")."""

    def job(self) -> dict[str, Any]:
        doc = valid_job(name=f"bad-{self.id}")
        self.mutate(doc)
        return doc


SYNTHETIC = {"format": "synthetic"}
PRETRAINED_URI = "kslim://pretrained/shapes-yolov3-mobilenet-v1-x0.25"
PTQ = [{"ptq": {"algo": "hist"}}]
DISTILL = {"distill": {"teacher": {"architecture": "yolov3_darknet53"}}}
PPDET_TEACHER = "pvc://models/configs/yolov3/yolov3_r34_270e_coco.yml"
PPDET_STUDENT = {
    "config": {"uri": "pvc://models/configs/yolov3/yolov3_mobilenet_v1_270e_coco.yml"},
    "weights": {"uri": "pvc://models/yolov3_mobilenet_v1_270e_coco.pdparams"},
    "numClasses": 80,
    "inputSize": 320,
}

#: PaddleDetection's own distillation kinds on a PP-YOLOE+ / RetinaNet pair given as configs.
PPYOLOE_STUDENT = {
    "config": {"uri": "pvc://models/configs/ppyoloe/ppyoloe_plus_crn_m_80e_coco.yml"},
    "numClasses": 80,
    "inputSize": 640,
}
PPYOLOE_TEACHER = {"config": {"uri": "pvc://models/configs/ppyoloe/ppyoloe_plus_crn_l_80e_coco.yml"}}
RETINANET_TEACHER = {"config": {"uri": "pvc://models/configs/retinanet/retinanet_r101_fpn_2x_coco.yml"}}


def kind_step(loss: str, teacher: dict[str, Any] = RETINANET_TEACHER, **extra: Any) -> list[dict[str, Any]]:
    return [{"distill": {"teacher": teacher, "loss": loss, **extra}}]


#: PaddleDetection's picodet_m_unstructured_prune_75 as a step (its schedule in iterations here).
GMP = {"pruning": 300, "tuning": 150, "pruningSteps": 20, "initialRatio": "0.15"}
SPARSIFY = {"ratio": "0.75", "paramsType": "conv1x1", "gmp": GMP}


def _template(**fields: Any) -> Mutation:
    return sets(spec__template=fields)


#: What a job author may not put into the pod, or into a URI (kslim_api.podpolicy, kslim_api.contract.uris);
#: `message` is what both the API server and `kslim validate` must print.
_VOLUME = "a volume must be exactly one of"
_ENV = "are set by the operator and cannot be overridden"
_MOUNT = "mountPath must not be, or be under"
_DOTDOT = "must not contain '..' path segments"
_TOKEN = {"projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}
_SECRET_REF = {"secretKeyRef": {"name": "s", "key": "k"}}
_SCRATCH = [{"name": "c", "emptyDir": {}}]
POLICY_CASES: list[tuple[BadSpec, str]] = [
    (BadSpec("host-path-volume", _template(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
             "spec.template.volumes[0]"), _VOLUME),
    (BadSpec("projected-token-volume", _template(volumes=[{"name": "t", **_TOKEN}]),
             "spec.template.volumes[0]"), _VOLUME),
    (BadSpec("nfs-volume", _template(volumes=[{"name": "nfs", "nfs": {"server": "s", "path": "/"}}]),
             "spec.template.volumes[0]"), _VOLUME),
    (BadSpec("two-volume-sources",
             _template(volumes=[{"name": "x", "emptyDir": {}, "hostPath": {"path": "/"}}]),
             "spec.template.volumes[0]"), _VOLUME),
    (BadSpec("volume-without-source", _template(volumes=[{"name": "x"}]), "spec.template.volumes[0]"),
     _VOLUME),
    (BadSpec("env-overrides-pvc-root", _template(env=[{"name": "KSLIM_PVC_ROOT", "value": "/"}]),
             "spec.template.env[0].name"), _ENV),
    (BadSpec("env-overrides-home", _template(env=[{"name": "HOME", "value": "/"}]),
             "spec.template.env[0].name"), _ENV),
    (BadSpec("env-value-and-value-from",
             _template(env=[{"name": "T", "value": "x", "valueFrom": _SECRET_REF}]),
             "spec.template.env[0]"), "set value or valueFrom, not both"),
    (BadSpec("env-value-from-field-ref",
             _template(env=[{"name": "T", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
             "spec.template.env[0].valueFrom.fieldRef"), ""),
    (BadSpec("mount-over-job-file",
             _template(volumes=_SCRATCH, volumeMounts=[{"name": "c", "mountPath": "/etc/kslim"}]),
             "spec.template.volumeMounts[0].mountPath"), _MOUNT),
    (BadSpec("mount-under-claims",
             _template(volumes=_SCRATCH, volumeMounts=[{"name": "c", "mountPath": "/mnt/pvc/coco"}]),
             "spec.template.volumeMounts[0].mountPath"), _MOUNT),
    (BadSpec("mount-subpath-dotdot",
             _template(volumes=_SCRATCH,
                       volumeMounts=[{"name": "c", "mountPath": "/c", "subPath": "a/../.."}]),
             "spec.template.volumeMounts[0].mountPath"), "subPath must not contain '..'"),
    (BadSpec("pvc-uri-dotdot", sets(spec__output__uri="pvc://claim/../../x"), "spec.output.uri"), _DOTDOT),
    (BadSpec("pvc-uri-trailing-dotdot", sets(spec__dataset__val__annotations="pvc://coco/a/.."),
             "spec.dataset.val.annotations"), _DOTDOT),
    (BadSpec("file-uri-dotdot", sets(spec__model__weights__uri="file://../../etc/w.pdparams"),
             "spec.model.weights.uri"), _DOTDOT),
    (BadSpec("https-uri-password", sets(spec__model__weights__uri="https://user:s3cret@host/w.pdparams"),
             "spec.model.weights.uri"), "must not contain user-info"),
    (BadSpec("s3-uri-user", sets(spec__output__uri="s3://key@bucket/jobs"), "spec.output.uri"), ""),
]  # fmt: skip
POLICY_BAD_SPECS = [case for case, _ in POLICY_CASES]

BAD_SPECS: list[BadSpec] = [
    # unknown fields
    BadSpec("unknown-field", sets(spec__model__numClass=3), "spec.model.numClass"),
    BadSpec("snake-case-field", sets(spec__model__num_classes=3), "spec.model.num_classes"),
    BadSpec("unknown-spec-field", sets(spec__priority="high"), "spec.priority"),
    BadSpec(
        "unknown-step-field", sets(spec__strategy__0__prune__amount="0.3"), "spec.strategy[0].prune.amount"
    ),
    # wrong types
    BadSpec("int-as-string", sets(spec__model__numClasses="3"), "spec.model.numClasses"),
    BadSpec("ratio-as-float", sets(spec__strategy__0__prune__ratio=0.3), "spec.strategy[0].prune.ratio"),
    BadSpec("bool-as-string", sets(spec__runPolicy={"suspend": "yes"}), "spec.runPolicy.suspend"),
    BadSpec("strategy-not-list", sets(spec__strategy={"prune": {"ratio": "0.3"}}), "spec.strategy"),
    BadSpec("float-learning-rate", sets(spec__train={"learningRate": 0.001}), "spec.train.learningRate"),
    # out of range / bad values
    BadSpec("zero-classes", sets(spec__model__numClasses=0), "spec.model.numClasses"),
    BadSpec("input-not-multiple-32", sets(spec__model__inputSize=300), "spec.model.inputSize"),
    BadSpec("input-too-large", sets(spec__model__inputSize=2048), "spec.model.inputSize"),
    BadSpec("ratio-above-one", sets(spec__strategy__0__prune__ratio="1.5"), "spec.strategy[0].prune.ratio"),
    BadSpec("ratio-zero", sets(spec__strategy__0__prune__ratio="0"), "spec.strategy[0].prune.ratio"),
    BadSpec("ratio-percent", sets(spec__strategy__0__prune__ratio="30%"), "spec.strategy[0].prune.ratio"),
    BadSpec("negative-backoff", sets(spec__runPolicy={"backoffLimit": -1}), "spec.runPolicy.backoffLimit"),
    BadSpec("bad-learning-rate", sets(spec__train={"learningRate": "fast"}), "spec.train.learningRate"),
    BadSpec("bad-memory", sets(spec__resources__memory="lots"), "spec.resources.memory"),
    BadSpec("bad-max-ap-drop", sets(spec__qualityGate={"maxAPDrop": "-1"}), "spec.qualityGate.maxAPDrop"),
    BadSpec(
        "four-bit-qat", sets(spec__strategy=[{"qat": {"weightBits": 4}}]), "spec.strategy[0].qat.weightBits"
    ),
    BadSpec(
        "bad-env-name",
        sets(spec__template={"env": [{"name": "1X", "value": "v"}]}),
        "spec.template.env[0].name",
    ),
    BadSpec("too-many-steps", sets(spec__strategy=[{"prune": {"ratio": "0.1"}}] * 9), "spec.strategy"),
    BadSpec("empty-slim-config", both(drops("spec.strategy"), sets(spec__slimConfig="")), "spec.slimConfig"),
    BadSpec(
        "empty-ratios", sets(spec__strategy=[{"prune": {"ratios": {}}}]), "spec.strategy[0].prune.ratios"
    ),
    # enums
    BadSpec("unknown-architecture", sets(spec__model__architecture="resnet50"), "spec.model.architecture"),
    BadSpec(
        "unknown-criterion",
        sets(spec__strategy__0__prune__criterion="l2_norm"),
        "spec.strategy[0].prune.criterion",
    ),
    BadSpec(
        "unknown-ptq-algo", sets(spec__strategy=[{"ptq": {"algo": "minmax"}}]), "spec.strategy[0].ptq.algo"
    ),
    BadSpec("unknown-device", sets(spec__benchmark__device="tpu"), "spec.benchmark.device"),
    BadSpec(
        "unknown-pull-policy",
        sets(spec__template={"imagePullPolicy": "Sometimes"}),
        "spec.template.imagePullPolicy",
    ),
    # URIs
    BadSpec("ftp-uri", sets(spec__model__weights__uri="ftp://host/w.pdparams"), "spec.model.weights.uri"),
    *POLICY_BAD_SPECS,
    BadSpec("pvc-uppercase", sets(spec__output__uri="pvc://Artifacts/jobs"), "spec.output.uri"),
    BadSpec("relative-path-uri", sets(spec__dataset__val__images="data/val"), "spec.dataset.val.images"),
    # duplicates in sets / map lists
    BadSpec(
        "duplicate-precision", sets(spec__benchmark__precisions=["fp32", "fp32"]), "spec.benchmark.precisions"
    ),
    BadSpec(
        "duplicate-env",
        sets(spec__template={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        "spec.template.env",
    ),
    # required fields
    BadSpec("no-dataset", drops("spec.dataset"), "spec.dataset"),
    BadSpec(
        "teacher-without-architecture-nor-config",
        sets(spec__strategy=[{"distill": {"teacher": {}}}]),
        "spec.strategy[0].distill.teacher",
    ),
    BadSpec("no-output", drops("spec.output"), "spec.output", server_only=True),
    # cross-field rules (CEL on the server, the same Rule in pydantic)
    BadSpec(
        "architecture-and-inference-model",
        sets(spec__model__inferenceModel={"uri": "pvc://m/x"}),
        "spec.model",
    ),
    BadSpec(
        "no-architecture-nor-model", drops("spec.model.architecture", "spec.model.weights"), "spec.model"
    ),
    BadSpec(
        "architecture-and-paddledetection-config",
        sets(spec__model__config={"uri": "pvc://models/configs/yolov3/yolov3_mobilenet_v1_270e_coco.yml"}),
        "spec.model",
    ),
    BadSpec(
        "paddledetection-config-and-inference-model",
        both(
            drops("spec.model.architecture", "spec.model.weights"),
            sets(
                spec__model__config={"uri": "pvc://models/configs/ppyolo/ppyolo_mbv3_large_coco.yml"},
                spec__model__inferenceModel={"uri": "pvc://m/x"},
            ),
        ),
        "spec.model",
    ),
    BadSpec(
        "paddledetection-config-with-width",
        both(
            drops("spec.model.architecture"),
            sets(spec__model__config={"uri": "pvc://models/configs/y.yml"}, spec__model__width="0.5"),
        ),
        "spec.model.width",
    ),
    BadSpec(
        "teacher-architecture-and-config",
        sets(
            spec__strategy=[
                {
                    "distill": {
                        "teacher": {"architecture": "yolov3_darknet53", "config": {"uri": PPDET_TEACHER}}
                    }
                }
            ]
        ),
        "spec.strategy[0].distill.teacher",
    ),
    BadSpec(
        "teacher-config-with-width",
        sets(spec__strategy=[{"distill": {"teacher": {"config": {"uri": PPDET_TEACHER}, "width": "0.5"}}}]),
        "spec.strategy[0].distill.teacher.width",
    ),
    BadSpec(
        "teacher-config-not-a-uri",
        sets(spec__strategy=[{"distill": {"teacher": {"config": {"uri": "configs/yolov3/r34.yml"}}}}]),
        "spec.strategy[0].distill.teacher.config.uri",
    ),
    BadSpec(
        "inference-model-with-weights",
        both(
            drops("spec.model.architecture"),
            sets(spec__model__inferenceModel={"uri": "pvc://m/x"}, spec__strategy=PTQ),
        ),
        "spec.model.weights",
    ),
    BadSpec(
        "width-on-darknet",
        sets(spec__model__architecture="yolov3_darknet53", spec__model__width="0.5"),
        "spec.model.width",
    ),
    BadSpec(
        "strategy-and-slim-config", sets(spec__slimConfig="slim: QAT\nQAT: {quant_config: {}}\n"), "spec"
    ),
    BadSpec("no-strategy-nor-slim-config", drops("spec.strategy"), "spec"),
    BadSpec("two-methods-in-step", sets(spec__strategy__0__qat={}), "spec.strategy[0]"),
    BadSpec("empty-step", sets(spec__strategy=[{}]), "spec.strategy[0]"),
    BadSpec(
        "qat-before-prune", sets(spec__strategy=[{"qat": {}}, {"prune": {"ratio": "0.3"}}]), "spec.strategy"
    ),
    BadSpec("qat-then-ptq", sets(spec__strategy=[{"qat": {}}, {"ptq": {}}]), "spec.strategy"),
    BadSpec(
        "inference-model-pruned",
        both(
            drops("spec.model.architecture", "spec.model.weights"),
            sets(spec__model__inferenceModel={"uri": "pvc://m/x"}),
        ),
        "spec.strategy",
    ),
    BadSpec(
        "ptq-without-calibration-data",
        both(drops("spec.dataset.train"), sets(spec__strategy=PTQ)),
        "spec.dataset.train",
    ),
    BadSpec("prune-without-train-data", drops("spec.dataset.train"), "spec.dataset.train"),
    BadSpec(
        "synthetic-with-train",
        sets(spec__dataset__format="synthetic", spec__model__numClasses=3),
        "spec.dataset",
    ),
    BadSpec("coco-without-val", drops("spec.dataset.val"), "spec.dataset.val"),
    BadSpec(
        "synthetic-settings-on-coco", sets(spec__dataset__synthetic={"classes": 3}), "spec.dataset.synthetic"
    ),
    BadSpec("synthetic-classes-mismatch", sets(spec__dataset=SYNTHETIC), "spec.model.numClasses"),
    BadSpec(
        "synthetic-min-object-side-above-max",
        sets(
            spec__dataset={
                "format": "synthetic",
                "synthetic": {"minObjectSide": "0.6", "maxObjectSide": "0.3"},
            },
            spec__model__numClasses=3,
        ),
        "spec.dataset.synthetic.minObjectSide",
    ),
    BadSpec(
        "pretrained-weights-of-another-width",
        sets(spec__model__weights__uri=PRETRAINED_URI, spec__model__width="0.5", spec__model__numClasses=3),
        "spec.model.weights.uri",
    ),
    BadSpec(
        "pretrained-weights-unknown-name",
        sets(spec__model__weights__uri="kslim://pretrained/no-such-weights", spec__model__width="0.25"),
        "spec.model.weights.uri",
    ),
    BadSpec(
        "kslim-scheme-outside-weights",
        sets(spec__output__uri=PRETRAINED_URI),
        "spec.output.uri",
    ),
    BadSpec(
        "ratio-and-ratios",
        sets(spec__strategy__0__prune__ratios={"conv2d_1.w_0": "0.2"}),
        "spec.strategy[0].prune",
    ),
    BadSpec("prune-without-amount", drops("spec.strategy.0.prune.ratio"), "spec.strategy[0].prune"),
    BadSpec(
        "sensitivity-without-target",
        sets(spec__strategy__0__prune__sensitivity=True),
        "spec.strategy[0].prune.sensitivity",
    ),
    BadSpec(
        "params-with-ratios",
        sets(spec__strategy=[{"prune": {"ratios": {"a": "0.2"}, "params": ["b"]}}]),
        "spec.strategy[0].prune.params",
    ),
    BadSpec("epochs-and-iterations", sets(spec__train={"epochs": 3, "iterations": 100}), "spec.train"),
    BadSpec(
        "fine-tune-epochs-and-iterations",
        sets(spec__strategy__0__prune__fineTune={"epochs": 1, "iterations": 9}),
        "spec.strategy[0].prune.fineTune",
    ),
    BadSpec(
        "distill-without-training",
        sets(spec__strategy=[{"distill": {**DISTILL["distill"], "fineTune": {"iterations": 0}}}]),
        "spec.strategy[0].distill.fineTune.iterations",
    ),
    BadSpec("gpu-benchmark-without-gpu", sets(spec__benchmark__device="gpu"), "spec.benchmark.device"),
    BadSpec("tensorrt-on-cpu", sets(spec__benchmark__tensorrt=True), "spec.benchmark.tensorrt"),
    BadSpec(
        "more-processes-than-gpus",
        sets(spec__resources__gpus=2, spec__train__dataParallel=4),
        "spec.train.dataParallel",
    ),
    BadSpec(
        "multi-node-that-trains-nothing",
        sets(spec__resources__workers=2, spec__strategy=PTQ),
        "spec.resources.workers",
    ),
    BadSpec("name-too-long", sets(metadata__name="x" * 64), "metadata.name"),
    BadSpec(
        "multi-node-name-too-long",
        sets(metadata__name="x" * 54, spec__resources__workers=2),
        "metadata.name",
    ),
    # distillation kinds (PaddleDetection's implementation)
    BadSpec(
        "ppdet-distill-kind-with-a-built-in-teacher",
        sets(
            spec__model=PPYOLOE_STUDENT,
            spec__strategy=kind_step("ppyoloe", {"architecture": "yolov3_darknet53"}),
        ),
        "spec.strategy[0].distill.teacher",
    ),
    BadSpec(
        "ppdet-distill-kind-on-a-built-in-student",
        sets(spec__strategy=kind_step("cwd")),
        "spec.model",
    ),
    BadSpec(
        "distill-weight-with-a-ppdet-kind",
        sets(spec__model=PPYOLOE_STUDENT, spec__strategy=kind_step("fgd", weight="1000")),
        "spec.strategy[0].distill.weight",
    ),
    BadSpec(
        "distill-kind-settings-of-another-kind",
        sets(spec__model=PPYOLOE_STUDENT, spec__strategy=kind_step("fgd", cwd={"tau": "2.0"})),
        "spec.strategy[0].distill.cwd",
    ),
    BadSpec(
        "ppyoloe-distilling-nothing",
        sets(
            spec__model=PPYOLOE_STUDENT,
            spec__strategy=kind_step(
                "ppyoloe", PPYOLOE_TEACHER, ppyoloe={"logitsDistill": False, "featDistill": False}
            ),
        ),
        "spec.strategy[0].distill.ppyoloe",
    ),
    BadSpec(
        "unknown-distill-loss",
        sets(spec__model=PPYOLOE_STUDENT, spec__strategy=kind_step("kd")),
        "spec.strategy[0].distill.loss",
    ),
    BadSpec(
        "unknown-feature-distiller",
        sets(
            spec__model=PPYOLOE_STUDENT,
            spec__strategy=kind_step("ppyoloe", PPYOLOE_TEACHER, ppyoloe={"featDistiller": "kl"}),
        ),
        "spec.strategy[0].distill.ppyoloe.featDistiller",
    ),
    # unstructured pruning
    BadSpec(
        "sparsify-ratio-above-one",
        sets(spec__strategy=[{"sparsify": {"ratio": "1.5"}}]),
        "spec.strategy[0].sparsify.ratio",
    ),
    BadSpec(
        "sparsify-without-ratio", sets(spec__strategy=[{"sparsify": {}}]), "spec.strategy[0].sparsify.ratio"
    ),
    BadSpec(
        "sparsify-initial-ratio-not-below-ratio",
        sets(spec__strategy=[{"sparsify": {**SPARSIFY, "gmp": {**GMP, "initialRatio": "0.8"}}}]),
        "spec.strategy[0].sparsify.gmp.initialRatio",
    ),
    BadSpec(
        "sparsify-gmp-pruning-too-short-for-its-steps",
        sets(spec__strategy=[{"sparsify": {**SPARSIFY, "gmp": {**GMP, "pruning": 30}}}]),
        "spec.strategy[0].sparsify.gmp.pruning",
    ),
    BadSpec(
        "sparsify-gmp-without-training",
        sets(spec__strategy=[{"sparsify": {**SPARSIFY, "fineTune": {"iterations": 0}}}]),
        "spec.strategy[0].sparsify.fineTune.iterations",
    ),
    BadSpec(
        "sparsify-params-type-unknown",
        sets(spec__strategy=[{"sparsify": {"ratio": "0.5", "paramsType": "conv3x3"}}]),
        "spec.strategy[0].sparsify.paramsType",
    ),
    BadSpec(
        "training-after-sparsify",
        sets(spec__strategy=[{"sparsify": SPARSIFY}, {"qat": {}}]),
        "spec.strategy",
    ),
    BadSpec(
        "cwd-levels-zero",
        sets(spec__model=PPYOLOE_STUDENT, spec__strategy=kind_step("cwd", cwd={"levels": 0})),
        "spec.strategy[0].distill.cwd.levels",
    ),
]


@dataclass(frozen=True)
class GoodSpec:
    """A legal corner of the API; the API server and kslim validate must both accept it."""

    id: str
    mutate: Mutation

    def job(self) -> dict[str, Any]:
        doc = valid_job(name=f"good-{self.id}")
        self.mutate(doc)
        return doc


SLIM_QAT = "pretrain_weights: s3://models/w.pdparams\nslim: QAT\nQAT: {quant_config: {}}\n"
INFERENCE_MODEL = {"inferenceModel": {"uri": "pvc://models/ppyolo"}, "inputSize": 320}

GOOD_SPECS: list[GoodSpec] = [
    GoodSpec(
        "env-from-a-secret-and-allowed-volumes",
        _template(
            env=[
                {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "MKL_DEBUG_CPU_TYPE", "value": "5"},
            ],
            volumes=[
                {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}},
                {"name": "certs", "secret": {"secretName": "certs"}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "x"}}]}},
            ],
            volumeMounts=[{"name": "cache", "mountPath": "/cache", "readOnly": True, "subPath": "a/b"}],
        ),
    ),
    GoodSpec("uri-with-dots-in-names", sets(spec__model__weights__uri="pvc://models/v1..2/w.pdparams")),
    GoodSpec("baseline-only", sets(spec__strategy=[])),
    GoodSpec("ptq-on-inference-model", sets(spec__model=INFERENCE_MODEL, spec__strategy=PTQ)),
    GoodSpec("synthetic-defaults", both(sets(spec__dataset=SYNTHETIC, spec__model__numClasses=3))),
    GoodSpec(
        "pretrained-weights-of-their-model",
        sets(
            spec__model__weights__uri=PRETRAINED_URI,
            spec__model__width="0.25",
            spec__model__numClasses=3,
            spec__dataset={
                "format": "synthetic",
                "synthetic": {
                    "maxObjects": 4,
                    "minObjectSide": "0.2",
                    "maxObjectSide": "0.5",
                    "clutter": False,
                },
            },
        ),
    ),
    GoodSpec(
        "synthetic-without-weights",
        both(drops("spec.model.weights"), sets(spec__dataset=SYNTHETIC, spec__model__numClasses=3)),
    ),
    GoodSpec(
        "prune-then-distill-without-fine-tune",
        sets(spec__strategy=[{"prune": {"ratio": "0.5", "fineTune": {"iterations": 0}}}, DISTILL]),
    ),
    GoodSpec(
        "distill-prune-qat",
        sets(spec__strategy=[DISTILL, {"prune": {"ratio": "0.2"}}, {"qat": {"pact": True}}]),
    ),
    GoodSpec(
        "paddledetection-student-and-teacher",
        sets(
            spec__model=PPDET_STUDENT,
            spec__strategy=[
                {
                    "distill": {
                        "teacher": {
                            "config": {"uri": PPDET_TEACHER},
                            "weights": {"uri": "pvc://models/yolov3_r34_270e_coco.pdparams"},
                        },
                        "weight": "1000",
                    }
                },
                {"prune": {"criterion": "fpgm", "ratios": {"conv2d_27.w_0": "0.5"}}},
            ],
        ),
    ),
    GoodSpec(
        "paddledetection-teacher-trained-in-the-job",
        sets(
            spec__model=PPDET_STUDENT,
            spec__strategy=[{"distill": {"teacher": {"config": {"uri": PPDET_TEACHER}}}}],
        ),
    ),
    GoodSpec(
        "width-one-on-darknet", sets(spec__model__architecture="yolov3_darknet53", spec__model__width="1")
    ),
    GoodSpec(
        "flops-target-with-sensitivity",
        sets(
            spec__strategy=[
                {"prune": {"targetFlopsReduction": "0.4", "sensitivity": True, "params": ["backbone.*"]}}
            ]
        ),
    ),
    GoodSpec("per-parameter-ratios", sets(spec__strategy=[{"prune": {"ratios": {"conv2d_27.w_0": ".25"}}}])),
    GoodSpec("cpu-data-parallel", sets(spec__resources__gpus=0, spec__train__dataParallel=2)),
    GoodSpec("one-process-per-gpu", sets(spec__resources__gpus=4, spec__train__dataParallel=4)),
    GoodSpec("multi-node", sets(spec__resources__workers=4, spec__resources__gpus=8)),
    GoodSpec("multi-node-qat", sets(spec__resources__workers=2, spec__strategy=[{"qat": {}}])),
    GoodSpec(
        "gpu-with-tensorrt",
        sets(spec__resources__gpus=1, spec__benchmark={"device": "auto", "tensorrt": True}),
    ),
    GoodSpec(
        "slim-config-with-its-weights",
        both(
            drops("spec.strategy", "spec.model.weights"),
            sets(spec__slimConfig=SLIM_QAT),
        ),
    ),
    GoodSpec(
        "pod-template",
        sets(
            spec__template={
                "image": "registry.example.com/kslim-runner:1.0",
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {}},
                "env": [{"name": "A", "value": "1"}, {"name": "B"}],
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                "imagePullSecrets": ["regcred"],
                "priorityClassName": "batch-low",
                "serviceAccountName": "kslim-runner",
            }
        ),
    ),
    GoodSpec(
        "quality-gate-and-run-policy",
        sets(
            spec__qualityGate={"maxAPDrop": "1.0", "minSpeedup": "1.2", "maxLatencyMs": "15"},
            spec__runPolicy={
                "suspend": True,
                "backoffLimit": 0,
                "activeDeadlineSeconds": 3600,
                "ttlSecondsAfterFinished": 0,
            },
        ),
    ),
    GoodSpec("name-of-63-characters", sets(metadata__name="x" * 63)),
    GoodSpec(
        "ppyoloe-distill-with-paddledetection-defaults",
        sets(spec__model=PPYOLOE_STUDENT, spec__strategy=kind_step("ppyoloe", PPYOLOE_TEACHER)),
    ),
    GoodSpec(
        "ppyoloe-distill-with-cwd-features",
        sets(
            spec__model=PPYOLOE_STUDENT,
            spec__strategy=kind_step(
                "ppyoloe", PPYOLOE_TEACHER, ppyoloe={"featDistiller": "cwd", "logitsLdDistill": False}
            ),
        ),
    ),
    GoodSpec("sparsify-gmp", sets(spec__strategy=[{"sparsify": SPARSIFY}])),
    GoodSpec(
        "sparsify-one-shot-then-ptq",
        sets(
            spec__strategy=[
                {"prune": {"ratio": "0.3"}},
                {
                    "sparsify": {
                        "ratio": ".5",
                        "params": ["backbone.*"],
                        "skipParams": ["conv2d_0.w_0"],
                        "localSparsity": False,
                        "fineTune": {"iterations": 0},
                    }
                },
                {"ptq": {}},
            ]
        ),
    ),
    GoodSpec(
        "sparsify-gmp-in-epochs",
        sets(spec__strategy=[{"sparsify": {**SPARSIFY, "gmp": {**GMP, "unit": "epochs", "pruning": 150}}}]),
    ),
    GoodSpec(
        "cwd-fgd-ld-kinds",
        sets(
            spec__model=PPYOLOE_STUDENT,
            spec__strategy=[
                *kind_step("cwd", cwd={"tau": "1.0", "weight": "5.0", "levels": 5}),
                *kind_step("fgd", fgd={"alphaFgd": "0.001", "lambdaFgd": "0.000005"}),
                *kind_step("ld"),
            ],
        ),
    ),
]

"""Weights that ship with kslim, named in a job as `kslim://pretrained/<name>`.

Nothing can be downloaded at run time on an air-gapped cluster, and a detector trained from scratch
in a few CPU minutes detects nearly nothing; so the quick start starts from weights this project
trained (on the synthetic shapes of the quick start's settings) and ships inside the runner package.
Each entry says which model the weights fit (checked at admission and by `kslim validate`) and the
SHA-256 the runner checks before loading them. `make quickstart-weights` retrains them.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEME = "kslim://pretrained/"


@dataclass(frozen=True)
class Pretrained:
    name: str
    architecture: str
    width: str
    num_classes: int
    sha256: str
    trained_on: str
    """What the weights learned from (a user-facing line)."""

    @property
    def uri(self) -> str:
        return SCHEME + self.name

    @property
    def filename(self) -> str:
        return f"{self.name}.pdparams"


SHAPES_YOLOV3_MBV1_X025 = Pretrained(
    name="shapes-yolov3-mobilenet-v1-x0.25",
    architecture="yolov3_mobilenet_v1",
    width="0.25",
    num_classes=3,
    sha256="1bc3273fdf808850850ce7812a18fec34e6136d4e167667a9c609a7e4949446b",
    trained_on="kslim synthetic shapes at 160 px: 3 classes, 1-4 objects of 20-50% of the side, no clutter "
    "(examples/quickstart-pretrain.yaml)",
)

REGISTRY: dict[str, Pretrained] = {p.name: p for p in (SHAPES_YOLOV3_MBV1_X025,)}


def weights_uri_pattern(uri_pattern: str) -> str:
    """A URI pattern (`^(a|b)$`) widened to also match kslim://pretrained/<name>."""
    assert uri_pattern.startswith("^(") and uri_pattern.endswith(")$")
    return uri_pattern[:-2] + "|kslim://pretrained/[a-z0-9][-a-z0-9.]*)$"


def lookup(uri: str) -> Pretrained | None:
    """The entry a `kslim://pretrained/<name>` URI names, or None (unknown name or not that scheme)."""
    if not uri.startswith(SCHEME):
        return None
    return REGISTRY.get(uri[len(SCHEME) :])


def mismatch(entry: Pretrained, architecture: str | None, width: str, num_classes: int) -> str | None:
    """Why these weights do not fit the model, or None when they do."""
    width_ok = float(width) == float(entry.width)
    if architecture == entry.architecture and width_ok and num_classes == entry.num_classes:
        return None
    return (
        f"{entry.uri} are weights of {entry.architecture} width {entry.width} with numClasses "
        f"{entry.num_classes}: set model.architecture, model.width and model.numClasses to those, "
        "or give weights of your own model"
    )


def cel_rule() -> str:
    """CEL twin of `lookup` + `mismatch` for a model spec object (`self` = spec.model)."""
    clauses = [
        f"(self.weights.uri == '{p.uri}' && has(self.architecture) && self.architecture == "
        f"'{p.architecture}' && double(self.width) == {float(p.width)} && self.numClasses == {p.num_classes})"
        for p in REGISTRY.values()
    ]
    return "!has(self.weights) || !self.weights.uri.startsWith('kslim://') || " + " || ".join(clauses)

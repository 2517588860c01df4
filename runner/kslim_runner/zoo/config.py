"""A PaddleDetection model config: read from its tree (`_BASE_` includes resolve relative to each
file, as PaddleDetection does), checked with errors that name the file and the key, and fitted to a
job (classes, input size, normalisation layers, no downloads).

What the runner keeps of a model is a `ZooSource` (the config's path and the job's overrides, plain
data): every process and every stage rebuilds the same model from it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from kslim_api.contract import Reason
from kslim_api.ppdet_modules import PPDET_SHARED_KEYS

from kslim_runner.errors import UserError
from kslim_runner.zoo.lib import ppdet, registered

BASE_KEY = "_BASE_"
#: Configs this project writes for the `architecture:` shorthands (PaddleDetection's format).
SHORTHAND_DIR = Path(__file__).parent / "configs"
#: Config keys that make PaddleDetection download weights.
WEIGHT_URL_KEYS = ("pretrain_weights", "weights")
READERS = ("TrainReader", "EvalReader", "TestReader")


@dataclass(frozen=True)
class ZooSource:
    """How to rebuild a model: a PaddleDetection config and what the job changes in it. Reads like
    the built-in DetectorConfig where the rest of the runner looks (architecture, num_classes,
    input_size, width)."""

    config: str  # absolute path of the model's YAML
    architecture: str  # a label: the shorthand's name or the config file's stem
    num_classes: int
    input_size: int
    width: float | None = None  # backbone `scale` (shorthand MobileNet configs only)
    #: Module sections of a slim config ({ppdet class: settings}), merged over the config as
    #: PaddleDetection merges a slim config into its workspace.
    overrides: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZooSource:
        keys = ("config", "architecture", "num_classes", "input_size", "width")
        return cls(**{k: d[k] for k in keys}, overrides=d.get("overrides"))


def shorthand_config(architecture: str) -> Path:
    path = SHORTHAND_DIR / f"{architecture}.yml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in SHORTHAND_DIR.glob("*.yml") if not p.stem.startswith("_")))
        raise UserError(
            f"unknown architecture {architecture}; shorthands: {have}", reason=Reason.INVALID_SPEC
        )
    return path


def _read_yaml(path: Path, included_by: Path | None) -> dict[str, Any]:
    ppdet()  # registers the YAML tags PaddleDetection configs use (!PiecewiseDecay, ...)
    where = f" (a _BASE_ of {included_by})" if included_by else ""
    if not path.is_file():
        raise UserError(f"PaddleDetection config {path}{where} not found", reason=Reason.DATA_NOT_FOUND)
    try:
        doc = yaml.load(path.read_text(), Loader=yaml.Loader)
    except yaml.YAMLError as e:
        raise UserError(
            f"PaddleDetection config {path}{where} is not valid YAML: {e}", reason=Reason.BAD_CONFIG
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"PaddleDetection config {path}{where} cannot be read: {e}", reason=Reason.BAD_CONFIG
        ) from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UserError(
            f"PaddleDetection config {path}{where} is not a YAML mapping", reason=Reason.BAD_CONFIG
        )
    return doc


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """PaddleDetection's rule: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(out.get(k), dict) and isinstance(v, dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def read_tree(path: Path, _included_by: Path | None = None, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The config merged with its _BASE_ files (later bases win over earlier, the file over all)."""
    path = Path(path).resolve()
    if path in _seen:
        raise UserError(
            f"PaddleDetection config {path} includes itself through _BASE_", reason=Reason.BAD_CONFIG
        )
    doc = _read_yaml(path, _included_by)
    bases = doc.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise UserError(
            f"PaddleDetection config {path}: _BASE_ must be a list of files", reason=Reason.BAD_CONFIG
        )
    merged: dict[str, Any] = {}
    for entry in bases:
        base = Path(str(entry)).expanduser()
        base = base if base.is_absolute() else path.parent / base
        if not base.is_file():
            raise UserError(
                f"PaddleDetection config {path}: _BASE_ entry {entry!r} not found (looked for {base}); "
                "give the config inside its configs/ tree so its includes resolve",
                reason=Reason.DATA_NOT_FOUND,
            )
        merged = _merge(merged, read_tree(base, path, (*_seen, path)))
    return _merge(merged, doc)


def check_model(cfg: dict[str, Any], path: Path) -> str:
    """The architecture's name, after checking that ppdet knows it and every module it names."""
    arch = cfg.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise UserError(
            f"PaddleDetection config {path} names no `architecture` (is it a model config? a slim "
            "config goes in strategy or slimConfig)",
            reason=Reason.BAD_CONFIG,
        )
    if not registered(arch):
        raise UserError(
            f"PaddleDetection config {path}: architecture {arch} is not a class PaddleDetection 2.6 "
            "knows; check the spelling or the PaddleDetection version the config is from",
            reason=Reason.BAD_CONFIG,
        )
    for key, value in (cfg.get(arch) or {}).items():
        if isinstance(value, str) and value[:1].isupper() and value not in cfg and not registered(value):
            raise UserError(
                f"PaddleDetection config {path}: {arch}.{key} is {value}, which PaddleDetection 2.6 does "
                "not know",
                reason=Reason.BAD_CONFIG,
            )
    return arch


# --- fitting a config to the job -------------------------------------------------------------------------


def _fit_size(target: Any, size: int, keep_ratio: bool) -> list[int]:
    """[h, w] for a square input `size`; with keep_ratio the short side becomes `size` and the long
    side keeps the config's proportion (e.g. [800, 1333] -> [size, 1.67 size])."""
    if keep_ratio and isinstance(target, list | tuple) and len(target) == 2 and min(target) > 0:
        short, long = sorted(int(t) for t in target)
        return [size, max(size, round(size * long / short))]
    return [size, size]


def _fit_transform(name: str, args: dict[str, Any], size: int) -> dict[str, Any]:
    args = dict(args or {})
    keep = bool(args.get("keep_ratio", False))
    if name in ("Resize",) and "target_size" in args:
        args["target_size"] = _fit_size(args["target_size"], size, keep)
    elif name in ("BatchRandomResize", "RandomResize") and "target_size" in args:
        sizes = args["target_size"]
        first = sizes[0] if isinstance(sizes, list | tuple) and sizes else sizes
        args["target_size"] = [_fit_size(first, size, keep) if isinstance(first, list | tuple) else size]
    elif name == "RandomShortSideResize" and "short_side_sizes" in args:
        args["short_side_sizes"] = [size]
        if "max_size" in args:
            args["max_size"] = max(size, round(size * 1333 / 800))
    return args


def fit_input_size(cfg: dict[str, Any], size: int) -> None:
    """Every resize of the readers, the exported input shape, a baked `eval_size` and SSD's prior
    boxes at `size`, so the model trains, exports and is timed at the job's input size."""
    for reader in READERS:
        section = cfg.get(reader)
        if not isinstance(section, dict):
            continue
        for key in ("sample_transforms", "batch_transforms"):
            ops = section.get(key) or []
            section[key] = [
                {name: _fit_transform(name, args, size) for name, args in op.items()}
                if isinstance(op, dict)
                else op
                for op in ops
            ]
        shape = (section.get("inputs_def") or {}).get("image_shape")
        # [C, H, W], or [N, C, H, W] as PicoDet's readers write it
        if (
            isinstance(shape, list)
            and len(shape) in (3, 4)
            and all(isinstance(s, int) and s > 0 for s in shape[-2:])
        ):
            section["inputs_def"]["image_shape"] = [*shape[:-2], size, size]
    for key in ("eval_height", "eval_width"):
        if key in cfg:
            cfg[key] = size
    if "eval_size" in cfg and cfg["eval_size"] is not None:
        cfg["eval_size"] = [size, size]
    for section in cfg.values():
        prior = section.get("anchor_generator") if isinstance(section, dict) else None
        if isinstance(prior, dict) and isinstance(prior.get("base_size"), int | float):
            _fit_priors(prior, size)


def _fit_priors(prior: dict[str, Any], size: int) -> None:
    """SSD's prior boxes are pixel sizes for an image of `base_size` (prior_box normalises them by
    the image's size): scaled with the input, each prior covers the same share of the image."""
    factor = size / float(prior["base_size"])

    def scale(v: Any) -> Any:
        if isinstance(v, list):
            return [scale(x) for x in v]
        return round(float(v) * factor, 3) if isinstance(v, int | float) else v

    for key in ("min_sizes", "max_sizes"):
        if key in prior:
            prior[key] = scale(prior[key])
    prior["base_size"] = size


def fit_classes(cfg: dict[str, Any], num_classes: int) -> None:
    """The job's classes for the model and for reader transforms that build class targets
    (Gt2YoloTarget's num_classes, ...)."""
    cfg["num_classes"] = num_classes
    for reader in READERS:
        section = cfg.get(reader)
        if not isinstance(section, dict):
            continue
        for key in ("sample_transforms", "batch_transforms"):
            for op in section.get(key) or []:
                for args in op.values() if isinstance(op, dict) else ():
                    if isinstance(args, dict) and "num_classes" in args:
                        args["num_classes"] = num_classes


def fit_config(source: ZooSource) -> tuple[dict[str, Any], list[str]]:
    """The config as the runner builds it, and one note per change a user should know of."""
    path = Path(source.config)
    cfg = copy.deepcopy(read_tree(path))
    notes = apply_overrides(cfg, source.overrides or {}, path)
    arch = check_model(cfg, path)
    fit_classes(cfg, source.num_classes)
    if cfg.get("norm_type") == "sync_bn":
        cfg["norm_type"] = "bn"  # SyncBatchNorm has no CPU kernel; data-parallel BN stays per process
        notes.append("norm_type sync_bn trains as bn (per-process batch statistics)")
    for key in WEIGHT_URL_KEYS:
        cfg.pop(key, None)  # weights come from spec.model.weights only; see download_fields
    if source.width is not None:
        backbone = (cfg.get(arch) or {}).get("backbone")
        if not isinstance(backbone, str) or not _has_scale(backbone):
            raise UserError(
                f"model.width applies to MobileNet backbones; {source.architecture} uses {backbone}: remove "
                "model.width",
                reason=Reason.INVALID_SPEC,
            )
        cfg.setdefault(backbone, {})["scale"] = float(source.width)
    fit_input_size(cfg, source.input_size)
    return cfg, notes


def apply_overrides(cfg: dict[str, Any], overrides: dict[str, Any], path: Path) -> list[str]:
    """Merge a slim config's module sections over the model config (before the job's classes and
    input size are fitted, which win as they do over the config itself). A name ppdet does not know
    is a user error; one the model does not use is merged (PaddleDetection does) and noted."""
    notes: list[str] = []
    for name, settings in overrides.items():
        if name in PPDET_SHARED_KEYS or name == "architecture":
            cfg[name] = copy.deepcopy(settings)  # a global value (width_mult, for_distill, ...)
            continue
        if name not in READERS and not registered(name):
            raise UserError(
                f"slimConfig: {name} is not a module PaddleDetection 2.6 registers; check the spelling",
                reason=Reason.INVALID_SPEC,
            )
        if name not in cfg and not _names_module(cfg, name):
            notes.append(f"slimConfig: {name} is not a module of {path.name}; merged but unused")
        base = cfg.get(name)
        cfg[name] = (
            _merge(base, copy.deepcopy(settings)) if isinstance(base, dict) else copy.deepcopy(settings)
        )
    return notes


def _names_module(cfg: dict[str, Any], name: str) -> bool:
    """Whether some section of the config refers to module `name` (e.g. YOLOv3: {neck: PPYOLOFPN})."""
    return any(isinstance(sec, dict) and name in sec.values() for sec in cfg.values())


def _has_scale(backbone: str) -> bool:
    ppdet()
    from ppdet.core.workspace import global_config

    schema = global_config.get(backbone)
    return schema is not None and "scale" in getattr(schema, "schema", {})


def download_fields(path: Path) -> dict[str, str]:
    """Config keys that ask PaddleDetection to download weights ({key: url})."""
    cfg = read_tree(path)
    return {k: str(cfg[k]) for k in WEIGHT_URL_KEYS if isinstance(cfg.get(k), str) and "://" in str(cfg[k])}


def refuse_downloads(urls: dict[str, str], config: str, fix: str) -> None:
    """A user error when the config (`config` names it) asks to download weights (`urls`, from
    `download_fields`): the runner downloads nothing at run time. `fix` says what to do instead;
    {key} in it is the config key."""
    if not urls:
        return
    key, url = next(iter(urls.items()))
    raise UserError(
        f"{config} asks to download {key} from {url}; the runner downloads nothing at run time: "
        + fix.format(key=key),
        reason=Reason.BAD_CONFIG,
    )

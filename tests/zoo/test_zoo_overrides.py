"""A slim config's module sections (e.g. PPYOLOFPN: {...} in PaddleDetection's ppyolo QAT config)
change the model PaddleDetection builds, as its workspace merge does; a name ppdet does not register
is one clear error."""

from __future__ import annotations

import pytest
from kslim_runner.errors import UserError
from zoo_helpers import SHORTHANDS, SIZE

CONFIG = str(SHORTHANDS / "ppyolo_mbv3_large.yml")


def _param_names(overrides: dict | None) -> set[str]:
    from kslim_runner.zoo.build import build_model
    from kslim_runner.zoo.config import ZooSource

    model = build_model(ZooSource(CONFIG, "ppyolo_mbv3_large", 3, SIZE, overrides=overrides))
    return {name for name, _ in model.named_parameters()}


def test_a_module_section_changes_the_built_model() -> None:
    plain = _param_names(None)
    no_spp = _param_names({"PPYOLOFPN": {"spp": False}})
    # kslim's config has spp: true; the override drops the SPP block's conv and keeps the rest
    spp = {n for n in plain - no_spp if ".spp." in n}
    assert spp and plain - no_spp == spp and no_spp < plain


def test_an_unknown_module_name_is_one_clear_error() -> None:
    with pytest.raises(UserError, match=r"PPYOLOFNP is not a module PaddleDetection 2\.6 registers"):
        _param_names({"PPYOLOFNP": {"spp": False}})


def test_a_shared_global_reaches_every_module_that_declares_it() -> None:
    """width_mult (ppdet's __shared__ key) set over PP-YOLOE+ s narrows backbone, neck and head."""
    from kslim_runner.zoo.build import build_model
    from kslim_runner.zoo.config import ZooSource

    config = str(SHORTHANDS / "ppyoloe_plus_crn_s.yml")

    def size(overrides: dict | None) -> int:
        model = build_model(ZooSource(config, "ppyoloe_plus_crn_s", 3, SIZE, overrides=overrides))
        return sum(int(p.numel()) for p in model.parameters())

    assert size({"width_mult": 0.25}) < size(None) / 2  # the config's own width_mult is 0.50

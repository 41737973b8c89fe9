"""What a model is scored on: the data config (a dataset's, the checkpoint's, or the checkpoint's with a moved
root), its label decoder, and the scenes of a split or of the user's own ``input=`` and ``label=``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg.errors import ConfigError, DataError
from rsseg.evaluation.pairing import pair_files


def resolve_data_config(cfg: DictConfig, stored: DictConfig | None) -> DictConfig | None:
    """The data config to evaluate on: ``data=<name>`` (a whole composed config), the checkpoint's own, or the
    checkpoint's with a partial override (``+data.root=/mnt/potsdam`` also moves ``data.scenes.root``)."""
    override = cfg.get("data")
    stored_data = stored.get("data") if stored is not None else None
    if override is not None and "_target_" in override:
        return override
    if stored_data is None:
        return override
    data = OmegaConf.create(OmegaConf.to_container(stored_data, resolve=True))
    if override:
        patch = OmegaConf.to_container(override, resolve=True)
        if "root" in patch and OmegaConf.select(data, "scenes.root") == data.get("root") and "scenes" in data:
            patch.setdefault("scenes", {})
            if isinstance(patch["scenes"], dict):
                patch["scenes"].setdefault("root", patch["root"])
        data = OmegaConf.merge(data, patch)
    return data


def build_decoder(data: DictConfig | None, num_classes: int, palette=None):
    """The label decoder a data config describes; without one, colour labels use ``palette`` (e.g. the
    prediction raster's colour table) and one-band labels are class indices."""
    from rsseg.data.labels import decoder_from_config

    return decoder_from_config(data, num_classes, palette)



def scenes_for_model(cfg: DictConfig, data: DictConfig | None, spec, dm_mean_std):
    """``(scenes, split name, decoder, bands, nodata)`` to predict: input/label globs, or a dataset split."""
    from rsseg.data.raster import Scene, check_pair
    from rsseg.inference.predict import list_inputs

    if data is None:
        raise ConfigError("no data config: the checkpoint stores none; give data=<name>")
    if cfg.get("input") is not None:
        if cfg.get("label") is None:
            raise ConfigError("input= needs label= (the label rasters to score against)")
        labels, _ = list_inputs(cfg.label)
        label_set = {p.resolve() for p in labels}  # a folder holding images and labels: labels are not inputs
        images = [p for p in list_inputs(cfg.input)[0] if p.resolve() not in label_set]
        if not images:
            raise DataError(f"{cfg.input}: no image rasters besides the label files")
        pairs = pair_files(images, labels, ("input", "label"))
        decoder = build_decoder(data, spec.num_classes)
        if decoder is None:
            raise ConfigError("data.label_format is not set; expected 'colour' or 'index'")
        scenes = [Scene(image, label) for image, label in pairs]
        bands = list(cfg.bands) if cfg.get("bands") else spec.bands
        for scene in scenes:  # size, CRS and transform of every pair, before the model is built
            check_pair(scene, spec.in_channels, bands, decoder.bands_needed)
        return scenes, "input", decoder, spec.bands, data.get("nodata")
    if "_target_" not in data:
        raise ConfigError("the data config has no _target_ (datamodule); give data=<name> or input= with label=")
    from hydra.utils import instantiate

    container = OmegaConf.to_container(data, resolve=True)
    container.update(dm_mean_std)
    dm = instantiate(OmegaConf.create(container), augment=None, _recursive_=True)
    split = cfg.get("split")
    if split is None:  # the test split, or validation when the dataset has no test split (synthetic)
        split = "test" if dm.split_scenes("test")[0] else "val"
    scenes, _ = dm.split_scenes(split)
    if not scenes:
        from rsseg.runtime.preflight import empty_split_reason

        raise DataError(f"split={split}: the split is empty: {empty_split_reason(dm.scenes, split)}")
    return scenes, split, dm.decode_labels, dm.bands, data.get("nodata")

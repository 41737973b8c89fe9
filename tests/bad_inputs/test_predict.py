"""Bad input to ``python predict.py`` and ``rsseg predict``: typos, values out of range, broken rasters and
checkpoints, outputs that cannot or must not be written."""

from __future__ import annotations

from tests.bad_inputs.corpus import Case, cases, check_refusal

CKPT, SCENE = "ckpt={world}/tiny.ckpt", "input={world}/scene.tif"
PREDICT = ("predict.py", CKPT, SCENE, "output=out.tif", "progress=false")
RSSEG_PREDICT = ("rsseg", "predict", CKPT, SCENE, "output=out.tif", "progress=false")


@cases(
    # Keys and values (refused while the config is composed or checked, before any file is opened)
    Case("misspelt_key_added_with_plus", (*PREDICT, "+tilesize=256"),
         "error: tilesize: not a key of the predict config (conf/predict.yaml) (did you mean tile_size?)"),
    Case("misspelt_key", (*PREDICT, "tilesize=256"), "error: tilesize: not a key of the predict config"),
    Case("device_gpu", (*PREDICT, "device=gpu"), "error: device=gpu: not a device name (did you mean cuda?)"),
    Case("bands_not_a_list", (*PREDICT, "bands=2"), "error: bands=2: not a list; expected a list of 1-based band"),
    Case("bands_zero_based", (*PREDICT, "bands=[0,1,2]"), "error: bands=[0, 1, 2]: 0 is below the minimum 1"),
    Case("nodata_not_a_number", (*PREDICT, "nodata=abc"), "error: nodata=abc: not a number"),
    Case("tile_size_zero", (*PREDICT, "tile_size=0"), "error: tile_size=0: below the minimum 1"),
    Case("overlap_negative", (*PREDICT, "overlap=-0.1"), "error: overlap=-0.1: below the minimum 0"),
    Case("overlap_not_below_tile", (*PREDICT, "tile_size=64", "overlap=64"),
         "error: overlap=64.0 (64 px) must be smaller than tile_size=64"),
    Case("unknown_blend", (*PREDICT, "blend=gauss"), "error: blend=gauss: not one of the choices (did you mean gaussian?)"),
    Case("unknown_precision", (*PREDICT, "precision=fp8"), "error: precision=fp8: not one of the choices"),
    Case("batch_size_zero", (*PREDICT, "batch_size=0"), "error: batch_size=0: below the minimum 1"),
    Case("override_syntax", (*PREDICT, "bands=[1,2"), "error: bands=[1,2: not an override Hydra can read"),
    # Inputs
    Case("input_missing", ("predict.py", CKPT, "input={world}/nope.tif"), "error: {world}/nope.tif: file not found"),
    Case("text_file_as_raster", ("predict.py", CKPT, "input={world}/fake.tif"),
         "{world}/fake.tif: not a readable raster"),
    Case("empty_raster_file", ("predict.py", CKPT, "input={world}/empty.tif"), "{world}/empty.tif: not a readable raster"),
    Case("truncated_raster", ("predict.py", CKPT, "input={world}/truncated.tif", "output=out.tif", "progress=false"),
         "{world}/truncated.tif: reading rows"),
    Case("four_bands_for_a_three_band_model", ("predict.py", CKPT, "input={world}/scene4.tif", "output=out.tif"),
         "scene4.tif: 4 bands but the checkpoint's model expects in_channels=3 (set bands=[...] to choose them)"),
    Case("bands_beyond_the_raster", (*PREDICT, "bands=[1,2,4]"),
         "scene.tif: bands [1, 2, 4] requested but the raster has 3 bands; expected 1-based band numbers in 1..3"),
    Case("folder_without_rasters", ("predict.py", CKPT, "input={world}/notes"), "{world}/notes: folder holds no raster"),
    Case("glob_matching_nothing", ("predict.py", CKPT, "input={world}/*.jp2"), "*.jp2: pattern matches no file"),
    # Outputs
    Case("output_exists", ("predict.py", CKPT, SCENE, "output={world}/existing.tif"),
         "existing.tif: output exists; pass overwrite=true to replace it"),
    Case("output_is_the_input", ("predict.py", CKPT, SCENE, "output={world}/scene.tif", "overwrite=true"),
         "scene.tif: output would overwrite its input"),
    Case("output_folder_read_only", ("predict.py", CKPT, SCENE, "output={read_only}/classes.tif"),
         "error: output={read_only}: cannot write in"),
    # A region's shards
    Case("shard_beyond_shards", (*PREDICT[:3], "output=pred/", "shards=2", "shard=2"),
         "error: shard=2: expected a shard number in 0..1 (shards=2)"),
    Case("shards_without_output", ("predict.py", CKPT, SCENE, "shards=2"),
         "error: shards=2: output= is required, the folder every shard writes into"),
    # Checkpoints
    Case("ckpt_missing", ("predict.py", SCENE, "ckpt={world}/nope.ckpt"), "error: ckpt={world}/nope.ckpt: checkpoint not found"),
    Case("ckpt_is_a_text_file", ("predict.py", SCENE, "ckpt={world}/notes.txt"),
         "ckpt={world}/notes.txt: not a PyTorch checkpoint (it starts with 'epoch,lo')", forbid="weights_only"),
    Case("ckpt_empty", ("predict.py", SCENE, "ckpt={world}/empty.ckpt"), "ckpt={world}/empty.ckpt: empty file (0 bytes)"),
    Case("ckpt_truncated", ("predict.py", SCENE, "ckpt={world}/truncated.ckpt"),
         "truncated.ckpt: a damaged or truncated checkpoint", forbid="miniz"),
    Case("ckpt_tampered", ("predict.py", SCENE, "ckpt={world}/tampered.ckpt"),
         "tampered.ckpt: it holds Python objects besides tensors and plain values", forbid="weights_only"),
    Case("ckpt_without_rsseg_config", ("predict.py", SCENE, "ckpt={world}/plain.ckpt"),
         "plain.ckpt: a checkpoint without rsseg's training config"),
    Case("ckpt_config_names_another_model", ("predict.py", SCENE, "ckpt={world}/other_model.ckpt"),
         "error: ckpt={world}/other_model.ckpt: its weights are not those of the model its config names "
         "(torch.nn.Sequential): 4 missing (first 0.weight), 2 unexpected (first weight)"),
    Case("ckpt_a_folder", ("predict.py", SCENE, "ckpt={world}/checkpoints"),
         "ckpt={world}/checkpoints: a folder (it holds {world}/checkpoints/best.ckpt)"),
    Case("ckpt_not_given", ("predict.py", SCENE), "error: ckpt= is required"),
    # The same app as one command: the same refusals
    Case("rsseg_predict_misspelt_key", (*RSSEG_PREDICT, "+tilesize=256"), "error: tilesize: not a key of the predict config"),
    Case("rsseg_predict_input_missing", ("rsseg", "predict", CKPT, "input={world}/nope.tif"),
         "error: {world}/nope.tif: file not found"),
)
def test_predict_refuses_bad_input(case, outcomes, world):
    check_refusal(case, outcomes, world)

"""Bad input to ``rsseg prepare``: values out of range, typos in nested keys, datasets that do not hold what the
config says."""

from __future__ import annotations

from tests.bad_inputs.corpus import Case, cases, check_refusal

FOLDER = ("rsseg", "prepare", "data=geotiff", "data.root={world}/small_set", "out_dir=prepared")


@cases(
    Case("tile_size_zero", (*FOLDER, "tiles.write=true", "tiles.size=0"), "error: tiles.size=0: below the minimum 1"),
    Case("misspelt_nested_key", (*FOLDER, "+tiles.sise=256"), "error: tiles.sise: not a key of tiles (did you mean size?)"),
    Case("unknown_stats_split", (*FOLDER, "stats_split=training"),
         "error: stats_split=training: not one of the choices"),
    Case("window_negative", (*FOLDER, "window=-1"), "error: window=-1: below the minimum 1"),
    Case("dataset_folder_missing", ("rsseg", "prepare", "data=geotiff", "data.root={world}/nowhere", "out_dir=prepared"),
         "error: {world}/nowhere: geotiff folder not found (set data.root=/path/to/geotiff)"),
    Case("scenes_smaller_than_split_tiles", (*FOLDER, "protocol=random"),
         "the train split is empty: no 512 x 512 tile fits in any of the 2 scenes under {world}/small_set "
         "(the largest is 64 x 64); expected tiles that fit, e.g. data.scenes.split_tile_size=64"),
    Case("label_values_not_one_per_class", (*FOLDER, "data.label_values=[0]"),
         "error: data.label_values=[0]: 1 values but data.num_classes=2; expected one label value per class"),
    Case("out_dir_read_only", ("rsseg", "prepare", "data=geotiff", "data.root={world}/small_set",
                               "out_dir={read_only}/prepared"), "error: out_dir={read_only}/prepared: cannot write in"),
)
def test_prepare_refuses_bad_input(case, outcomes, world):
    check_refusal(case, outcomes, world)

"""Bad input to ``python eval.py`` and ``rsseg eval``: labels that do not line up with their images (another CRS,
shifted, smaller), unknown splits and label values, incomplete modes."""

from __future__ import annotations

from tests.bad_inputs.corpus import Case, cases, check_refusal

INDEX_CLASSES = ("+data.label_format=index", "+data.num_classes=4", "+data.class_names=[a,b,c,d]")
OWN = ("eval.py", "ckpt={world}/tiny.ckpt", "input={world}/scene.tif", "progress=false")


@cases(
    Case("label_in_another_crs", (*OWN, "label={world}/label_4326.tif"),
         "label_4326.tif: CRS EPSG:4326 differs from its image's EPSG:32650 (scene.tif)"),
    Case("label_shifted_100_km", (*OWN, "label={world}/label_shifted.tif"),
         "label_shifted.tif: transform (2.0, 0.0, 600000.0, 0.0, -2.0, 4000000.0) differs from its image's "
         "(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0) (origin +100,000.00, +0.00 map units away)"),
    Case("label_smaller_than_image", (*OWN, "label={world}/label_small.tif"),
         "label_small.tif: size 32x32 differs from its image scene.tif (64x64); expected the same size"),
    Case("label_value_not_a_class", (*OWN, "label={world}/label_9.tif"),
         "label_9.tif: label value 9 is not a class (1024 pixels); expected 0..3"),
    Case("unknown_split", ("eval.py", "ckpt={world}/tiny.ckpt", "split=tset"),
         "error: split=tset: not one of the choices (did you mean test?); expected one of train, val, test"),
    Case("input_without_label", OWN, "error: input= needs label="),
    Case("pred_without_label", ("eval.py", "pred={world}/label.tif"), "error: pred= needs label="),
    Case("neither_ckpt_nor_pred", ("eval.py",), "error: give ckpt=<file.ckpt>"),
    Case("prediction_on_another_grid", ("eval.py", "pred={world}/pred_small.tif", "label={world}/label.tif",
                                        "+data.label_format=index", "+data.num_classes=4",
                                        "+data.class_names=[a,b,c,d]"),
         "label.tif: size 64x64 differs from the prediction pred_small.tif (48x48)"),
    Case("float_prediction_of_no_class", ("eval.py", "pred={world}/pred_float.tif", "label={world}/label.tif",
                                          *INDEX_CLASSES),
         "error: {world}/pred_float.tif: float value 0.37 is not a class index (4096 pixels in rows 0..64); "
         "expected a class raster (whole numbers; rsseg predict writes uint8)"),
    Case("colour_coded_prediction_without_a_palette", ("eval.py", "pred={world}/pred_rgb.tif",
                                                       "label={world}/label.tif", *INDEX_CLASSES),
         "error: {world}/pred_rgb.tif: a colour-coded class map (3 bands); give data=<name> (or ckpt=) whose "
         "palette decodes it"),
    Case("misspelt_data_key_added_with_plus", ("eval.py", "ckpt={world}/tiny.ckpt", "+data.rooot=/mnt/potsdam"),
         "error: data.rooot: not an argument of rsseg.data.datamodule.SegmentationDataModule (did you mean root?)"),
    Case("out_dir_read_only", (*OWN, "label={world}/label.tif", "out_dir={read_only}/eval"),
         "error: out_dir={read_only}/eval: cannot write in"),
    Case("class_to_exclude_not_a_class", ("eval.py", "pred={world}/label.tif", "label={world}/label.tif",
                                          "+data.label_format=index", "+data.num_classes=4",
                                          "+data.class_names=[a,b,c,d]", "exclude_from_mean=[clutter]"),
         "error: exclude_from_mean=[clutter]: clutter is not one of the 4 classes; expected names or 0-based "
         "indices of a, b, c, d"),
    Case("rsseg_eval_unknown_split", ("rsseg", "eval", "ckpt={world}/tiny.ckpt", "split=tset"),
         "error: split=tset: not one of the choices"),
)
def test_eval_refuses_bad_input(case, outcomes, world):
    check_refusal(case, outcomes, world)

"""Bad input to ``python train.py`` and ``rsseg train``: refused before a model is built or a step is taken."""

from __future__ import annotations

from tests.bad_inputs.corpus import Case, cases, check_refusal

TRAIN = ("train.py", "model=smp_deeplabv3plus", "logger=none")
FOLDER = (*TRAIN, "data=geotiff", "data.root={world}/small_set", "data.num_workers=0")
MMSEG = (*TRAIN, "data=mmseg_isprs", "data.num_workers=0", "data.tile_size=32", "data.eval_tile_size=32")


@cases(
    Case("seed_not_an_integer", (*TRAIN, "seed=abc"), "error: seed=abc: not an integer; expected an integer"),
    Case("misspelt_trainer_key_added_with_plus", (*TRAIN, "+trainer.max_epoch=3"),
         "error: trainer.max_epoch: not an argument of lightning.pytorch.Trainer (did you mean max_epochs?)"),
    Case("misspelt_trainer_key", (*TRAIN, "trainer.max_epoch=3"), "error: trainer.max_epoch: not a key of trainer"),
    Case("misspelt_top_level_key_added_with_plus", (*TRAIN, "+resmue=auto"),
         "error: resmue: not a key of the train config (conf/train.yaml) (did you mean resume?)"),
    Case("unknown_model", (*TRAIN, "model=unet3"), "error: model=unet3: no such option (did you mean unet?)"),
    Case("batch_size_zero", (*TRAIN, "data.batch_size=0"), "error: data.batch_size=0: below the minimum 1"),
    Case("max_epochs_not_a_number", (*TRAIN, "trainer.max_epochs=ten"), "error: trainer.max_epochs=ten: not an integer"),
    Case("negative_learning_rate", (*TRAIN, "optimizer.lr=-1"),
         "error: optimizer.lr=-1: below the minimum 0; expected a learning rate >= 0"),
    Case("adam_beta_of_one", (*TRAIN, "optimizer.betas=[0.9,1.0]"),
         "error: optimizer.betas=[0.9, 1.0]: 1 is not below 1; expected two coefficients in [0, 1)"),
    Case("milestone_past_the_run", (*TRAIN, "scheduler=step", "scheduler.milestones=[0.5,2]"),
         "error: scheduler.milestones=[0.5, 2]: 2 is above the maximum 1; expected fractions of the run"),
    Case("gpu_without_cuda", (*TRAIN, "trainer.accelerator=gpu"), "error: trainer.accelerator=gpu: no CUDA device"),
    Case("text_file_as_ckpt_path", (*TRAIN, "ckpt_path={world}/notes.txt"),
         "error: ckpt_path={world}/notes.txt: not a PyTorch checkpoint", forbid="weights_only"),
    Case("weights_only_checkpoint_to_resume", (*TRAIN, "resume={world}/tiny.ckpt"),
         "error: resume={world}/tiny.ckpt: holds weights but no training state (optimizer_states, loops)"),
    Case("resume_and_ckpt_path", (*TRAIN, "resume=auto", "ckpt_path={world}/tiny.ckpt"),
         "both name where to continue from; expected one of them"),
    Case("scenes_smaller_than_split_tiles", (*FOLDER, "protocol=random"),
         "error: the training split is empty: no 512 x 512 tile fits in any of the 2 scenes"),
    Case("read_only_output_folder", (*TRAIN, "hydra.run.dir={read_only}/run"),
         "permission denied; expected a folder you can write to"),
    Case("rsseg_train_seed_not_an_integer", ("rsseg", "train", "seed=abc"), "error: seed=abc: not an integer"),
    Case("stats_file_without_statistics", (*FOLDER, "data.stats_file={world}/prepared_without_pixels/stats.json"),
         "error: {world}/prepared_without_pixels/stats.json: stats file has no 'mean' list; expected one that "
         "`rsseg prepare` writes without check_pixels=false"),
    # Datasets laid out the mmsegmentation way, not quite
    Case("mmseg_ann_dir_without_img_dir", (*MMSEG, "data.root={world}/mmseg_ann_only"),
         "{world}/mmseg_ann_only/img_dir: folder not found; expected mmsegmentation's layout, img_dir/{train,val} "
         "with the images and ann_dir/{train,val} with their labels"),
    Case("mmseg_colour_coded_labels", (*MMSEG, "data.root={world}/mmseg_rgb_labels"),
         "mmseg_rgb_labels/ann_dir/train/area1_0_0_32_32.png: 3-band label raster, but index labels "
         "(data.label_format=index) need one band of class values"),
    Case("mmseg_stems_differ", (*MMSEG, "data.root={world}/mmseg_other_stems"),
         "{world}/mmseg_other_stems/ann_dir/train: 8 of the 8 images in {world}/mmseg_other_stems/img_dir/train have no "
         "label of the same stem (e.g. no area1_0_0_32_32.png; train/ holds e.g. area1_0_0_32_32_mask.png)"),
)
def test_train_refuses_bad_input(case, outcomes, world):
    check_refusal(case, outcomes, world)

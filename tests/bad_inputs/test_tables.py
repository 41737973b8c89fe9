"""Bad input to ``rsseg tables``: folders that hold no runs or only files that look like results, options out of
range, and output folders that cannot be written. The inputs are the ``results/`` folders of the world."""

from __future__ import annotations

from tests.bad_inputs.corpus import Case, cases, check_refusal

RESULTS = "{world}/results"
GOOD = f"{RESULTS}/good"
EXPECTED_RUN = "expected the results.json a training run writes (python train.py, rsseg train)"


@cases(
    Case("tables_path_missing", ("rsseg", "tables", f"{RESULTS}/nope"),
         f"error: {RESULTS}/nope: no such file or folder; expected a run folder, a sweep folder or a results.json"),
    Case("tables_folder_without_runs", ("rsseg", "tables", f"{RESULTS}/empty"),
         f"error: {RESULTS}/empty: no results.json under this folder; expected a run folder"),
    Case("tables_results_not_json", ("rsseg", "tables", f"{RESULTS}/not_json"),
         f"error: {RESULTS}/not_json/run/results.json: not valid JSON (Expecting ',' delimiter at line 1); "
         f"{EXPECTED_RUN}"),
    Case("tables_results_a_json_list", ("rsseg", "tables", f"{RESULTS}/a_list"),
         f"error: {RESULTS}/a_list/run/results.json: holds a JSON list, not an object; {EXPECTED_RUN}"),
    Case("tables_results_of_an_evaluation", ("rsseg", "tables", f"{RESULTS}/eval_run"),
         f"error: {RESULTS}/eval_run/run/results.json: \"task\" is 'eval', not a training run; {EXPECTED_RUN}"),
    Case("tables_results_without_metrics", ("rsseg", "tables", f"{RESULTS}/no_metrics"),
         f"error: {RESULTS}/no_metrics/run/results.json: has neither \"metrics\" nor \"sizes\"; {EXPECTED_RUN}"),
    Case("tables_runs_with_other_classes", ("rsseg", "tables", f"{RESULTS}/classes_differ"),
         "differ from ['background', 'building'] in"),
    Case("tables_unknown_format", ("rsseg", "tables", GOOD, "--format", "md,xlsx"),
         "error: --format md,xlsx: unknown format 'xlsx'; expected a comma-separated list of md, csv, tex"),
    Case("tables_negative_bootstrap", ("rsseg", "tables", GOOD, "--bootstrap", "-1"),
         "error: --bootstrap and --figure-tiles: negative count; expected 0 or more"),
    Case("tables_bootstrap_not_a_number", ("rsseg", "tables", GOOD, "--bootstrap", "many"),
         "error: rsseg tables: argument --bootstrap: invalid int value: 'many'"),
    Case("tables_unknown_option", ("rsseg", "tables", GOOD, "--colour"),
         "error: rsseg tables: unrecognized arguments: --colour"),
    Case("tables_out_is_a_file", ("rsseg", "tables", GOOD, "--out", "{world}/notes.txt"),
         "error: {world}/notes.txt: cannot write (File exists); expected a writable --out folder"),
    Case("tables_out_under_a_file", ("rsseg", "tables", GOOD, "--out", "{world}/notes.txt/tables"),
         "error: {world}/notes.txt/tables: cannot write (Not a directory); expected a writable --out folder"),
    Case("tables_out_read_only", ("rsseg", "tables", GOOD, "--out", "{read_only}/tables"),
         "error: {read_only}"),  # the folder itself, or (as root) the part of it that could not be made
)
def test_tables_refuses_bad_input(case, outcomes, world):
    check_refusal(case, outcomes, world)

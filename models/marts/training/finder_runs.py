"""``finder_runs``: train (or reuse) the lens finder(s) on training_manifest plus simulated_lenses;
one row per run.  Thin: the work is stronglens.training.runs.runs_table (training in
stronglens.training.train)."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.training.runs import runs_table, settings_from_json

    settings = settings_from_json(dbt.config.get("finder_settings"))
    manifest = dbt.ref("training_manifest").to_arrow_table()
    simulated = dbt.ref("simulated_lenses").to_arrow_table()
    return runs_table(manifest, settings, dbt.config.get("invocation_id"), simulated)

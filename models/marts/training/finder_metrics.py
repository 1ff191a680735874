"""``finder_metrics``: AUC, recall at fixed FPR, TPR0/TPR10, per-N2 FPR, calibration per run, split and
population, plus the run reports (PNGs). Thin: stronglens.training.evaluation and .reports."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.training.evaluation import finder_metrics_model

    return finder_metrics_model(
        runs=dbt.ref("finder_runs").to_arrow_table(),
        scores=dbt.ref("finder_scores").to_arrow_table(),
        manifest=dbt.ref("training_manifest").to_arrow_table(),
        lens_truth=dbt.ref("lens_truth").project("sample_id, theta_e_arcsec").to_arrow_table(),
        settings_json=dbt.config.get("finder_settings"),
        report_dir=dbt.config.get("report_dir"),
    )

"""``realism_score_distributions``: finder scores of real Tier-A lenses vs injections at matched
theta_E (real theta_E from lens_truth). Thin: stronglens.injection.marts.score_distributions_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import score_distributions_table, settings_from_json

    settings = settings_from_json(dbt.config.get("injection_settings"))
    thresholds = dbt.ref("selection_thresholds").to_arrow_table()
    run_id = thresholds.column("run_id")[0].as_py() if thresholds.num_rows else ""
    real = session.sql(
        f"""
        select scores.score, truth.theta_e_arcsec
        from {dbt.ref('finder_scores')} as scores
        inner join {dbt.ref('cutout_manifest')} as manifest on scores.sample_id = manifest.sample_id
        inner join {dbt.ref('lens_truth')} as truth on scores.sample_id = truth.sample_id
        where scores.run_id = $run_id and manifest.tier = 'A'
        """,
        params={"run_id": run_id},
    ).to_arrow_table()
    injections = session.sql(f"select score, theta_e_arcsec from {dbt.ref('injections')}").to_arrow_table()
    return score_distributions_table(injections, real, thresholds, settings)

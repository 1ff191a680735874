"""``realism_score_distributions``: finder scores of real Tier-A lenses vs injections at matched
theta_E (real theta_E from lens_truth). Thin: stronglens.injection.marts.score_distributions_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import real_tier_a_scores, score_distributions_table, settings_from_json

    settings = settings_from_json(dbt.config.get("injection_settings"))
    thresholds = dbt.ref("selection_thresholds").to_arrow_table()
    real = real_tier_a_scores(
        dbt.ref("finder_scores").project("run_id, sample_id, score").to_arrow_table(),
        dbt.ref("cutout_manifest").project("sample_id, tier").to_arrow_table(),
        dbt.ref("lens_truth").project("sample_id, theta_e_arcsec").to_arrow_table(),
        thresholds,
    )
    injections = dbt.ref("injections").project("score, theta_e_arcsec").to_arrow_table()
    return score_distributions_table(injections, real, thresholds, settings)

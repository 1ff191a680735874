"""``selection_thresholds``: finder operating points set on real validation negatives.
Thin: stronglens.injection.marts.thresholds_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import settings_from_json, thresholds_table

    settings = settings_from_json(dbt.config.get("injection_settings"))
    negatives = dbt.ref("cutout_manifest").filter("label = 'negative'").project("sample_id").to_arrow_table()
    return thresholds_table(
        dbt.ref("finder_runs").to_arrow_table(),
        dbt.ref("finder_scores").to_arrow_table(),
        negatives,
        settings,
    )

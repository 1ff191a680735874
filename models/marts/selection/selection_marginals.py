"""``selection_marginals``: completeness over each grid axis, arc S/N and lensed magnitude.
Thin: stronglens.injection.marts.marginals_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import marginals_table, settings_from_json

    settings = settings_from_json(dbt.config.get("injection_settings"))
    injections = dbt.ref("injections").project("* exclude (embedding)").to_arrow_table()
    return marginals_table(
        injections,
        dbt.ref("selection_thresholds").to_arrow_table(),
        dbt.ref("injection_grid").to_arrow_table(),
        settings,
    )

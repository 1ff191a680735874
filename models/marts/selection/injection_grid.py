"""``injection_grid``: the theta_E x PSF x depth cells (from the vars). Thin: stronglens.injection.marts."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import grid_table, settings_from_json

    return grid_table(settings_from_json(dbt.config.get("injection_settings")))

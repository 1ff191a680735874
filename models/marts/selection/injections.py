"""``injections``: one row per injected arc -- cell, host, truth, finder score, recovered per
operating point; writes the gallery. Thin: stronglens.injection.marts.injections_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import injections_table, settings_from_json

    settings = settings_from_json(dbt.config.get("injection_settings"))
    return injections_table(
        dbt.ref("injection_grid").to_arrow_table(),
        dbt.ref("injection_host_slots").to_arrow_table(),
        dbt.ref("int_injection_hosts").to_arrow_table(),
        dbt.ref("finder_runs").to_arrow_table(),
        dbt.ref("selection_thresholds").to_arrow_table(),
        settings,
        dbt.config.get("report_dir"),
    )

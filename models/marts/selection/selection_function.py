"""``selection_function``: completeness per cell and operating point with intervals; writes the
heatmaps. Thin: stronglens.injection.marts.selection_function_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import selection_function_table, settings_from_json

    injections = dbt.ref("injections").project("* exclude (embedding)").to_arrow_table()
    return selection_function_table(
        injections,
        dbt.ref("selection_thresholds").to_arrow_table(),
        dbt.ref("injection_grid").to_arrow_table(),
        dbt.ref("injection_host_slots").to_arrow_table(),
        dbt.ref("realism_probe").to_arrow_table(),
        settings_from_json(dbt.config.get("injection_settings")),
        dbt.config.get("report_dir"),
    )

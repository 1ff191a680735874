"""``injection_host_slots``: the native and degraded hosts of every cell. Thin: stronglens.injection.marts."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import host_slots_table, settings_from_json

    settings = settings_from_json(dbt.config.get("injection_settings"))
    cells = dbt.ref("injection_grid").to_arrow_table()
    hosts = dbt.ref("int_injection_hosts").to_arrow_table()
    return host_slots_table(cells, hosts, settings)

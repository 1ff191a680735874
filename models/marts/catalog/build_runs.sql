{{ config(materialized='view') }}
-- One row per build, newest last. A view over the hook-written log, so it always shows every build,
-- including the one that is running (which appears once its on-run-end hook has recorded it).

with

builds as (

    select * from {{ ref('stg_warehouse__build_log') }}

),

final as (

    select
        build_id,
        invocation_id,
        command,
        started_at,
        finished_at,
        finished_at - started_at as duration,
        git_commit,
        vars_md5,
        vars_json,
        snapshot_id,
        status,
        n_nodes,
        n_failed

    from builds

)

select * from final
order by build_id

{{ config(materialized='view') }}
-- One row per build, newest last, with its latest quality check. A view over the hook-written logs:
-- read at a build's snapshot (`stronglens sql --build N`, or the served build) it shows that build's
-- own row -- vars, md5, snapshot -- and every earlier one; a check shows from the first snapshot
-- after it (at the build's own snapshot its check has not happened yet: 'unchecked').

with

builds as (

    select * from {{ ref('stg_warehouse__build_log') }}

),

checks as (

    select * from {{ ref('stg_warehouse__build_checks') }}

),

final as (

    select
        builds.build_id,
        builds.invocation_id,
        builds.command,
        builds.started_at,
        builds.finished_at,
        builds.finished_at - builds.started_at as duration,
        builds.git_commit,
        builds.vars_md5,
        builds.vars_json,
        builds.snapshot_id,
        builds.status,
        builds.n_nodes,
        builds.n_failed,
        case
            when checks.success then 'passed'
            when not checks.success then 'failed'
            else 'unchecked'
        end as check_outcome,
        checks.checked_at

    from builds
    left join checks on checks.build_id = builds.build_id

)

select * from final
order by build_id

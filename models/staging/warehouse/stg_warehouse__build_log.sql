with

source as (

    select * from {{ source('warehouse', 'build_log') }}

),

renamed as (

    select
        build_id,
        invocation_id,
        command,
        started_at,
        finished_at,
        git_commit,
        vars_md5,
        vars_json,
        snapshot_id,
        status,
        n_nodes,
        n_failed

    from source

)

select * from renamed

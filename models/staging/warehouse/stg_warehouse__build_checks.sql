-- The latest quality check of each build (`stronglens check` appends one row per check).

with

source as (

    select * from {{ source('warehouse', 'build_checks') }}

),

latest as (

    select
        build_id,
        max(checked_at) as checked_at,
        max_by(success, checked_at) as success,
        count(*) as n_checks

    from source
    group by build_id

)

select * from latest

-- The sampled negatives: stage 1 (int_negatives_drawn: the quota draws per stratum and class) and
-- stage 2 (int_negatives_topped_up: N1 from neighbouring bins for strata short of N1), with every
-- pool column, the stratum each galaxy was sampled for, the stage and the top-up distance.

with

drawn as (

    select * from {{ ref('int_negatives_drawn') }}

),

topups as (

    select * from {{ ref('int_negatives_topped_up') }}

),

pool as (

    select * from {{ ref('int_negative_pool') }}

),

stage1 as (

    select
        *,
        cast(null as integer) as topup_distance
    from drawn

),

stage2 as (

    select
        pool.*,
        topups.sampled_for_stratum,
        2 as sampling_stage,
        topups.topup_distance

    from topups
    inner join pool on pool.galaxy_id = topups.galaxy_id

),

final as (

    -- stage1 and stage2 have the same columns in the same order: the pool's, then
    -- sampled_for_stratum, sampling_stage, topup_distance
    select * from stage1
    union all
    select * from stage2

)

select * from final

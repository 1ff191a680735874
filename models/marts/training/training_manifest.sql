-- The lens finder's training set: one row per QA-passed cutout with its label, tier, N2 category,
-- split, loss weight and target. Samples training cannot use are counted in training_exclusions.

with

screened as (

    select * from {{ ref('int_training_samples_screened') }}

),

final as (

    select
        sample_id,
        galaxy_id,
        label,
        tier,
        n2_category,
        type,
        split,
        stratum,
        cutout_path,
        cutout_sha256,
        sample_weight,
        target
    from screened
    where exclusion_reason is null

)

select * from final

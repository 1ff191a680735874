-- Samples of the cutout manifest left out of training_manifest, counted by reason, label and split.

with

screened as (

    select * from {{ ref('int_training_samples_screened') }}

),

final as (

    select
        exclusion_reason,
        label,
        split,
        count(*) as n_samples
    from screened
    where exclusion_reason is not null
    group by exclusion_reason, label, split

)

select * from final

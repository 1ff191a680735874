-- Real lens candidates with a stored, usable cutout: the "real" class of the realism probe.

with

manifest as (

    select * from {{ ref('cutout_manifest') }}

),

cutouts as (

    select * from {{ ref('cutouts') }}
    where status = 'ok'

),

qa as (

    select * from {{ ref('cutout_qa') }}

),

unusable as (

    select distinct sample_id
    from qa
    where not is_usable

),

positives as (

    select * from manifest
    where label = 'positive'

),

final as (

    select
        positives.sample_id,
        positives.tier,
        positives.split,
        cutouts.path

    from positives
    inner join cutouts on cutouts.sample_id = positives.sample_id
    where positives.sample_id not in (select unusable.sample_id from unusable)

)

select * from final
order by sample_id
